"""Label Studio's interactive context -> SAM 2 prompts (pure Python, no model needed).

What the labeling UI sends (docs/label-studio-protocol.md, "What the labeling UI sends for
smart tools"): one smart click or box per request, with the other regions of the same type,
the same label and the same image. Smart points carry ``is_positive`` (false for Alt+click)
as long as the page is open; ordinary-tool points never do, and smart points lose the flag
on a reload or a draft restore, because Label Studio does not store it.

So, images:

- When any click of the request carries ``is_positive`` (it came from the labeling UI), only
  flagged clicks are prompts. A click without the flag is an ordinary keypoint or one whose
  polarity Label Studio forgot; guessing either way would flip what the annotator did
  (a positive guess turns an old Alt+click positive, a negative guess turns old clicks
  negative), so it is left out and the mask is built from the clicks of this page view.
- When no click carries the flag (API clients, scripts), every click is a prompt.
- A click whose label is named like ``negative``/``background`` is negative whatever its
  flag (the UI sends ``is_positive: true`` for a plain click with a Background label).
- The last ``rectanglelabels`` region is the box (the UI sends a smart box alone).

A prompt with negative clicks only has nothing to subtract from: no mask is made for it.

Videos: each ``videorectangle`` region is one object, prompted by its latest keyframe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_NEGATIVE = re.compile(r"(^|[^a-z])(neg|negative|background|bg|exclude)([^a-z]|$)", re.IGNORECASE)


def is_negative_label(label: str) -> bool:
    """``negative``, ``Negative click``, ``background``, ``bg``, ``neg`` are negative clicks."""
    return bool(_NEGATIVE.search(str(label)))


def region_labels(region: dict) -> list[str]:
    value = region.get("value") or {}
    labels = value.get(region.get("type") or "") or value.get("labels") or []
    return [str(x) for x in labels] if isinstance(labels, list) else []


def has_flag(region: dict) -> bool:
    """Whether the region says its polarity (Label Studio's ``is_positive``)."""
    return region.get("is_positive") is not None


def is_positive(region: dict) -> bool:
    """A negative-named label makes a click negative; otherwise ``is_positive`` decides
    (Alt+click sends false), and a click without it is positive."""
    if any(is_negative_label(label) for label in region_labels(region)):
        return False
    flag = region.get("is_positive")
    if flag is None:
        return True
    return flag.strip().lower() in {"1", "true", "yes"} if isinstance(flag, str) else bool(flag)


def _number(value: dict, key: str) -> float:
    raw = value.get(key)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"context region value has no numeric {key!r} (got {raw!r})")
    return float(raw)


@dataclass
class ImagePrompt:
    """The clicks and box for one image object, in percent of the image (Label Studio's units)."""

    to_name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    point_labels: list[int] = field(default_factory=list)  # 1 positive, 0 negative
    box: tuple[float, float, float, float] | None = None  # x, y, width, height
    labels: list[str] = field(default_factory=list)  # labels of the positive prompts, in order

    @property
    def empty(self) -> bool:
        """Nothing to segment: no box and no positive click (negative clicks alone say only
        where the object is not)."""
        return self.box is None and 1 not in self.point_labels

    def pixels(self, width: int, height: int) -> tuple[Any, Any, Any]:
        """(points N x 2, point labels N, box x1 y1 x2 y2) in pixels; None where absent."""
        import numpy as np

        points = labels = box = None
        if self.points:
            points = np.array([[x * width / 100.0, y * height / 100.0] for x, y in self.points], dtype=np.float32)
            labels = np.array(self.point_labels, dtype=np.int32)
        if self.box is not None:
            x, y, w, h = self.box
            box = np.array(
                [x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100], dtype=np.float32
            )
        return points, labels, box


def image_prompts(regions: list[dict]) -> dict[str, ImagePrompt]:
    """One prompt per image object (``to_name``) the context regions point at; see the module
    docstring for which clicks count."""
    clicks = [r for r in regions if r.get("type") == "keypointlabels"]
    from_ui = any(has_flag(r) for r in clicks)
    prompts: dict[str, ImagePrompt] = {}
    for region in regions:
        kind = region.get("type")
        if kind not in ("keypointlabels", "rectanglelabels") or (
            kind == "keypointlabels" and from_ui and not has_flag(region)
        ):
            continue
        value = region.get("value") or {}
        prompt = prompts.setdefault(str(region.get("to_name") or ""), ImagePrompt(str(region.get("to_name") or "")))
        positive = is_positive(region)
        if kind == "keypointlabels":
            prompt.points.append((_number(value, "x"), _number(value, "y")))
            prompt.point_labels.append(1 if positive else 0)
        else:  # the latest box wins: it is the one the annotator just drew
            prompt.box = (_number(value, "x"), _number(value, "y"), _number(value, "width"), _number(value, "height"))
        if positive:
            prompt.labels += [label for label in region_labels(region) if not is_negative_label(label)]
    return {name: p for name, p in prompts.items() if not p.empty}


@dataclass
class VideoObject:
    """One VideoRectangle of the context: the object to track from its latest keyframe."""

    region_id: str
    to_name: str
    labels: list[str]
    frame: int  # Label Studio's frame number (1-based) of the prompt
    box: tuple[float, float, float, float]  # x, y, width, height in percent
    keyframes: list[dict]  # the region's sequence up to and including the prompt frame
    frames_count: int | None
    duration: float | None


def video_objects(regions: list[dict]) -> list[VideoObject]:
    objects = []
    for region in regions:
        if region.get("type") != "videorectangle":
            continue
        value = region.get("value") or {}
        sequence = [item for item in value.get("sequence") or [] if isinstance(item, dict) and "frame" in item]
        if not sequence:
            continue
        sequence.sort(key=lambda item: int(item["frame"]))
        last = sequence[-1]
        frames_count = value.get("framesCount")
        duration = value.get("duration")
        objects.append(
            VideoObject(
                region_id=str(region.get("id") or f"obj{len(objects) + 1}"),
                to_name=str(region.get("to_name") or ""),
                labels=[str(x) for x in value.get("labels") or []],
                frame=int(last["frame"]),
                box=(_number(last, "x"), _number(last, "y"), _number(last, "width"), _number(last, "height")),
                keyframes=sequence,
                frames_count=int(frames_count) if isinstance(frames_count, (int, float)) and frames_count > 0 else None,
                duration=float(duration) if isinstance(duration, (int, float)) and duration > 0 else None,
            )
        )
    return objects
