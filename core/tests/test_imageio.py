"""Core's image decoder turns images the way browsers show them (EXIF orientation)."""

from __future__ import annotations

import pytest

pytest.importorskip("PIL", reason='needs Pillow: pip install "prelabel[vision]"')
np = pytest.importorskip("numpy", reason='needs numpy: pip install "prelabel[vision]"')

from prelabel.imageio import ImageRejected, exif_orientation, image_array, open_image  # noqa: E402
from prelabel.testing.images import exif_rotated_jpeg, png_bytes  # noqa: E402

BOX = (8, 8, 40, 32)  # displayed x1, y1, x2, y2 of the white box in a 96 x 64 image


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_open_image_gives_the_displayed_pixels(orientation):
    data = exif_rotated_jpeg(96, 64, BOX, orientation)
    assert exif_orientation(data) == orientation
    image = open_image(data)
    assert image.size == (96, 64)
    pixels = np.array(image).astype(int)
    assert (pixels[10:30, 10:38] > 230).all()  # the box where the browser shows it
    assert (pixels[40:, 50:, 2] < 215).all() and (pixels[40:, 50:, 0] < 60).all()  # background elsewhere
    stored = open_image(data, orient=False)
    assert stored.size == ((96, 64) if orientation == 3 else (64, 96))


def test_image_array_channels_and_writability():
    data = exif_rotated_jpeg(96, 64, BOX, 6, color=(200, 10, 10))
    rgb, bgr = image_array(data), image_array(data, channels="BGR")
    assert rgb.shape == bgr.shape == (64, 96, 3) and rgb.flags.writeable
    assert rgb[50, 80, 0] > 150 and bgr[50, 80, 2] > 150
    with pytest.raises(ValueError, match="RGB or BGR"):
        image_array(data, channels="HSV")


def test_upright_images_keep_their_size_and_bad_files_are_refused():
    assert exif_orientation(png_bytes(4, 4)) == 1 and exif_orientation(b"junk") == 1
    assert open_image(png_bytes(5, 3)).size == (5, 3)
    with pytest.raises(ImageRejected):
        image_array(b"junk")


def test_decoders_that_need_more_memory_per_pixel_are_refused_earlier():
    """MEDIA_MAX_PIXELS bounds a decode at 8 bytes per allowed pixel: an RGBA PNG of the
    allowed size decodes, a WebP (15 bytes a pixel in Pillow's decoder) of the same size not."""
    import io

    from PIL import Image

    def encoded(fmt: str, mode: str) -> bytes:
        buf = io.BytesIO()
        Image.new(mode, (1000, 1000)).save(buf, fmt)
        return buf.getvalue()

    assert open_image(encoded("PNG", "RGBA"), max_pixels=1_000_000).size == (1000, 1000)
    assert open_image(encoded("JPEG", "RGB"), max_pixels=1_000_000).size == (1000, 1000)
    with pytest.raises(ImageRejected, match=r"WEBP of 1000x1000 pixels takes about 14 MB \(15 bytes a pixel\)"):
        open_image(encoded("WEBP", "RGB"), max_pixels=1_000_000)
    assert open_image(encoded("WEBP", "RGB"), max_pixels=2_000_000).size == (1000, 1000)
