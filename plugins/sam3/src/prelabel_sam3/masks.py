"""Masks -> Label Studio regions: brush (RLE), polygon (simplified outline) or box."""

from __future__ import annotations

import numpy as np

from prelabel import ControlInfo
from prelabel.regions import brush, polygon, rectangle

MASK_TAGS = ("BrushLabels", "PolygonLabels")
OUTPUT_TAGS = ("BrushLabels", "PolygonLabels", "RectangleLabels")


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Pixel (x, y, width, height) around the mask's pixels; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    x1, y1 = int(xs.min()), int(ys.min())
    return x1, y1, int(xs.max()) - x1 + 1, int(ys.max()) - y1 + 1


def mask_outline(mask: np.ndarray, tolerance: float) -> list[tuple[float, float]] | None:
    """The largest connected part's outline, simplified to within ``tolerance`` pixels."""
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
    if len(points) < 3:  # a sliver: its box still shows where it is
        x, y, w, h = mask_box(mask)
        points = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    return points


def mask_region(
    control: ControlInfo, label: str, mask: np.ndarray, score: float | None = None, tolerance: float = 1.5
) -> dict | None:
    """The region ``control`` takes for a mask (BrushLabels RLE, PolygonLabels outline,
    RectangleLabels box); None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    height, width = mask.shape[:2]
    labels = [label] if label else []
    if control.tag == "BrushLabels":
        return brush(control, labels, mask, score=score)
    if control.tag == "PolygonLabels":
        points = mask_outline(mask, tolerance)
        return polygon(control, labels, points, width, height, score=score) if points else None
    if control.tag == "RectangleLabels":
        x, y, w, h = mask_box(mask)
        return rectangle(control, labels, x, y, w, h, width, height, score=score)
    raise ValueError(f"{control.tag} cannot hold a mask")
