"""The labeling UI's interactive bodies (core's prelabel/testing/data/ui/, see its README) and the cases
derived from them by the rules of docs/label-studio-protocol.md, "What the labeling UI sends
for smart tools"."""

from __future__ import annotations

import copy

from prelabel.testing.sam_events import ui_smart_keypoint_body, ui_smart_rectangle_region

IMAGE_PATH = "/data/upload/1/38c65900-p1_large.png"
WIDTH, HEIGHT = 1600, 1200  # the captured image's natural size (original_width/height)


def smart_keypoint_body() -> dict:
    """The captured body: two ordinary keypoints, then a smart one (is_positive true)."""
    return ui_smart_keypoint_body()


def smart_rectangle_region() -> dict:
    return ui_smart_rectangle_region()


def with_context(body: dict, regions: list[dict]) -> dict:
    body = copy.deepcopy(body)
    body["params"]["context"]["result"] = regions
    return body


def smart_point(
    x: float, y: float, positive: bool, label: str = "defect", newest: bool = True, point_id: str = "p"
) -> dict:
    """A smart keypoint as the UI sends it while the page is open: ``is_positive`` always
    (false for Alt+click); ``value.labels`` on the newest only, as in the captured body."""
    value = {"x": x, "y": y, "width": 0.2413, "keypointlabels": [label]}
    if newest:
        value["labels"] = [label]
    return {
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": value,
        "is_positive": positive,
        "id": point_id,
        "from_name": "tag2",
        "to_name": "image",
        "type": "keypointlabels",
        "origin": "manual",
    }


def after_reload(region: dict) -> dict:
    """The same point after a page reload or draft restore: the flag and value.labels are gone."""
    region = copy.deepcopy(region)
    region.pop("is_positive", None)
    region["value"].pop("labels", None)
    return region
