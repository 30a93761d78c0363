"""The sam2 backend answering the bodies Label Studio's labeling UI sends (core's prelabel/testing/data/ui/), through
the real server, with the image behind a Label Studio-style upload URL that needs the token."""

from __future__ import annotations

import pytest
import sam2_configs as configs
from prelabel_sam2 import Sam2Backend
from sam2_ui_bodies import (
    HEIGHT,
    IMAGE_PATH,
    WIDTH,
    after_reload,
    smart_keypoint_body,
    smart_point,
    smart_rectangle_region,
    with_context,
)

from prelabel.regions import rle_to_mask
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.harness.httpserver import RecordingServer
from prelabel.testing.images import png_bytes

TOKEN = "0123456789abcdef0123456789abcdef01234567"
IMAGE = png_bytes(WIDTH, HEIGHT, box=(700, 400, 1100, 700), noise=4)


def label_studio_uploads(method, path, headers, body, server):
    """Label Studio's /data/upload/ answers 401 without `Authorization: Token <legacy>`
    (docs/label-studio-protocol.md section 12, observed on Label Studio 1.23.2)."""
    if method == "GET" and path == IMAGE_PATH:
        if headers.get("Authorization") != f"Token {TOKEN}":
            return 401, {"content-type": "application/json"}, b'{"detail": "not authenticated"}'
        return 200, {"content-type": "image/png"}, IMAGE
    return 404, {}, b""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with RecordingServer("127.0.0.1", label_studio_uploads) as uploads:
        runtime = make_runtime(Sam2Backend, tmp_path_factory.mktemp("home"))
        with serve_in_process(runtime, wait_ready=300) as client:
            for config in (configs.UPSTREAM_SAM2_IMAGE, configs.FOREGROUND_BACKGROUND):
                project = "1.1796163441" if config is configs.UPSTREAM_SAM2_IMAGE else "2.1796163442"
                resp = client.post(
                    "/setup",
                    json={"project": project, "schema": config, "hostname": uploads.url, "access_token": TOKEN},
                )
                assert resp.status_code == 200, resp.text
            yield client, runtime.backend, uploads
        runtime.close()


@pytest.fixture
def prompts_seen(served, monkeypatch):
    """The points, point labels and box each SAM 2 call got (pixels of the displayed image)."""
    backend = served[1]
    seen: list[dict] = []
    original = backend.model.segment

    def spy(embedding, points=None, labels=None, box=None, multimask=True):
        seen.append(
            {
                "points": None if points is None else points.tolist(),
                "labels": None if labels is None else labels.tolist(),
                "box": None if box is None else box.tolist(),
                "size": (embedding.width, embedding.height),
            }
        )
        return original(embedding, points, labels, box, multimask)

    monkeypatch.setattr(backend.model, "segment", spy)
    return seen


def post(client, body: dict, config: str = configs.UPSTREAM_SAM2_IMAGE, project: str | None = None) -> dict:
    body = {**body, "label_config": config}
    if project:
        body["project"] = project
    resp = client.post("/predict", json=body)
    assert resp.status_code == 200, resp.text
    (item,) = per_task_results(resp.json())
    assert "error" not in item, item["error"]
    return item


def px(x: float, y: float) -> list[float]:
    return pytest.approx([x * WIDTH / 100, y * HEIGHT / 100], abs=0.01)


def test_captured_smart_click_after_two_ordinary_keypoints(served, prompts_seen):
    """Only the smart point is a prompt: the two ordinary keypoints carry no polarity."""
    client, _, uploads = served
    item = post(client, smart_keypoint_body())
    (call,) = prompts_seen
    assert call["labels"] == [1] and call["points"] == [px(55.006, 45.034)] and call["box"] is None
    assert call["size"] == (WIDTH, HEIGHT)
    (region,) = item["result"]
    assert region["type"] == "brushlabels" and region["from_name"] == "tag" and region["to_name"] == "image"
    assert region["value"]["brushlabels"] == ["defect"]
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    assert rle_to_mask(region["value"]["rle"], WIDTH, HEIGHT).shape == (HEIGHT, WIDTH)
    fetched = [r for r in uploads.requests if r["path"] == IMAGE_PATH]
    assert fetched and all(r["headers"].get("Authorization") == f"Token {TOKEN}" for r in fetched)


def test_alt_click_is_negative_and_earlier_smart_points_of_this_page_view_count(served, prompts_seen):
    client = served[0]
    first = smart_point(30, 40, True, newest=False, point_id="a")
    alt = smart_point(60, 20, False, point_id="b")  # Alt+click: is_positive false
    post(client, with_context(smart_keypoint_body(), [first, alt]))
    (call,) = prompts_seen
    assert call["labels"] == [1, 0] and call["points"] == [px(30, 40), px(60, 20)]


def test_after_a_reload_earlier_points_lose_their_flag_and_are_left_out(served, prompts_seen):
    """Upstream's example makes them negative, the old code positive; either flips some of
    what the annotator did (here an Alt+click would turn positive). Only the new click counts."""
    client = served[0]
    earlier_positive = after_reload(smart_point(30, 40, True, newest=False, point_id="a"))
    earlier_negative = after_reload(smart_point(60, 20, False, newest=False, point_id="b"))
    new = smart_point(45, 55, True, point_id="c")
    item = post(client, with_context(smart_keypoint_body(), [earlier_positive, earlier_negative, new]))
    (call,) = prompts_seen
    assert call["labels"] == [1] and call["points"] == [px(45, 55)]
    assert item["result"][0]["value"]["brushlabels"] == ["defect"]


def test_a_new_negative_click_after_a_reload_gives_no_mask(served, prompts_seen):
    """Its only positives lost their flag: a negative click alone says where the object is not."""
    client = served[0]
    earlier = after_reload(smart_point(30, 40, True, newest=False, point_id="a"))
    item = post(client, with_context(smart_keypoint_body(), [earlier, smart_point(60, 20, False, point_id="b")]))
    assert item["result"] == [] and prompts_seen == []


def test_smart_box_arrives_alone_and_gives_a_mask_for_the_box(served, prompts_seen):
    client = served[0]
    item = post(client, with_context(smart_keypoint_body(), [smart_rectangle_region()]))
    (call,) = prompts_seen
    assert call["points"] is None
    assert call["box"] == pytest.approx(
        [7.961 * 16, 61.922 * 12, (7.961 + 29.071) * 16, (61.922 + 31.041) * 12], abs=0.01
    )
    (region,) = item["result"]
    assert region["value"]["brushlabels"] == ["defect"]


def test_foreground_click_segments_and_a_background_click_alone_gives_nothing(served, prompts_seen):
    """With Foreground/Background labels the UI sends a Background click alone, with
    is_positive true: the label makes it negative, and a negative click alone is no mask."""
    client = served[0]
    project = "2.1796163442"
    foreground = smart_point(50, 50, True, label="Foreground")
    item = post(client, with_context(smart_keypoint_body(), [foreground]), configs.FOREGROUND_BACKGROUND, project)
    (call,) = prompts_seen
    assert call["labels"] == [1]
    assert item["result"][0]["value"]["brushlabels"] == ["defect"]  # the mask control's own label
    background = smart_point(10, 10, True, label="Background")
    item = post(client, with_context(smart_keypoint_body(), [background]), configs.FOREGROUND_BACKGROUND, project)
    assert item["result"] == [] and len(prompts_seen) == 1
