"""Decoding task images safely: the pixel count is checked from the header before any
pixel is decoded, so a small file that expands to gigabytes (a decompression bomb) is a
clear per-task error instead of an out-of-memory crash. Needs Pillow (``prelabel[vision]``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from prelabel.media import MediaError

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MAX_PIXELS = 100_000_000


class ImageRejected(MediaError):
    """The file is not a decodable image, or is larger than allowed."""


def open_image(source: bytes | Path | str, max_pixels: int = DEFAULT_MAX_PIXELS,
               mode: str | None = "RGB") -> Image.Image:
    """Open, check the size, then decode (converted to ``mode`` unless None)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('decoding images needs Pillow: pip install "prelabel[vision]"') from exc
    fp = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    try:
        image = Image.open(fp)  # reads the header only
    except Image.DecompressionBombError as exc:  # Pillow's own, larger limit
        raise ImageRejected(f"decompression bomb refused: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageRejected(f"not a decodable image: {exc}") from exc
    width, height = image.size
    frames = getattr(image, "n_frames", 1) or 1
    if width * height * frames > max_pixels:
        image.close()
        raise ImageRejected(f"image of {width}x{height}{f'x{frames} frames' if frames > 1 else ''} pixels is "
                            f"more than MEDIA_MAX_PIXELS={max_pixels}; refused")
    try:
        image.load()
        return image.convert(mode) if mode and image.mode != mode else image
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(f"the image could not be decoded: {exc}") from exc
