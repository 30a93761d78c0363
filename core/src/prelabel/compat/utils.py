"""Helpers upstream model files import from ``label_studio_ml.utils``."""

from __future__ import annotations

import os
from typing import Any

#: the data key Label Studio uses for a task imported without one
DATA_UNDEFINED_NAME = "$undefined$"

_CLOUD_PREFIXES = ("s3:", "gs:", "azure-blob:", "azure-spi:")


def is_preload_needed(url: Any) -> bool:
    """True when a task data value refers to a file rather than being the content itself."""
    if not isinstance(url, str):
        return False
    if url.startswith(("upload", "/upload")):
        url = "/data" + ("" if url.startswith("/") else "/") + url
    return (url.startswith("/data/upload") or (url.startswith("/data/") and "?d=" in url)
            or url.startswith(_CLOUD_PREFIXES) or url.startswith(("http://", "https://"))
            or os.path.exists(url))


def get_single_tag_keys(parsed_label_config: dict, control_type: str, object_type: str) -> tuple[str, str, str, list]:
    """(from_name, to_name, data key, labels) of a config with exactly one control of
    ``control_type`` on one object of ``object_type``; AssertionError otherwise."""
    assert len(parsed_label_config) == 1, "the label config must have exactly one control tag"
    from_name, info = next(iter(parsed_label_config.items()))
    assert info["type"] == control_type, (
        f'label config has control tag "<{info["type"]}>" but "<{control_type}>" is expected for this model')
    assert len(info["to_name"]) == 1 and len(info["inputs"]) == 1
    assert info["inputs"][0]["type"] == object_type
    return from_name, info["to_name"][0], info["inputs"][0]["value"], info["labels"]


def is_skipped(task: dict) -> bool:
    """True when the task's only annotation was skipped (cancelled)."""
    annotations = task.get("annotations") or []
    if len(annotations) != 1:
        return False
    return bool(annotations[0].get("skipped") or annotations[0].get("was_cancelled"))


def get_choice(task: dict) -> str:
    """The first choice of the task's first annotation."""
    return task["annotations"][0]["result"][0]["value"]["choices"][0]


def get_image_size(filepath: str) -> tuple[int, int]:
    """(width, height) of an image file (needs Pillow)."""
    from PIL import Image

    with Image.open(filepath) as image:
        return image.size
