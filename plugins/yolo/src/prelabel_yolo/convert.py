"""Ultralytics ``Results`` of one image -> Label Studio regions for one control.

Every converter maps the model's class names to the project's labels with the control's
``predicted_values`` mapping and drops classes the project does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prelabel import ControlInfo, ParsedConfig
from prelabel.regions import brush, choices, keypoint, polygon, rectangle, rotated_rectangle


def boxes(control: ControlInfo, result: Any, names: dict[int, str], threshold: float, **_: Any) -> list[dict]:
    """RectangleLabels from a detect/segment/pose model (rotated ones from an OBB model)."""
    if getattr(result, "obb", None) is not None:
        return rotated_boxes(control, result, names, threshold)
    height, width = result.orig_shape
    data = result.boxes
    regions = []
    for (x1, y1, x2, y2), score, cls in zip(data.xyxy.tolist(), data.conf.tolist(), data.cls.tolist(), strict=True):
        label = control.map_label(names[int(cls)])
        if label and score >= threshold:
            regions.append(rectangle(control, label, x1, y1, x2 - x1, y2 - y1, width, height, score=score))
    return regions


def rotated_boxes(control: ControlInfo, result: Any, names: dict[int, str], threshold: float, **_: Any) -> list[dict]:
    """RectangleLabels with rotation from an OBB model (centre, size, angle in radians)."""
    height, width = result.orig_shape
    data = result.obb
    regions = []
    for (cx, cy, w, h, angle), score, cls in zip(
        data.xywhr.tolist(), data.conf.tolist(), data.cls.tolist(), strict=True
    ):
        label = control.map_label(names[int(cls)])
        if label and score >= threshold:
            regions.append(rotated_rectangle(control, label, cx, cy, w, h, angle, width, height, score=score))
    return regions


def polygons(control: ControlInfo, result: Any, names: dict[int, str], threshold: float, **_: Any) -> list[dict]:
    """PolygonLabels from a segmentation model's mask outlines (pixels of the original image)."""
    if result.masks is None:
        return []
    height, width = result.orig_shape
    regions = []
    for points, score, cls in zip(result.masks.xy, result.boxes.conf.tolist(), result.boxes.cls.tolist(), strict=True):
        label = control.map_label(names[int(cls)])
        if label and score >= threshold and len(points) >= 3:
            regions.append(polygon(control, label, points.tolist(), width, height, score=score))
    return regions


def masks(control: ControlInfo, result: Any, names: dict[int, str], threshold: float, **_: Any) -> list[dict]:
    """BrushLabels (RLE) from a segmentation model run with ``retina_masks``, so each mask has
    the original image's size (upstream resized letterboxed masks and shifted them)."""
    if result.masks is None:
        return []
    regions = []
    for mask, score, cls in zip(result.masks.data, result.boxes.conf.tolist(), result.boxes.cls.tolist(), strict=True):
        label = control.map_label(names[int(cls)])
        if not label or score < threshold:
            continue
        binary = (mask > 0.5).cpu().numpy()
        if binary.any():
            regions.append(brush(control, label, binary, score=score))
    return regions


def keypoint_map(control: ControlInfo) -> dict[tuple[str | None, int], str]:
    """(model class or None, keypoint index) -> project label.

    As upstream: ``<Label value="nose" predicted_values="person" model_index="0"/>``. A config
    whose labels carry no ``model_index`` maps its labels to keypoints 0, 1, 2... in order."""
    mapping: dict[tuple[str | None, int], str] = {}
    for label in control.labels:
        attrs = control.label_attrs.get(label, {})
        index = attrs.get("model_index")
        if index is None or not str(index).strip().isdigit():
            continue
        classes = [c.strip().lower() for c in attrs.get("predicted_values", "").split(",") if c.strip()]
        for cls in classes or [None]:
            mapping[(cls, int(index))] = label
    return mapping or {(None, i): label for i, label in enumerate(control.labels)}


def keypoints(
    control: ControlInfo,
    result: Any,
    names: dict[int, str],
    threshold: float,
    config: ParsedConfig | None = None,
    **_: Any,
) -> list[dict]:
    """KeyPointLabels from a pose model; with a RectangleLabels control named ``<name>_bbox``
    (and ``model_add_bboxes`` not false) each person's box too, as the points' parent."""
    if result.keypoints is None:
        return []
    height, width = result.orig_shape
    mapping = keypoint_map(control)
    point_threshold = control.attr("model_point_threshold", 0.0, float)
    point_size = control.attr("model_point_size", 1.0, float)
    bbox_control = config.control(f"{control.name}_bbox") if config is not None else None
    add_boxes = control.attr("model_add_bboxes", True, bool)
    if bbox_control is None or bbox_control.tag != "RectangleLabels" or not add_boxes:
        bbox_control = None
    xy = result.keypoints.xy.tolist()
    conf = result.keypoints.conf.tolist() if result.keypoints.conf is not None else [[1.0] * len(p) for p in xy]
    regions = []
    for person, (points, point_conf, score, cls, box) in enumerate(
        zip(xy, conf, result.boxes.conf.tolist(), result.boxes.cls.tolist(), result.boxes.xyxy.tolist(), strict=True)
    ):
        if score < threshold:
            continue
        cls_name = str(names[int(cls)]).strip().lower()
        labelled = [(mapping.get((cls_name, k)) or mapping.get((None, k)), k) for k in range(len(points))]
        if not any(label for label, _ in labelled):
            continue  # a class the project has no keypoints for
        parent = None
        if bbox_control is not None and (box_label := bbox_control.map_label(names[int(cls)])):
            x1, y1, x2, y2 = box
            parent = rectangle(bbox_control, box_label, x1, y1, x2 - x1, y2 - y1, width, height, score=score)
            regions.append(parent)
        for label, k in labelled:
            if label is None or point_conf[k] < point_threshold:
                continue
            px, py = points[k]
            if px <= 0 and py <= 0:
                continue  # ultralytics reports invisible keypoints at (0, 0)
            region = keypoint(
                control, label, px, py, width, height, score=float(point_conf[k]), width=100.0 * point_size / width
            )
            region["meta"] = {"text": [f"person-{person}"]}
            if parent is not None:
                region["parentID"] = parent["id"]
            regions.append(region)
    return regions


def classes(control: ControlInfo, result: Any, names: dict[int, str], threshold: float, **_: Any) -> list[dict]:
    """Choices from a classification model: the best mapped choice (single) or every mapped
    choice at or above the threshold (``choice="multiple"``). A choice several model classes
    map to scores as its best class."""
    scores: dict[str, float] = {}
    for i, p in enumerate(result.probs.data.tolist()):
        label = control.map_label(names[i])
        if label:
            scores[label] = max(scores.get(label, 0.0), float(p))
    if not scores:
        return []
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    picked = [(lab, s) for lab, s in (ranked if control.is_multiple else ranked[:1]) if s >= threshold]
    if not picked:
        return []
    return [choices(control, [lab for lab, _ in picked], score=min(s for _, s in picked))]


def mapped_classes(kind: str, control: ControlInfo, names: dict[int, str]) -> list[int] | None:
    """The model classes the project has labels for (None: all, for classification). Passed
    to the model, so unmapped classes are dropped before NMS and never use up ``max_det``."""
    if kind == "choices":
        return None
    if kind == "keypoints":
        mapping = keypoint_map(control)
        if any(cls is None for cls, _ in mapping):
            return list(names)
        return [i for i, name in names.items() if any(cls == str(name).strip().lower() for cls, _ in mapping)]
    return [i for i, name in names.items() if control.map_label(name)]


Converter = Callable[..., list[dict]]

#: output kind -> (converter, ultralytics tasks whose models can produce it)
CONVERTERS: dict[str, tuple[Converter, tuple[str, ...]]] = {
    "boxes": (boxes, ("detect", "segment", "pose", "obb")),
    "obb": (rotated_boxes, ("obb",)),
    "polygons": (polygons, ("segment",)),
    "brush": (masks, ("segment",)),
    "keypoints": (keypoints, ("pose",)),
    "choices": (classes, ("classify",)),
}
