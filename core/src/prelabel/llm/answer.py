"""From the model's reply to Label Studio regions.

Tolerant where models are sloppy (code fences, prose around the JSON, ``<think>`` blocks, a
label's case), strict where Label Studio is: a label the project lacks is dropped and
reported, never invented, and a span is kept only where its text occurs in the task text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from prelabel import regions
from prelabel.llm.schema import TAXONOMY_SEPARATOR, ControlSpec, TaskSpec

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


class MalformedAnswer(ValueError):
    """The reply holds no JSON object the engine can use."""


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``: whole, inside a code fence, or amid prose."""
    if not isinstance(text, str) or not text.strip():
        raise MalformedAnswer("the reply is empty")
    text = _THINK.sub("", text).strip()
    candidates = [text] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise MalformedAnswer(f"no JSON object in the reply: {text[:160]!r}")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def locate(text: str, needle: str) -> list[tuple[int, int]]:
    """Offsets of ``needle`` in ``text``: exact matches, else case-insensitive, else with
    any run of whitespace matching any other (models reflow text)."""
    needle = needle.strip()
    if not needle:
        return []
    found = regions.find_spans(text, needle, case_sensitive=True) or regions.find_spans(text, needle)
    if found:
        return found
    words = needle.split()
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def _span_items(value: Any) -> list[tuple[str, str]]:
    """(label, text) pairs from the shapes models give: objects, pairs, or label -> texts."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for label, texts in value.items():
            pairs += [(str(label), str(t)) for t in _as_list(texts)]
        return pairs
    for item in _as_list(value):
        if isinstance(item, dict):
            label = item.get("label", item.get("labels", item.get("type", "")))
            label = _as_list(label)[0] if _as_list(label) else ""
            pairs.append((str(label), str(item.get("text", item.get("span", "")))))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((str(item[1]), str(item[0])))
    return pairs


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def control_regions(spec: ControlSpec, value: Any, texts: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Regions for one control from its answer, and a message per dropped item."""
    c, out, problems = spec.control, [], []
    if spec.kind == "choices":
        picked = []
        for raw in _as_list(value):
            label = c.map_label(str(raw))
            if label is None:
                problems.append(f"{c.name}: {raw!r} is not one of the project's choices {list(c.labels)}")
            elif label not in picked:
                picked.append(label)
        if picked:
            out.append(regions.choices(c, picked if c.is_multiple else picked[:1]))
    elif spec.kind == "spans":
        text = texts.get(c.to_name[0], "")
        seen: set[tuple[int, int, str]] = set()
        for raw_label, needle in _span_items(value):
            label = c.map_label(raw_label)
            if label is None:
                problems.append(f"{c.name}: {raw_label!r} is not one of the project's labels {list(c.labels)}")
                continue
            found = locate(text, needle)
            if not found:
                problems.append(f"{c.name}: the span {needle[:80]!r} does not occur in the text")
            for start, end in found:
                if (start, end, label) not in seen:
                    seen.add((start, end, label))
                    out.append(regions.span(c, label, start, end, text))
    elif spec.kind == "text":
        items = _as_list(value)
        for v in items:
            if isinstance(v, (dict, list, tuple)):  # small models echo the schema's shape: not text
                problems.append(f"{c.name}: {str(v)[:80]!r} is not text")
        lines = [str(v).strip() for v in items if not isinstance(v, (dict, list, tuple)) and str(v).strip()]
        if lines:
            out.append(regions.textarea(c, lines))
    elif spec.kind in ("rating", "number"):
        if value is None or value == "":
            return out, problems
        number = _number(value)
        if (
            number is None
            or (spec.minimum is not None and number < spec.minimum)
            or (spec.maximum is not None and number > spec.maximum)
        ):
            problems.append(f"{c.name}: {value!r} is not a number in [{spec.minimum}, {spec.maximum}]")
        elif spec.kind == "rating":
            out.append(regions.rating(c, round(number)))
        else:
            out.append(regions.number(c, int(number) if number.is_integer() else number))
    elif spec.kind == "taxonomy":
        known = {tuple(p.lower() for p in path): path for path in spec.paths}
        leaf = {path[-1].lower(): path for path in spec.paths}
        chosen = []
        for raw in _as_list(value):
            parts = raw if isinstance(raw, (list, tuple)) else str(raw).split(TAXONOMY_SEPARATOR.strip())
            key = tuple(str(p).strip().lower() for p in parts if str(p).strip())
            path = known.get(key) or (leaf.get(key[0]) if len(key) == 1 else None)
            if path is None:
                problems.append(f"{c.name}: {raw!r} is not a path of the project's taxonomy")
            elif list(path) not in chosen:
                chosen.append(list(path))
        if chosen:
            out.append(regions.taxonomy(c, chosen))
    return out, problems


def to_regions(spec: TaskSpec, answer: dict[str, Any], texts: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Regions for every control of ``spec`` from a parsed answer (keys matched loosely)."""
    by_key = {str(k).strip().lower(): v for k, v in answer.items()}
    if len(spec.controls) == 1 and spec.controls[0].name.lower() not in by_key and len(by_key) == 1:
        by_key = {spec.controls[0].name.lower(): next(iter(by_key.values()))}  # a model renamed the only key
    result: list[dict] = []
    problems: list[str] = []
    for cs in spec.controls:
        if cs.name.lower() not in by_key:
            continue
        got, bad = control_regions(cs, by_key[cs.name.lower()], texts)
        result += got
        problems += bad
    return result, problems
