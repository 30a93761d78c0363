"""Label Studio annotations -> UIE training examples (our own converter, text and document).

An example is PaddleNLP's doccano-style record, one per (task, label):
``{"content", "prompt", "result_list": [{"text", "start", "end"}]}``; a label the task has no
region for gives a negative example (empty ``result_list``), which teaches the model to say
nothing. Document examples add ``layout`` (the OCR lines, ``[[x1, y1, x2, y2], text]`` in
pixels), ``image_size`` ``[width, height]`` and ``image`` (a file name next to the examples).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from prelabel import ControlInfo
from prelabel_uie_x.ocr import Segment, char_boxes, content


def annotated_regions(task: dict, control: ControlInfo) -> list[dict] | None:
    """The regions of the task's first annotation that has any for ``control``; None when none
    has. The task's annotations are the usable ones, in order, as ``job.annotations()`` gives
    them (not cancelled, with a result, ground truth first)."""
    for ann in task.get("annotations") or []:
        regions = [r for r in ann["result"] if r.get("from_name") == control.name and isinstance(r.get("value"), dict)]
        if regions:
            return regions
    return None


def _labels_of(region: dict, control: ControlInfo) -> list[str]:
    labels = region["value"].get(control.value_key) or []
    return [label for label in labels if label in control.label_set]


def _examples(text: str, spans: dict[str, list[dict]], control: ControlInfo, extra: dict[str, Any]) -> list[dict]:
    out = []
    for label in control.labels:
        found = sorted({(s["start"], s["end"]) for s in spans.get(label, [])})
        out.append(
            {
                "content": text,
                "prompt": label,
                "result_list": [{"text": text[s:e], "start": s, "end": e} for s, e in found],
                **extra,
            }
        )
    return out


def text_examples(task: dict, control: ControlInfo) -> list[dict]:
    """Examples from ``Labels`` spans on a ``Text`` object; [] for an unannotated task."""
    text = (task.get("data") or {}).get(control.object.data_key or "")
    regions = annotated_regions(task, control)
    if not isinstance(text, str) or not text or regions is None:
        return []
    spans: dict[str, list[dict]] = {}
    for region in regions:
        value = region["value"]
        start, end = value.get("start"), value.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            continue  # HyperText XPath offsets, or a region made for another text
        for label in _labels_of(region, control):
            spans.setdefault(label, []).append({"start": start, "end": end})
    return _examples(text, spans, control, {"task_id": task.get("id")})


def rectangle_pixels(value: dict, width: int, height: int) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) in pixels of a RectangleLabels value in percent (rotation ignored:
    documents are labelled with upright boxes)."""
    x, y = float(value.get("x", 0)) * width / 100, float(value.get("y", 0)) * height / 100
    return x, y, x + float(value.get("width", 0)) * width / 100, y + float(value.get("height", 0)) * height / 100


def chars_inside(
    boxes: list[tuple[float, float, float, float]], rect: tuple[float, float, float, float]
) -> list[tuple[int, int]]:
    """Runs [start, end) of characters whose box centre lies inside ``rect``."""
    runs: list[tuple[int, int]] = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if rect[0] <= cx <= rect[2] and rect[1] <= cy <= rect[3]:
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
    return runs


def document_examples(
    task: dict, control: ControlInfo, segments: list[Segment], width: int, height: int, image: str
) -> list[dict]:
    """Examples from ``RectangleLabels`` boxes on a document image: each box selects the OCR
    characters whose centres it contains; [] for an unannotated task or an image without text."""
    regions = annotated_regions(task, control)
    text = content(segments)
    if regions is None or not text:
        return []
    boxes = char_boxes(segments)
    spans: dict[str, list[dict]] = {}
    for region in regions:
        rect = rectangle_pixels(region["value"], width, height)
        for label in _labels_of(region, control):
            for start, end in chars_inside(boxes, rect):
                spans.setdefault(label, []).append({"start": start, "end": end})
    extra = {
        "task_id": task.get("id"),
        "layout": [[seg.box, seg.text] for seg in segments],
        "image_size": [width, height],
        "image": image,
    }
    return _examples(text, spans, control, extra)


def split_by_task(examples: list[dict], val_split: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, dev): whole tasks go to one side, so a task's negatives never leak."""
    tasks = sorted({str(e.get("task_id")) for e in examples})
    random.Random(seed).shuffle(tasks)
    n_dev = int(round(len(tasks) * val_split))
    if val_split > 0 and len(tasks) >= 4:
        n_dev = max(1, n_dev)
    else:
        n_dev = 0  # too few tasks to hold any out
    dev_tasks = set(tasks[:n_dev])
    train = [e for e in examples if str(e.get("task_id")) not in dev_tasks]
    dev = [e for e in examples if str(e.get("task_id")) in dev_tasks]
    return train, dev


def count_spans(examples: Iterable[dict]) -> dict[str, int]:
    """Positive spans per prompt (for the job result)."""
    counts: dict[str, int] = {}
    for e in examples:
        if e["result_list"]:
            counts[e["prompt"]] = counts.get(e["prompt"], 0) + len(e["result_list"])
    return counts
