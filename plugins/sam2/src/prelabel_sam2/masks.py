"""Masks -> Label Studio regions: brush (RLE), polygon (simplified outline) or box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prelabel import ControlInfo
from prelabel.regions import brush, polygon, rectangle


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The pixel box (x, y, width, height) around a mask's pixels; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    x1, y1 = int(xs.min()), int(ys.min())
    return x1, y1, int(xs.max()) - x1 + 1, int(ys.max()) - y1 + 1


def mask_polygon(mask: np.ndarray, tolerance: float = 1.5) -> list[tuple[float, float]] | None:
    """The outline of the mask's largest connected part, simplified (Douglas-Peucker) so no
    point of the outline is more than ``tolerance`` pixels away; None when nothing is left."""
    import cv2

    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    if tolerance > 0:
        largest = cv2.approxPolyDP(largest, tolerance, True)
    points = [(float(x), float(y)) for x, y in largest.reshape(-1, 2)]
    if len(points) < 3:
        height, width = mask.shape[:2]
        box = mask_box(mask)
        if box is None:
            return None
        x, y, w, h = box  # a sliver or a single pixel: its bounding box still shows where it is
        points = [(x, y), (min(x + w, width), y), (min(x + w, width), min(y + h, height)), (x, min(y + h, height))]
    return points


def mask_region(
    control: ControlInfo,
    labels: str | Sequence[str],
    mask: np.ndarray,
    score: float | None = None,
    tolerance: float = 1.5,
) -> dict | None:
    """The region ``control`` takes for a mask: BrushLabels -> RLE, PolygonLabels -> polygon,
    RectangleLabels -> box. None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    height, width = mask.shape[:2]
    if control.tag == "BrushLabels":
        return brush(control, labels, mask, score=score)
    if control.tag == "PolygonLabels":
        points = mask_polygon(mask, tolerance)
        return polygon(control, labels, points, width, height, score=score) if points else None
    if control.tag == "RectangleLabels":
        x, y, w, h = mask_box(mask)
        return rectangle(control, labels, x, y, w, h, width, height, score=score)
    raise ValueError(f"{control.tag} cannot hold a mask")
