"""Helpers upstream model files import from ``label_studio_ml.utils``, with upstream's meaning."""

from __future__ import annotations

import difflib
import os
from collections import OrderedDict
from typing import Any
from urllib.parse import urlparse

#: the data key Label Studio uses for a task imported without one
DATA_UNDEFINED_NAME = "$undefined$"

_CLOUD_PREFIXES = ("s3:", "gs:", "azure-blob:", "azure-spi:")


def is_valid_url(path: Any) -> bool:
    """True when ``path`` parses as a URL with both a scheme and a host (``http://h/x``,
    ``ftp://h``; not ``/data/upload/1/x.png`` nor ``c:\\x.jpg``)."""
    try:
        parsed = urlparse(path)
    except (ValueError, TypeError, AttributeError):
        return False
    return bool(parsed.scheme and parsed.netloc)


def is_preload_needed(url: Any) -> bool:
    """True when a task data value refers to a file rather than being the content itself:
    a Label Studio upload or local-files path, a cloud URI, a URL, or an existing local path."""
    if not isinstance(url, str):
        return False
    if url.startswith(("upload", "/upload")):
        url = "/data" + ("" if url.startswith("/") else "/") + url
    return (
        url.startswith("/data/upload")
        or (url.startswith("/data/") and "?d=" in url)
        or url.startswith(_CLOUD_PREFIXES)
        or is_valid_url(url)
        or os.path.exists(url)
    )


def get_single_tag_keys(parsed_label_config: dict, control_type: str, object_type: str) -> tuple[str, str, str, list]:
    """(from_name, to_name, data key, labels) of a config with exactly one control of
    ``control_type`` on one object of ``object_type``; AssertionError otherwise."""
    assert len(parsed_label_config) == 1, "the label config must have exactly one control tag"
    from_name, info = next(iter(parsed_label_config.items()))
    assert info["type"] == control_type, (
        f'label config has control tag "<{info["type"]}>" but "<{control_type}>" is expected for this model'
    )
    assert len(info["to_name"]) == 1 and len(info["inputs"]) == 1
    assert info["inputs"][0]["type"] == object_type
    return from_name, info["to_name"][0], info["inputs"][0]["value"], info["labels"]


def get_first_tag_keys(
    parsed_label_config: dict, control_type: str, object_type: str
) -> tuple[str, dict] | tuple[None, None]:
    """(from_name, its parsed entry) of the first control of ``control_type`` with an input of
    ``object_type``, in config order; (None, None) when there is none."""
    for from_name, info in parsed_label_config.items():
        if info.get("type") != control_type:
            continue
        if any(item.get("type") == object_type for item in info.get("inputs") or ()):
            return from_name, info
    return None, None


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
    """(width, height) of an image file as a browser shows it, EXIF orientation applied
    (needs Pillow). Only the header is read."""
    from PIL import Image

    with Image.open(filepath) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation
    # 5-8 are the orientations that turn the image by 90 degrees
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


class InMemoryLRUDictCache:
    """A dict that keeps the ``capacity`` most recently used keys (``get`` and ``put`` count
    as use); ``get`` of a missing key is None."""

    def __init__(self, capacity: int = 1):
        self.cache: OrderedDict[Any, Any] = OrderedDict()
        self.capacity = capacity

    def __contains__(self, key: Any) -> bool:
        return key in self.cache

    def get(self, key: Any) -> Any:
        if key not in self.cache:
            return None
        self.cache.move_to_end(key)
        return self.cache[key]

    def put(self, key: Any, value: Any) -> None:
        if key in self.cache:
            self.cache.move_to_end(key)
        elif len(self.cache) >= self.capacity:
            self.cache.popitem(last=False)
        self.cache[key] = value

    def __str__(self) -> str:
        return str(self.cache)


def match_labels(input: str, labels: list[str]) -> list[str]:
    """For each line of ``input`` (a model's answer, one class per line), the label it is
    most similar to (difflib's ratio; the first of equal ones). One label per line."""
    matched = []
    for line in input.splitlines():
        ratios = [difflib.SequenceMatcher(None, line, label).ratio() for label in labels]
        matched.append(labels[ratios.index(max(ratios))])
    return matched


def compare_nested_structures(a: Any, b: Any, path: str = "", rel: float = 1e-4, abs: float | None = None) -> None:
    """Assert that two nested dicts/lists are equal, floats within ``pytest.approx(rel, abs)``;
    the AssertionError names the path of the first difference (needs pytest)."""
    from pytest import approx

    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"Keys mismatch at {path}"
        for key in a:
            compare_nested_structures(a[key], b[key], f"{path}.{key}", rel, abs)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"List size mismatch at {path}"
        for i, (left, right) in enumerate(zip(a, b, strict=True)):
            compare_nested_structures(left, right, f"{path}[{i}]", rel, abs)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == approx(b, rel=rel, abs=abs), f"Mismatch at {path}"
    else:
        assert a == b, f"Mismatch at {path}"


__all__ = [
    "DATA_UNDEFINED_NAME",
    "InMemoryLRUDictCache",
    "compare_nested_structures",
    "get_choice",
    "get_first_tag_keys",
    "get_image_size",
    "get_single_tag_keys",
    "is_preload_needed",
    "is_skipped",
    "is_valid_url",
    "match_labels",
]
