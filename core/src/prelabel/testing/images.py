"""Synthetic media for tests: PNG images encoded with the standard library alone, and a short
mp4 video (OpenCV, imported only by :func:`write_video`)."""

from __future__ import annotations

import base64
import random
import struct
import zlib
from pathlib import Path
from typing import Any


def png_bytes(
    width: int = 64,
    height: int = 48,
    color: tuple[int, int, int] = (40, 120, 200),
    box: tuple[int, int, int, int] | None = None,
    box_color: tuple[int, int, int] = (250, 250, 250),
    noise: int = 0,
    seed: int = 0,
) -> bytes:
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


def write_video(path: Path, frames: int = 8, width: int = 96, height: int = 64) -> Path:
    """An mp4 (mp4v, 10 fps) of a white box moving 4 px right per frame over a blue background.
    Needs OpenCV (``pip install opencv-python-headless``), imported only here."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for f in range(frames):
        image = np.full((height, width, 3), (160, 90, 30), np.uint8)
        image[16:48, 10 + 4 * f : 40 + 4 * f] = 250
        writer.write(image)
    writer.release()
    return path


# EXIF orientation -> the transpose that turns the displayed image into the stored one (the
# inverse of what a viewer applies: 3 is a half turn, 6 is stored turned left and displayed
# turned right, 8 the opposite; https://www.exif.org/Exif2-2.PDF, tag 274 Orientation)
_STORE_AS = {3: "ROTATE_180", 6: "ROTATE_90", 8: "ROTATE_270"}


def exif_rotated_jpeg(
    width: int = 96,
    height: int = 64,
    box: tuple[int, int, int, int] = (8, 8, 40, 32),
    orientation: int = 6,
    color: tuple[int, int, int] = (40, 120, 200),
    box_color: tuple[int, int, int] = (250, 250, 250),
) -> bytes:
    """A JPEG a browser displays as ``width`` x ``height`` with a filled ``box`` (x1, y1, x2, y2
    in displayed pixels), whose pixels are stored turned and tagged with EXIF ``orientation``
    (3, 6 or 8), as phone cameras write portrait photos. Needs Pillow."""
    from PIL import Image

    shown = Image.new("RGB", (width, height), color)
    shown.paste(box_color, box)
    return exif_rotated(shown, orientation)


def exif_rotated(displayed: Any, orientation: int = 6) -> bytes:
    """``displayed`` (a PIL image, or encoded image bytes) as a JPEG that shows the same but
    stores its pixels turned, with EXIF ``orientation`` (3, 6 or 8). Needs Pillow."""
    import io

    from PIL import Image

    shown = Image.open(io.BytesIO(displayed)) if isinstance(displayed, bytes) else displayed
    stored = shown.convert("RGB").transpose(getattr(Image.Transpose, _STORE_AS[orientation]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()
