"""Synthetic images, videos and Label Studio contexts for the sam3 tests."""

from __future__ import annotations

import json
from pathlib import Path

from prelabel.testing import images
from prelabel.testing.images import data_uri, png_bytes
from prelabel.testing.sam_events import ui_smart_rectangle_region

WIDTH, HEIGHT = 96, 64  # not square, so a mask at the model's square size would show


def image_uri(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> str:
    x = 10 + (seed * 9) % 30
    return data_uri(
        png_bytes(width, height, color=(40 + seed * 20 % 200, 120, 200), box=(x, 12, x + 40, 48), noise=6, seed=seed)
    )


def image_tasks(n: int, start: int = 1) -> list[dict]:
    return [{"id": start + i, "data": {"image": image_uri(i)}} for i in range(n)]


def smart_box(
    x: float, y: float, w: float, h: float, label: str = "defect", positive: bool | None = None, from_name: str = "tag3"
) -> dict:
    """The captured smart rectangle, moved to (x, y, w, h) percent; Alt gives ``is_positive: false``."""
    region = json.loads(json.dumps(ui_smart_rectangle_region()))
    region["value"].update(x=x, y=y, width=w, height=h, rectanglelabels=[label])
    region["from_name"] = from_name
    if positive is not None:
        region["is_positive"] = positive
    return region


def write_video(path: Path, frames: int = 4, width: int = 96, height: int = 64) -> Path:
    return images.write_video(path, frames, width, height)
