"""Synthetic images for the grounding_sam tests."""

from __future__ import annotations

from prelabel.testing.images import data_uri, png_bytes

WIDTH, HEIGHT = 96, 64


def image_uri(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> str:
    x = 8 + (seed * 11) % 30
    return data_uri(
        png_bytes(width, height, color=(30 + seed * 25 % 200, 100, 180), box=(x, 10, x + 36, 50), noise=8, seed=seed)
    )


def image_tasks(n: int, start: int = 1) -> list[dict]:
    return [{"id": start + i, "data": {"image": image_uri(i)}} for i in range(n)]
