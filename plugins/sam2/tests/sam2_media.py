"""Synthetic images, videos and Label Studio interactive contexts for the sam2 tests."""

from __future__ import annotations

from pathlib import Path

from prelabel.testing import images
from prelabel.testing.images import data_uri, png_bytes

WIDTH, HEIGHT = 96, 64  # not square, so a mask at the model's square size would show


def image_uri(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> str:
    x = 10 + (seed * 9) % 30
    return data_uri(
        png_bytes(width, height, color=(40 + seed * 20 % 200, 120, 200), box=(x, 12, x + 40, 48), noise=6, seed=seed)
    )


def click(
    x: float, y: float, label: str = "Car", positive: bool | None = None, to_name: str = "image", from_name: str = "kp"
) -> dict:
    """A KeyPointLabels region as Label Studio sends it in the interactive context (percent)."""
    region = {
        "id": f"kp{x:.0f}{y:.0f}",
        "from_name": from_name,
        "to_name": to_name,
        "type": "keypointlabels",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]},
    }
    if positive is not None:
        region["is_positive"] = positive
    return region


def box(
    x: float, y: float, w: float, h: float, label: str = "Car", to_name: str = "image", from_name: str = "rect"
) -> dict:
    return {
        "id": "box1",
        "from_name": from_name,
        "to_name": to_name,
        "type": "rectanglelabels",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]},
    }


def write_video(path: Path, frames: int = 6, width: int = 96, height: int = 64) -> Path:
    return images.write_video(path, frames, width, height)


def video_box(
    region_id: str,
    frame: int,
    x: float,
    y: float,
    w: float,
    h: float,
    labels: tuple[str, ...] = ("Car",),
    frames_count: int = 6,
    earlier: list[dict] | None = None,
) -> dict:
    """A VideoRectangle region of the context with a keyframe at ``frame`` (percent)."""
    sequence = list(earlier or []) + [
        {
            "frame": frame,
            "enabled": True,
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": 0,
            "time": (frame - 1) / 10,
        }
    ]
    return {
        "id": region_id,
        "from_name": "box",
        "to_name": "video",
        "type": "videorectangle",
        "value": {
            "sequence": sequence,
            "framesCount": frames_count,
            "duration": frames_count / 10,
            "labels": list(labels),
        },
    }
