"""Taskflow's extraction results -> Label Studio regions (spans on text, boxes on documents)."""

from __future__ import annotations

from prelabel import ControlInfo, ParsedConfig
from prelabel.regions import find_spans, rectangle, span
from prelabel_uie_x.ocr import Segment, span_box, union_box


def prompts_for(control: ControlInfo) -> dict[str, str]:
    """The schema UIE is asked for: prompt -> project label. Each label is its own prompt, and
    so is every name in its ``predicted_values`` (``<Label value="Person" predicted_values="人名"/>``)."""
    prompts: dict[str, str] = {}
    for label in control.labels:
        prompts.setdefault(label, label)
        for name in control.label_attrs.get(label, {}).get("predicted_values", "").split(","):
            if name.strip():
                prompts.setdefault(name.strip(), label)
    return prompts


def threshold_of(control: ControlInfo, default: float) -> float:
    return control.score_threshold if control.score_threshold is not None else default


def _items(result: dict, prompts: dict[str, str], threshold: float):
    """(label, item) for each span of a Taskflow result that has offsets and a high enough score."""
    for prompt, items in (result or {}).items():
        label = prompts.get(prompt)
        if label is None:
            continue
        for item in items:
            start, end = item.get("start"), item.get("end")
            if (
                isinstance(start, int)
                and isinstance(end, int)
                and end > start
                and float(item.get("probability", 0)) >= threshold
            ):
                yield label, item


def _exact(text: str, item: dict) -> tuple[int, int] | None:
    """The item's offsets when they point at its text; else the nearest occurrence of its text."""
    start, end, found = item["start"], item["end"], item.get("text") or ""
    if 0 <= start < end <= len(text) and (not found or text[start:end] == found):
        return start, end
    matches = find_spans(text, found, case_sensitive=True) if found else []
    return min(matches, key=lambda m: abs(m[0] - start)) if matches else None


def text_regions(control: ControlInfo, text: str, result: dict, threshold: float) -> list[dict]:
    """``Labels`` spans with exact character offsets into ``text`` and the span's probability."""
    best: dict[tuple[int, int, str], float] = {}
    for label, item in _items(result, prompts_for(control), threshold):
        offsets = _exact(text, item)
        if offsets is not None:
            key = (*offsets, label)
            best[key] = max(best.get(key, 0.0), float(item["probability"]))
    return [span(control, label, start, end, text, score=prob) for (start, end, label), prob in sorted(best.items())]


def region_textarea(config: ParsedConfig, control: ControlInfo) -> ControlInfo | None:
    """A ``TextArea perRegion="true"`` on the same image, filled with each box's text."""
    for other in config.controls:
        if (
            other.tag == "TextArea"
            and other.attr("perRegion", False, bool)
            and set(other.to_name) & set(control.to_name)
        ):
            return other
    return None


def document_regions(
    control: ControlInfo,
    textarea: ControlInfo | None,
    result: dict,
    segments: list[Segment],
    width: int,
    height: int,
    threshold: float,
) -> list[dict]:
    """A box per extracted span (covering the OCR lines it spans) and, with a per-region
    TextArea, the span's text attached to that box."""
    out: list[dict] = []
    seen: set[tuple[int, int, str]] = set()
    for label, item in _items(result, prompts_for(control), threshold):
        if (item["start"], item["end"], label) in seen:
            continue
        seen.add((item["start"], item["end"], label))
        box = union_box(item.get("bbox") or []) or span_box(segments, item["start"], item["end"])
        if box is None:
            continue
        x1, y1 = max(0.0, box[0]), max(0.0, box[1])
        x2, y2 = min(float(width), box[2]), min(float(height), box[3])
        if x2 <= x1 or y2 <= y1:
            continue
        score = float(item["probability"])
        rect = rectangle(control, label, x1, y1, x2 - x1, y2 - y1, width, height, score=score)
        out.append(rect)
        if textarea is not None:
            geometry = {k: rect["value"][k] for k in ("x", "y", "width", "height", "rotation")}
            out.append(
                {
                    "id": rect["id"],
                    "from_name": textarea.name,
                    "to_name": rect["to_name"],
                    "type": "textarea",
                    "value": {**geometry, "text": [item.get("text", "")]},
                    "original_width": width,
                    "original_height": height,
                    "image_rotation": 0,
                    "score": score,
                }
            )
    return out


def flatten(result: dict) -> dict[str, list[dict]]:
    """A Taskflow result made JSON-plain (numpy floats to float), relations kept."""

    def plain(item: dict) -> dict:
        out = {k: v for k, v in item.items() if k not in ("probability", "relations")}
        if "probability" in item:
            out["probability"] = float(item["probability"])
        if item.get("relations"):
            out["relations"] = flatten(item["relations"])
        return out

    return {prompt: [plain(i) for i in items] for prompt, items in (result or {}).items()}
