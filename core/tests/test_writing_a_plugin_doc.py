"""docs/writing-a-plugin.md stays true to the code: its Reference lists every public member of
Backend, PredictContext and JobContext and every builder of prelabel.regions, each with the
signature the code has (datasette's documentation unit tests are the pattern)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import prelabel.regions
from prelabel import Backend, JobContext, PredictContext
from prelabel.media import MediaFetcher

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-a-plugin.md"
# section -> (the object, whether every public member must be listed)
SECTIONS = {
    "Backend": (Backend, True),
    "PredictContext": (PredictContext, True),
    "JobContext": (JobContext, True),
    "MediaFetcher": (MediaFetcher, False),
    "prelabel.regions": (prelabel.regions, True),
}


def signature_text(obj) -> str:
    """A signature as the doc writes it: annotations as written in the code, defaults as repr."""
    s = inspect.signature(obj)
    parts, kw_only = [], False
    for p in s.parameters.values():
        if p.kind is p.KEYWORD_ONLY and not kw_only:
            parts.append("*")
            kw_only = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            text += ": " + (p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation))
        if p.default is not p.empty:
            text += " = " + repr(p.default)
        parts.append(text)
    out = "(" + ", ".join(parts) + ")"
    if s.return_annotation is not s.empty:
        r = s.return_annotation
        out += " -> " + (r if isinstance(r, str) else inspect.formatannotation(r))
    return out


def documented() -> dict[str, dict[str, str]]:
    """section -> {member name: the signature written after it ('' for attributes)}."""
    text = DOC.read_text(encoding="utf-8").split("\n## Reference", 1)[1]
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"### `([\w.]+)`", line)
        if heading:
            current = sections.setdefault(heading.group(1), {})
            continue
        item = re.match(r"- `(\w+)(\(.*?\)(?: -> [^`]+)?)?`", line)
        if item and current is not None:
            current[item.group(1)] = item.group(2) or ""
    return sections


def public_members(obj) -> dict[str, object]:
    if obj is prelabel.regions:
        return {name: getattr(obj, name) for name in obj.__all__}
    return {name: value for name, value in vars(obj).items() if not name.startswith("_")}


def test_the_doc_has_every_reference_section():
    assert set(documented()) == set(SECTIONS)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_public_member_is_documented_with_its_signature(section):
    obj, complete = SECTIONS[section]
    listed = documented()[section]
    members = public_members(obj) if complete else {name: getattr(obj, name) for name in listed}
    if complete:
        assert sorted(listed) == sorted(members), f"docs/writing-a-plugin.md, section {section}"
    for name, value in members.items():
        func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if isinstance(value, property) or isinstance(value, type) or not callable(func):
            assert listed[name] == "", f"{section}.{name} is an attribute; the doc gives it a signature"
            continue
        assert listed[name] == signature_text(func), f"{section}.{name}: the doc says {listed[name]!r}"
