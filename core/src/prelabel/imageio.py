"""Decoding task images, in one place for every plugin.

- Safely: the pixel count is checked from the header before any pixel is decoded, so a small
  file that expands to gigabytes (a decompression bomb) is a clear per-task error instead of
  an out-of-memory crash.
- As the browser shows them: the EXIF orientation is applied (a phone's portrait JPEG is
  stored landscape with an Orientation tag), because Label Studio's labeling canvas draws the
  oriented image and reads every region in percent of that displayed size. A model run on the
  raw pixels would put boxes transposed and masks garbled.

Needs Pillow (``prelabel[vision]``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prelabel.mediaerrors import ImageRejected

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MAX_PIXELS = 100_000_000
# MEDIA_MAX_PIXELS also bounds the memory a decode takes: at most this many bytes per allowed
# pixel (what the largest allowed RGBA image needs: Pillow keeps it, and its RGB copy, at 4
# bytes a pixel). Decoders that need more per pixel are refused earlier: Pillow's WebP decoder
# held 15 bytes a pixel at its peak (a 144 kB 81 MP WebP, under 100 MP, took 1.2 GB).
DECODE_BYTES_PER_ALLOWED_PIXEL = 8
_DECODER_EXTRA_BYTES = {"WEBP": 11}  # per pixel, measured with Pillow 13 (a whole decoded frame besides)
EXIF_ORIENTATION = 0x0112  # TIFF/EXIF tag 274: 1 is upright, 2-8 are flips and quarter turns


def open_image(
    source: bytes | Path | str, max_pixels: int = DEFAULT_MAX_PIXELS, mode: str | None = "RGB", orient: bool = True
) -> Image.Image:
    """Open, check the size, decode, turn it by its EXIF orientation (unless ``orient`` is
    False), and convert it to ``mode`` (unless None). Its ``size`` is then the displayed size
    Label Studio sends as ``original_width``/``original_height``."""
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
    except ImportError as exc:  # ultralytics patches Image.open to try an optional HEIF plugin on failure
        raise ImageRejected("not a decodable image: no image decoder recognizes it") from exc
    width, height = image.size
    frames = getattr(image, "n_frames", 1) or 1
    if width * height * frames > max_pixels:
        image.close()
        raise ImageRejected(
            f"image of {width}x{height}{f'x{frames} frames' if frames > 1 else ''} pixels is "
            f"more than MEDIA_MAX_PIXELS={max_pixels}; refused"
        )
    cost, budget = decode_bytes(image, mode), max_pixels * DECODE_BYTES_PER_ALLOWED_PIXEL
    if cost > budget:
        image.close()
        raise ImageRejected(
            f"decoding this {image.format} of {width}x{height} pixels takes about {cost // 2**20} MB "
            f"({cost // (width * height)} bytes a pixel), more than MEDIA_MAX_PIXELS={max_pixels} allows "
            f"({DECODE_BYTES_PER_ALLOWED_PIXEL} bytes a pixel: {budget // 2**20} MB); refused"
        )
    try:
        image.load()
        if orient:
            image = apply_orientation(image)
        return image.convert(mode) if mode and image.mode != mode else image
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(f"the image could not be decoded: {exc}") from exc


def decode_bytes(image: Image.Image, mode: str | None = "RGB") -> int:
    """About how many bytes decoding ``image`` (header read, not yet loaded) and converting it
    to ``mode`` hold at the peak: Pillow's own buffer (1 byte a pixel for 1/L/P, else 4), the
    converted copy's, and what the format's decoder holds besides."""
    pixels = image.size[0] * image.size[1]
    per_pixel = 1 if image.mode in ("1", "L", "P") else 4
    if mode and image.mode != mode:
        per_pixel += 1 if mode in ("1", "L", "P") else 4
    return pixels * (per_pixel + _DECODER_EXTRA_BYTES.get(image.format or "", 0))


def apply_orientation(image: Image.Image) -> Image.Image:
    """The image as a browser displays it (``ImageOps.exif_transpose``); the same object when
    it has no orientation to apply, so upright images are not copied."""
    from PIL import ImageOps

    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # an unreadable EXIF block: show it as stored, as browsers do
        return image
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def exif_orientation(source: bytes | Path | str) -> int:
    """The EXIF orientation tag (1 upright .. 8) read from the header alone; 1 when there is
    none or the file is not an image Pillow reads."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source)) as image:
            value = image.getexif().get(EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, ImportError, Image.DecompressionBombError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def image_array(source: bytes | Path | str, max_pixels: int = DEFAULT_MAX_PIXELS, channels: str = "RGB") -> Any:
    """The image as displayed, as a writable H x W x 3 uint8 numpy array in ``channels`` order
    (``RGB``, or ``BGR`` for OpenCV and ultralytics)."""
    import numpy as np

    if channels not in ("RGB", "BGR"):
        raise ValueError(f"channels must be RGB or BGR, got {channels!r}")
    array = np.array(open_image(source, max_pixels=max_pixels, mode="RGB"))  # np.array copies: writable
    return np.ascontiguousarray(array[:, :, ::-1]) if channels == "BGR" else array
