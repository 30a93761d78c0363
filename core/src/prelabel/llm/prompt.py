"""Prompts: a default instruction per control type, overridable per project.

Overrides, most specific first:

- a control's ``llm_prompt`` attribute in the label config replaces that control's line;
- the instruction of a task: an interactive prompt (a ``prompt`` TextArea in the context),
  else the project's last interactive prompt, else ``LLM_PROMPT``.

Templates use Label Studio's own ``$name`` syntax: ``$text`` (any task data field),
``$labels`` (the control's labels) and ``$name`` / ``$to_name`` (the control's names).
"""

from __future__ import annotations

import json
import string
from typing import Any

from prelabel.llm.schema import TAXONOMY_SEPARATOR, ControlSpec, TaskSpec

#: bump when build_messages changes what it sends: it is part of every LLM backend's model_version
PROMPT_FORMAT = 1

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful data-labeling assistant for Label Studio. Follow the instructions, use only "
    "the labels offered, copy text spans exactly as they appear in the text, and answer with one "
    "JSON object and nothing else."
)

DEFAULT_TEMPLATES = {
    "choices": "Classify the $to_name: choose $how of these labels: $labels.",
    "spans": "Find every passage of the $to_name that is one of these entity types: $labels. Give each passage "
    "with its label, copying the passage character for character from the $to_name.",
    "text": "Write the $name for the $to_name.",
    "rating": "Rate the $to_name on a scale from 1 to $maximum.",
    "number": "Give the number for $name$range.",
    "taxonomy": "Choose the categories of the $to_name from this taxonomy (each choice is a path, parent / child): "
    "$labels.",
}


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``$name`` placeholders; unknown ones are left as they are."""
    return string.Template(template).safe_substitute({k: _flat(v) for k, v in values.items()})


def data_blocks(spec: TaskSpec, data: dict[str, Any]) -> str:
    """The task's texts as the prompt shows them: one ``<name>`` block per object."""
    return "\n".join(f"<{o.name}>\n{_flat(data.get(o.data_key or '', ''))}\n</{o.name}>" for o in spec.objects)


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _labels_text(spec: ControlSpec) -> str:
    if spec.kind == "taxonomy":
        return "; ".join(TAXONOMY_SEPARATOR.join(p) for p in spec.paths)
    parts = []
    for label in spec.control.labels:
        hints = [h for h in spec.control.hints(label)[1:]]
        parts.append(f'"{label}"' + (f" ({'; '.join(hints)})" if hints else ""))
    return ", ".join(parts)


def control_line(spec: ControlSpec, data: dict[str, Any]) -> str:
    """The instruction for one control: its ``llm_prompt`` attribute or the default."""
    c = spec.control
    rng = ""
    if spec.kind == "number" and (spec.minimum is not None or spec.maximum is not None):
        lo = f"{spec.minimum:g}" if spec.minimum is not None else "-inf"
        hi = f"{spec.maximum:g}" if spec.maximum is not None else "inf"
        rng = f" (from {lo} to {hi})"
    values = {
        **data,
        "name": c.name,
        "to_name": c.to_name[0],
        "labels": _labels_text(spec),
        "how": "one or more" if c.is_multiple else "exactly one",
        "maximum": f"{spec.maximum:g}" if spec.maximum is not None else "",
        "range": rng,
    }
    template = c.attrs.get("llm_prompt") or DEFAULT_TEMPLATES[spec.kind]
    line = render(template, values)
    if spec.kind == "text" and c.attrs.get("placeholder") and "llm_prompt" not in c.attrs:
        line += f" Hint: {c.attrs['placeholder']}"
    return line


_ANSWER_SHAPE = {
    "choices": lambda s: "a list of labels" if s.control.is_multiple else "one label, or null if none fits",
    "spans": lambda s: 'a list of {"label": ..., "text": ...} objects (empty if none)',
    "text": lambda s: "a string",
    "rating": lambda s: f"an integer from 1 to {s.maximum:g}, or null",
    "number": lambda s: "a number, or null",
    "taxonomy": lambda s: 'a list of taxonomy paths written "parent / child"',
}


def build_messages(
    spec: TaskSpec,
    data: dict[str, Any],
    instruction: str | None = None,
    system_prompt: str | None = None,
    examples: str | None = None,
) -> list[dict[str, str]]:
    """The chat messages for one task; identical inputs give identical messages (the cache
    relies on it). ``examples``: the few-shot block (:func:`prelabel.llm.fewshot.render_examples`),
    put before the data; without it the messages are the zero-shot ones."""
    texts = {o.name: data.get(o.data_key or "", "") for o in spec.objects}
    used: set[str] = set()
    parts: list[str] = []
    if instruction:
        rendered = render(instruction, data)
        used |= {k for k in data if f"${k}" in instruction or f"${{{k}}}" in instruction}
        parts.append(rendered)
    lines = []
    for i, c in enumerate(spec.controls, 1):
        lines.append(f'{i}. "{c.name}": {control_line(c, data)} Answer: {_ANSWER_SHAPE[c.kind](c)}.')
        used |= {k for k in data if f"${k}" in c.control.attrs.get("llm_prompt", "")}
    parts.append("Fill these fields:\n" + "\n".join(lines))
    if examples:
        parts.append(examples)
    shown = [o for o in spec.objects if o.data_key not in used]
    if shown:
        blocks = [f"<{o.name}>\n{_flat(texts[o.name])}\n</{o.name}>" for o in shown]
        parts.append("The data to label:\n" + "\n".join(blocks))
    parts.append(
        "Answer with one JSON object with exactly these keys, following this JSON schema:\n"
        + json.dumps(spec.schema, ensure_ascii=False, sort_keys=True)
    )
    return [
        {"role": "system", "content": system_prompt or DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]
