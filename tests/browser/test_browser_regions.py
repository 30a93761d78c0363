"""Every region type the plugins produce, built by prelabel.regions, stored in a real Label
Studio and drawn by its labeling page in Chromium: each must sit where its shape is in the
test image.

One image holds one shape per region type. A task without a prediction is the baseline; the
pixels that change on a task with a prediction are what Label Studio drew for it, mapped back
to the image's own pixels and compared with the shape."""

from __future__ import annotations

import io
import math

import httpx
import numpy as np
import pytest

from prelabel import regions
from prelabel.labelconfig import parse_label_config
from prelabel.testing.harness.browser import bounding_box, changed
from prelabel.testing.harness.lsproject import upload_files

pytestmark = pytest.mark.e2e

W, H = 400, 300
RED = 'background="#ff0000"'
IMAGE_CONFIG = f"""<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Car" {RED}/></RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Car" {RED}/></PolygonLabels>
  <BrushLabels name="mask" toName="image"><Label value="Car" {RED}/></BrushLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Car" {RED}/></KeyPointLabels>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true" displayMode="region-list"/>
</View>"""
TEXT_CONFIG = f"""<View>
  <Labels name="ner" toName="text"><Label value="Place" {RED}/></Labels>
  <Text name="text" value="$text"/>
</View>"""

# the shapes, in the image's pixels
RECT = (40, 30, 140, 110)  # x1, y1, x2, y2
ROTATED = (300.0, 80.0, 100.0, 40.0, math.radians(30))  # cx, cy, w, h, angle
TRIANGLE = [(60, 180), (160, 280), (30, 270)]
DISC = (250, 220, 40)  # cx, cy, r
POINT = (360, 262)


def rotated_corners(cx: float, cy: float, w: float, h: float, angle: float) -> list[tuple[float, float]]:
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
        for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
    ]


def shape_masks() -> dict[str, np.ndarray]:
    """Each shape as a (H, W) boolean mask of the image."""
    from PIL import Image, ImageDraw

    def draw(fn) -> np.ndarray:
        canvas = Image.new("L", (W, H), 0)
        fn(ImageDraw.Draw(canvas))
        return np.asarray(canvas) > 0

    x1, y1, x2, y2 = RECT
    cx, cy, r = DISC
    return {
        "rectangle": draw(lambda d: d.rectangle((x1, y1, x2 - 1, y2 - 1), fill=255)),
        "rotated": draw(lambda d: d.polygon(rotated_corners(*ROTATED), fill=255)),
        "polygon": draw(lambda d: d.polygon(TRIANGLE, fill=255)),
        "brush": draw(lambda d: d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)),
    }


def render_image() -> bytes:
    from PIL import Image

    pixels = np.full((H, W, 3), 225, np.uint8)
    for mask in shape_masks().values():
        pixels[mask] = (90, 110, 140)
    px, py = POINT
    pixels[py - 3 : py + 4, px - 3 : px + 4] = (20, 20, 20)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def image_predictions() -> dict[str, list[dict]]:
    config = parse_label_config(IMAGE_CONFIG)
    box, poly, mask, kp, text = (config.control(n) for n in ("box", "poly", "mask", "kp", "transcription"))
    x1, y1, x2, y2 = RECT
    ocr_box = regions.rectangle(box, "Car", x1, y1, x2 - x1, y2 - y1, W, H)
    ocr_text = regions.textarea(text, "A1 EXAMPLE LINE")
    ocr_text.update(
        id=ocr_box["id"],
        original_width=W,
        original_height=H,
        image_rotation=0,
        value={**ocr_text["value"], **{k: ocr_box["value"][k] for k in ("x", "y", "width", "height", "rotation")}},
    )
    return {
        "rectangle": [regions.rectangle(box, "Car", x1, y1, x2 - x1, y2 - y1, W, H)],
        "rotated": [regions.rotated_rectangle(box, "Car", *ROTATED, W, H)],
        "polygon": [regions.polygon(poly, "Car", TRIANGLE, W, H)],
        "brush": [regions.brush(mask, "Car", shape_masks()["brush"])],
        "keypoint": [regions.keypoint(kp, "Car", *POINT, W, H, width=1.0)],
        "textarea": [ocr_box, ocr_text],
    }


def add_prediction(ls, task_id: int, result: list[dict]) -> None:
    resp = httpx.post(
        f"{ls.url}/api/predictions",
        headers=ls.auth_headers("legacy"),
        timeout=60,
        json={"task": task_id, "result": result, "model_version": "browser-test"},
    )
    assert resp.status_code == 201, resp.text


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def image_project(label_studio):
    project = httpx.post(
        f"{label_studio.url}/api/projects",
        headers=label_studio.auth_headers("legacy"),
        json={"title": "browser-regions", "label_config": IMAGE_CONFIG},
        timeout=60,
    ).json()
    predictions = image_predictions()
    image = render_image()
    tasks = upload_files(
        label_studio, project["id"], [(f"{name}.png", image, "image/png") for name in ["plain", *predictions]]
    )
    by_name = dict(zip(["plain", *predictions], (t["id"] for t in tasks), strict=True))
    for name, result in predictions.items():
        add_prediction(label_studio, by_name[name], result)
    return project["id"], by_name


@pytest.fixture(scope="module")
def plain_shot(browser, image_project):
    pid, tasks = image_project
    return browser.open_task(pid, tasks["plain"]).image("plain")


def drawn_on(browser, image_project, plain_shot, name: str):
    pid, tasks = image_project
    shot = browser.open_task(pid, tasks[name]).image(name)
    return shot, changed(plain_shot.pixels, shot.pixels)


@pytest.mark.parametrize("name", ["rectangle", "rotated", "polygon", "brush"])
def test_filled_region_covers_its_shape(browser, image_project, plain_shot, name):
    with browser.keep_on_failure(name):
        shot, drawn = drawn_on(browser, image_project, plain_shot, name)
        shape = shape_masks()[name]
        seen = shot.media_mask(drawn)
        # the outline and fill Label Studio draws: the shape's box within 3 image pixels...
        sx1, sy1, sx2, sy2 = bounding_box(shape)
        dx1, dy1, dx2, dy2 = shot.to_media(bounding_box(drawn))
        assert max(abs(dx1 - sx1), abs(dy1 - sy1), abs(dx2 - sx2), abs(dy2 - sy2)) <= 3, (
            f"{name} drawn at {(dx1, dy1, dx2, dy2)}, shape at {(sx1, sy1, sx2, sy2)}"
        )
        # ...and the shape itself, not just its box
        assert iou(seen, shape) >= 0.85, f"{name}: drawn area overlaps the shape at IoU {iou(seen, shape):.2f}"


def test_keypoint_sits_on_its_dot(browser, image_project, plain_shot):
    with browser.keep_on_failure("keypoint"):
        shot, drawn = drawn_on(browser, image_project, plain_shot, "keypoint")
        ys, xs = np.nonzero(drawn)
        cx, cy, _, _ = shot.to_media((xs.mean(), ys.mean(), 0, 0))
        assert math.dist((cx, cy), POINT) <= 3, f"keypoint drawn at {(cx, cy)}, dot at {POINT}"
        x1, y1, x2, y2 = shot.to_media(bounding_box(drawn))
        assert x2 - x1 < 20 and y2 - y1 < 20, "a keypoint is drawn as a small dot"


def test_per_region_textarea_rides_on_its_box(browser, image_project, plain_shot):
    with browser.keep_on_failure("textarea"):
        shot, drawn = drawn_on(browser, image_project, plain_shot, "textarea")
        sx1, sy1, sx2, sy2 = RECT
        dx1, dy1, dx2, dy2 = shot.to_media(bounding_box(drawn))
        assert max(abs(dx1 - sx1), abs(dy1 - sy1), abs(dx2 - sx2), abs(dy2 - sy2)) <= 3
        # the text is attached to that box: the region list shows it in the region's own field
        fields = browser.page.evaluate("""() => Array.from(document.querySelectorAll('input, textarea'))
            .filter(e => e.offsetParent !== null).map(e => e.value)""")
        assert "A1 EXAMPLE LINE" in fields, f"visible text fields: {fields}"


TEXT = "Zoë flew from Zürich 🛫 to São Paulo on Monday."


def test_text_span_highlights_its_characters(label_studio, browser):
    ls = label_studio
    project = httpx.post(
        f"{ls.url}/api/projects",
        headers=ls.auth_headers("legacy"),
        json={"title": "browser-span", "label_config": TEXT_CONFIG},
        timeout=60,
    ).json()
    resp = httpx.post(
        f"{ls.url}/api/projects/{project['id']}/import",
        headers=ls.auth_headers("legacy"),
        json=[{"text": TEXT}, {"text": TEXT}],
        timeout=60,
    )
    assert resp.status_code == 201, resp.text
    plain, predicted = (
        t["id"]
        for t in httpx.get(
            f"{ls.url}/api/tasks", params={"project": project["id"]}, headers=ls.auth_headers("legacy"), timeout=60
        ).json()["tasks"]
    )
    control = parse_label_config(TEXT_CONFIG).control("ner")
    ((start, end),) = regions.find_spans(TEXT, "São Paulo")  # after a multi-byte letter and an emoji
    add_prediction(ls, predicted, [regions.span(control, "Place", start, end, TEXT)])
    with browser.keep_on_failure("span"):
        before = browser.open_task(project["id"], plain).text()
        after = browser.open_task(project["id"], predicted).text(start, end)
        # the highlight's colour (the label's red at low opacity) where it was not before; the
        # text after the span moves a little to the right (the highlight's padding)
        red, green = (after.pixels[..., c].astype(int) for c in (0, 1))
        drawn = changed(before.pixels, after.pixels) & (red > 180) & (red - green > 40)
        x1, y1, x2, y2 = bounding_box(drawn)
        rx1, ry1, rx2, ry2 = after.span_box
        # the highlight covers the characters of "São Paulo" and nothing far from them
        assert abs(x1 - rx1) <= 6 and abs(x2 - rx2) <= 6 and ry1 - 6 <= y1 and y2 <= ry2 + 6, (
            f"highlight at {(x1, y1, x2, y2)}, characters at {after.span_box}"
        )
        covered = drawn[int(ry1) : int(ry2), int(rx1) : int(rx2)].mean()
        assert covered >= 0.3, f"only {covered:.0%} of the span's characters are highlighted"


VIDEO_CONFIG = f"""<View>
  <Labels name="videoLabels" toName="video"><Label value="Car" {RED}/></Labels>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""
VW, VH, FRAMES = 160, 120, 20


def moving_box(frame: int) -> tuple[int, int, int, int]:
    """The white box of ``frame`` (from 1): x, y, w, h, moving 4 px right per frame."""
    return 10 + 4 * (frame - 1), 40, 30, 40


def render_video(path) -> bytes:
    """A VP8 WebM (Chromium plays it) of the moving box over a blue background, 10 fps."""
    cv2 = pytest.importorskip("cv2", reason="pip install opencv-python-headless")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 10.0, (VW, VH))
    assert writer.isOpened(), "OpenCV cannot write VP8 here"
    for frame in range(1, FRAMES + 1):
        image = np.full((VH, VW, 3), (160, 90, 30), np.uint8)
        x, y, w, h = moving_box(frame)
        image[y : y + h, x : x + w] = 250
        writer.write(image)
    writer.release()
    return path.read_bytes()


def test_video_rectangle_follows_the_box_at_several_frames(label_studio, browser, tmp_path):
    ls = label_studio
    project = httpx.post(
        f"{ls.url}/api/projects",
        headers=ls.auth_headers("legacy"),
        json={"title": "browser-video", "label_config": VIDEO_CONFIG},
        timeout=60,
    ).json()
    video = render_video(tmp_path / "box.webm")
    plain, predicted = (
        t["id"]
        for t in upload_files(
            ls, project["id"], [("plain.webm", video, "video/webm"), ("box.webm", video, "video/webm")]
        )
    )
    control = parse_label_config(VIDEO_CONFIG).control("box")
    track = [(f, *moving_box(f)) for f in range(1, FRAMES + 1)]
    add_prediction(ls, predicted, [regions.video_rectangle(control, "Car", track, VW, VH, FRAMES, duration=2.0)])
    # typing 20, the last frame, into the player's counter lands on 19 (Label Studio 1.23.2)
    for frame in (1, 10, 19):
        with browser.keep_on_failure(f"video-frame-{frame}"):
            browser.open_task(project["id"], plain).step_to_frame(frame, FRAMES)
            before = browser.video(f"video-plain-{frame}")
            browser.open_task(project["id"], predicted).step_to_frame(frame, FRAMES)
            after = browser.video(f"video-box-{frame}")
            x, y, w, h = moving_box(frame)
            dx1, dy1, dx2, dy2 = after.to_media(bounding_box(changed(before.pixels, after.pixels)))
            assert max(abs(dx1 - x), abs(dy1 - y), abs(dx2 - x - w), abs(dy2 - y - h)) <= 3, (
                f"frame {frame}: drawn at {(dx1, dy1, dx2, dy2)}, box at {(x, y, x + w, y + h)}"
            )
