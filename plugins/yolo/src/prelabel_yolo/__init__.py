"""yolo: Ultralytics YOLO for Label Studio.

RectangleLabels (boxes, or rotated boxes with ``model_obb="true"``), PolygonLabels and
BrushLabels (segmentation), Choices (classification) and KeyPointLabels (pose) on Image;
VideoRectangle (tracking) on Video. Trains detection/segmentation from the project's
annotations. Importing this module stays light: torch and ultralytics load in ``setup``.
"""

from __future__ import annotations

from prelabel import hookimpl
from prelabel_yolo.backend import YoloBackend
from prelabel_yolo.settings import YoloSettings

__all__ = ["YoloBackend", "YoloSettings"]


@hookimpl
def register_backends(register):
    register(YoloBackend)
