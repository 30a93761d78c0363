"""The project's labels as SAM 3 concept prompts, and Label Studio's interactive context as
exemplars and clicks (pure Python and numpy, no model needed).

A label's prompts are its ``prompt`` or ``hint`` attribute when it has one (for coded names
such as ``cls_3``, which mean nothing to the text encoder), else its own value, plus every
``predicted_values`` synonym. A phrase two labels share goes to the first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from prelabel import ControlInfo

_NEGATIVE = re.compile(r"(^|[^a-z])(neg|negative|background|bg|exclude)([^a-z]|$)", re.IGNORECASE)


def clean(text: str) -> str:
    """Lower case and single spaces: the text encoder's input."""
    return " ".join(str(text).lower().split())


def label_prompts(control: ControlInfo, label: str) -> list[str]:
    """The concept prompts of one label (see the module docstring)."""
    attrs = control.label_attrs.get(label, {})
    own = attrs.get("prompt") or attrs.get("hint")
    phrases = [own] if own and own.strip() else [label]
    phrases += [p for p in attrs.get("predicted_values", "").split(",") if p.strip()]
    return list(dict.fromkeys(t for t in (clean(p) for p in phrases) if t))


@dataclass
class Concepts:
    """The prompts of an image's controls: unique texts, and which (control, label) each means."""

    texts: list[str] = field(default_factory=list)
    targets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # text -> [(control name, label)]

    def add(self, text: str, control: str, label: str) -> None:
        if text not in self.targets:
            self.texts.append(text)
            self.targets[text] = []
        if not any(c == control for c, _ in self.targets[text]):  # a phrase two labels share goes to the first
            self.targets[text].append((control, label))


def project_concepts(controls: Sequence[ControlInfo]) -> Concepts:
    """Every label of every control as prompts; one text per distinct phrase across controls."""
    concepts = Concepts()
    for control in controls:
        for label in control.labels:
            for text in label_prompts(control, label):
                concepts.add(text, control.name, label)
    return concepts


def is_negative_label(label: str) -> bool:
    return bool(_NEGATIVE.search(str(label)))


def region_labels(region: dict) -> list[str]:
    value = region.get("value") or {}
    labels = value.get(region.get("type") or "") or value.get("labels") or []
    return [str(x) for x in labels] if isinstance(labels, list) else []


def has_flag(region: dict) -> bool:
    """Whether the region says its polarity (Label Studio's ``is_positive``)."""
    return region.get("is_positive") is not None


def is_positive(region: dict) -> bool:
    """A label named like negative/background is negative whatever its flag (the UI sends
    ``is_positive: true`` for a plain click with a Background label); otherwise Label Studio's
    ``is_positive`` (Alt makes it false), or upstream's ``value.positive``; without either,
    positive. The same rule as sam2's."""
    if any(is_negative_label(label) for label in region_labels(region)):
        return False
    for flag in (region.get("is_positive"), (region.get("value") or {}).get("positive")):
        if flag is not None:
            return flag.strip().lower() in {"1", "true", "yes"} if isinstance(flag, str) else bool(flag)
    return True


def _number(value: dict, key: str) -> float:
    raw = value.get(key)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"context region value has no numeric {key!r} (got {raw!r})")
    return float(raw)


@dataclass
class Exemplar:
    """A smart box: percent x, y, width, height of the image, positive or not, its label."""

    box: tuple[float, float, float, float]
    positive: bool
    label: str

    def pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        x, y, w, h = self.box
        return x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100

    def to_json(self) -> dict:
        return {"box": list(self.box), "positive": self.positive, "label": self.label}

    @classmethod
    def from_json(cls, raw: dict) -> Exemplar:
        return cls(tuple(float(v) for v in raw["box"]), bool(raw["positive"]), str(raw["label"]))


@dataclass
class Clicks:
    """The smart keypoints on one image: percent points, 1/0 labels, the positive ones' labels."""

    to_name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def pixels(self, width: int, height: int) -> list[tuple[float, float]]:
        return [(x * width / 100, y * height / 100) for x, y in self.points]


def context_exemplars(regions: list[dict]) -> dict[str, list[Exemplar]]:
    """The context's ``rectanglelabels`` regions, per image object (``to_name``)."""
    found: dict[str, list[Exemplar]] = {}
    for region in regions:
        if region.get("type") != "rectanglelabels":
            continue
        value = region.get("value") or {}
        box = (_number(value, "x"), _number(value, "y"), _number(value, "width"), _number(value, "height"))
        names = [n for n in region_labels(region) if not is_negative_label(n)] or region_labels(region)
        found.setdefault(str(region.get("to_name") or ""), []).append(
            Exemplar(box, is_positive(region), names[0] if names else "")
        )
    return found


def context_clicks(regions: list[dict]) -> dict[str, Clicks]:
    """The context's ``keypointlabels`` regions, per image object, as sam2 reads them: when
    any click carries ``is_positive`` (the request came from the labeling UI), a click without
    it (an ordinary keypoint, or a smart one whose polarity Label Studio forgot on a reload) is
    left out rather than guessed; objects with negative clicks only give no mask."""
    found: dict[str, Clicks] = {}
    points = [r for r in regions if r.get("type") == "keypointlabels"]
    from_ui = any(has_flag(r) for r in points)
    for region in points:
        if from_ui and not has_flag(region):
            continue
        value = region.get("value") or {}
        name = str(region.get("to_name") or "")
        clicks = found.setdefault(name, Clicks(name))
        positive = is_positive(region)
        clicks.points.append((_number(value, "x"), _number(value, "y")))
        clicks.labels.append(1 if positive else 0)
        if positive:
            clicks.names += [n for n in region_labels(region) if not is_negative_label(n)]
    return {name: clicks for name, clicks in found.items() if 1 in clicks.labels}


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 0.0


def resolve_overlaps(
    candidates: list[tuple[str, float, np.ndarray]], iou: float
) -> list[tuple[str, float, np.ndarray]]:
    """(label, score, mask) candidates -> one per object: best score first, a candidate whose
    mask overlaps a kept one by more than ``iou`` is the same object (another label's, or a
    synonym's, answer) and is dropped."""
    kept: list[tuple[str, float, np.ndarray]] = []
    for cand in sorted(candidates, key=lambda c: -c[1]):
        if all(mask_iou(cand[2], k[2]) <= iou for k in kept):
            kept.append(cand)
    return kept
