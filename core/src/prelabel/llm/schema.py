"""From a label config to what the model is asked for: one JSON field per control.

Spans are asked for by TEXT, never by offsets (models count characters badly); the offsets
are found in the task text afterwards (see :mod:`prelabel.llm.answer`).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from prelabel.labelconfig import ControlInfo, ObjectInfo, ParsedConfig

log = logging.getLogger(__name__)

#: control tag -> the kind of answer the model gives for it
KINDS = {
    "Choices": "choices",
    "Labels": "spans",
    "TextArea": "text",
    "Rating": "rating",
    "Number": "number",
    "Taxonomy": "taxonomy",
}
CONTROL_TAGS = frozenset(KINDS)
OBJECT_TAGS = frozenset({"Text", "HyperText"})
#: objects whose regions can be character spans (HyperText spans need XPath offsets)
SPAN_OBJECTS = frozenset({"Text"})
TAXONOMY_SEPARATOR = " / "


def is_prompt_input(control: ControlInfo) -> bool:
    """A TextArea where a person types an instruction (interactive prompting), not an output:
    one named ``prompt`` or marked ``llm_role="prompt"``."""
    return control.tag == "TextArea" and (control.name.lower() == "prompt" or control.attrs.get("llm_role") == "prompt")


def can_fill(control: ControlInfo) -> bool:
    """True when the engine can produce this control's result."""
    if control.tag not in KINDS or is_prompt_input(control) or not control.objects:
        return False
    targets = SPAN_OBJECTS if control.tag == "Labels" else OBJECT_TAGS
    if not all(o.tag in targets and o.data_key for o in control.objects):
        return False
    return control.tag not in ("Choices", "Labels", "Taxonomy") or bool(control.labels)


@dataclass(frozen=True)
class ControlSpec:
    """One control the model fills: its JSON field schema and the facts the prompt states."""

    control: ControlInfo
    kind: str
    schema: dict[str, Any] = field(hash=False, compare=False)
    minimum: float | None = None
    maximum: float | None = None
    paths: tuple[tuple[str, ...], ...] = ()

    @property
    def name(self) -> str:
        return self.control.name


@dataclass(frozen=True)
class TaskSpec:
    """Everything asked of the model for one label config."""

    controls: tuple[ControlSpec, ...]
    objects: tuple[ObjectInfo, ...]
    prompt_inputs: tuple[ControlInfo, ...]
    schema: dict[str, Any] = field(hash=False, compare=False)

    def control(self, name: str) -> ControlSpec | None:
        return next((c for c in self.controls if c.name == name), None)


def _nullable(schema: dict) -> dict:
    kind = schema["type"]
    out = {**schema, "type": [kind, "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def taxonomy_paths(xml: str, control_name: str) -> tuple[tuple[str, ...], ...]:
    """Every root-to-node path of a Taxonomy's nested ``<Choice>`` tree."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return ()
    node = next((el for el in root.iter("Taxonomy") if el.get("name") == control_name), None)
    paths: list[tuple[str, ...]] = []

    def walk(el: ET.Element, prefix: tuple[str, ...]) -> None:
        for child in el:
            if child.tag == "Choice" and (child.get("alias") or child.get("value")):
                path = (*prefix, child.get("alias") or child.get("value") or "")
                paths.append(path)
                walk(child, path)

    if node is not None:
        walk(node, ())
    return tuple(paths)


def control_spec(control: ControlInfo, xml: str) -> ControlSpec:
    kind = KINDS[control.tag]
    labels = list(control.labels)
    if kind == "choices":
        item = {"type": "string", "enum": labels}
        schema = {"type": "array", "items": item} if control.is_multiple else _nullable(item)
        return ControlSpec(control, kind, schema)
    if kind == "spans":
        span = {
            "type": "object",
            "additionalProperties": False,
            "required": ["label", "text"],
            "properties": {
                "label": {"type": "string", "enum": labels},
                "text": {"type": "string", "description": "the span copied exactly from the text"},
            },
        }
        return ControlSpec(control, kind, {"type": "array", "items": span})
    if kind == "text":
        return ControlSpec(control, kind, {"type": "string"})
    if kind == "rating":
        top = control.attr("maxRating", 5, int)
        return ControlSpec(control, kind, _nullable({"type": "integer", "minimum": 1, "maximum": top}), 1, top)
    if kind == "number":
        lo, hi = control.attr("min", None, float), control.attr("max", None, float)
        schema: dict[str, Any] = {"type": "number"}
        if lo is not None:
            schema["minimum"] = lo
        if hi is not None:
            schema["maximum"] = hi
        return ControlSpec(control, kind, _nullable(schema), lo, hi)
    paths = taxonomy_paths(xml, control.name) or tuple((label,) for label in labels)
    names = [TAXONOMY_SEPARATOR.join(p) for p in paths]
    return ControlSpec(control, kind, {"type": "array", "items": {"type": "string", "enum": names}}, paths=paths)


@lru_cache(maxsize=256)
def _build(config: ParsedConfig, names: tuple[str, ...]) -> TaskSpec:
    wanted = [c for c in config.controls if c.name in names and can_fill(c)]
    specs = tuple(control_spec(c, config.xml) for c in wanted)
    objects: dict[str, ObjectInfo] = {}
    for c in wanted:
        for o in c.objects:
            objects.setdefault(o.name, o)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": [s.name for s in specs],
        "properties": {s.name: s.schema for s in specs},
    }
    prompts = tuple(c for c in config.controls if is_prompt_input(c))
    return TaskSpec(controls=specs, objects=tuple(objects.values()), prompt_inputs=prompts, schema=schema)


def task_spec(config: ParsedConfig, controls: list[ControlInfo] | None = None) -> TaskSpec:
    """The spec for ``controls`` of ``config`` (default: every control the engine can fill).

    Cached per (config, controls), so a project's spec is built once."""
    chosen = controls if controls is not None else [c for c in config.controls if can_fill(c)]
    return _build(config, tuple(c.name for c in chosen))
