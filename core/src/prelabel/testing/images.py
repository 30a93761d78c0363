"""Synthetic images for tests, encoded as PNG with the standard library alone."""

from __future__ import annotations

import base64
import random
import struct
import zlib


def png_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (40, 120, 200),
              box: tuple[int, int, int, int] | None = None, box_color: tuple[int, int, int] = (250, 250, 250),
              noise: int = 0, seed: int = 0) -> bytes:
    """An RGB PNG filled with ``color``, optionally with a filled ``box`` (x1, y1, x2, y2)."""
    rng = random.Random(seed)
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type 0
        for x in range(width):
            inside = box is not None and box[0] <= x < box[2] and box[1] <= y < box[3]
            r, g, b = box_color if inside else color
            if noise:
                r, g, b = (max(0, min(255, c + rng.randint(-noise, noise))) for c in (r, g, b))
            row += bytes((r, g, b))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 6)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """A ``data:`` URI for ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
