"""Interactive segmentation through the real server: clicks, boxes, labels, cache, polygons."""

from __future__ import annotations

import numpy as np
import pytest
import sam2_configs as configs
from prelabel_sam2 import Sam2Backend
from sam2_media import HEIGHT, WIDTH, box, click, image_uri

from prelabel.labelconfig import parse_label_config
from prelabel.regions import rle_to_mask
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results

PROJECT = "3.1700000000"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    runtime = make_runtime(Sam2Backend, tmp_path_factory.mktemp("home"))
    with serve_in_process(runtime, wait_ready=300) as client:
        yield client, runtime
    runtime.close()


@pytest.fixture
def client(served):
    return served[0]


@pytest.fixture
def backend(served) -> Sam2Backend:
    return served[1].backend


def predict(client, image: str, context_regions: list[dict], config: str = configs.IMAGE_BRUSH) -> dict:
    resp = client.post(
        "/predict",
        json={
            "tasks": [{"id": 1, "data": {"image": image}}],
            "project": PROJECT,
            "label_config": config,
            "params": {"context": {"result": context_regions}},
        },
    )
    assert resp.status_code == 200, resp.text
    (item,) = per_task_results(resp.json())
    assert "error" not in item, item["error"]
    return item


def assert_valid(item: dict, config: str) -> None:
    errors = parse_label_config(config).interface.validate_prediction(item, return_errors=True)
    assert not errors, errors


def test_click_gives_one_brush_mask_with_the_clicked_label_and_the_image_size(client):
    item = predict(client, image_uri(1), [click(30, 50, "Person")])
    (region,) = item["result"]
    assert region["type"] == "brushlabels" and region["from_name"] == "label" and region["to_name"] == "image"
    assert region["value"]["brushlabels"] == ["Person"]
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    mask = rle_to_mask(region["value"]["rle"], WIDTH, HEIGHT)  # decodes to exactly the image's pixel count
    assert mask.shape == (HEIGHT, WIDTH) and 0 < (mask > 0).sum() <= WIDTH * HEIGHT
    assert 0 <= region["score"] <= 1.5 and item["score"] == pytest.approx(region["score"])
    assert_valid(item, configs.IMAGE_BRUSH)


def test_rle_round_trips_the_models_mask(backend, tmp_path):
    """The RLE Label Studio gets decodes to the very mask SAM 2 predicted, at the image size."""
    from prelabel_sam2.masks import mask_region
    from prelabel_sam2.model import decode_image
    from prelabel_sam2.prompts import image_prompts

    from prelabel.testing.images import png_bytes

    data = png_bytes(WIDTH + 7, HEIGHT + 3, box=(20, 10, 60, 50), noise=5)
    embedding = backend.model.embed(decode_image(data, 10**7))
    points, labels, _ = image_prompts([click(40, 50)])["image"].pixels(embedding.width, embedding.height)
    mask, _ = backend.model.segment(embedding, points, labels)
    assert mask.shape == (HEIGHT + 3, WIDTH + 7) and mask.any()
    control = parse_label_config(configs.IMAGE_BRUSH).control("label")
    region = mask_region(control, ["Car"], mask)
    decoded = rle_to_mask(region["value"]["rle"], WIDTH + 7, HEIGHT + 3)
    assert np.array_equal(decoded > 0, mask)


def test_second_click_on_the_same_image_skips_the_encoder(client, backend):
    image = image_uri(2)
    before = dict(backend.embeddings.stats())
    calls = backend.model.encoder_calls
    predict(client, image, [click(30, 50)])
    assert backend.model.encoder_calls == calls + 1
    for extra in ([click(60, 40, positive=False)], [click(70, 60)], [box(10, 10, 50, 60)]):
        predict(client, image, [click(30, 50, positive=True), *extra])
    assert backend.model.encoder_calls == calls + 1, "a click on a cached image ran the image encoder again"
    stats = backend.embeddings.stats()
    assert stats["hits"] == before["hits"] + 3 and stats["misses"] == before["misses"] + 1
    metric = 'prelabel_sam2_embedding_cache_total{result="hit"}'
    hits = [line for line in client.get("/metrics").text.splitlines() if line.startswith(metric)]
    assert float(hits[0].split()[-1]) >= 3
    health = client.get("/health").json()
    assert health["embedding_cache"]["hits"] == stats["hits"] and health["model"] == "sam2.1_hiera_t@128"
    predict(client, image_uri(3), [click(30, 50)])  # another image: a miss
    assert backend.model.encoder_calls == calls + 2


def test_box_alone_and_box_with_clicks(client):
    for regions in ([box(10, 15, 45, 60, "Car")], [box(10, 15, 45, 60, "Car"), click(30, 50, "Car")]):
        item = predict(client, image_uri(4), regions)
        (region,) = item["result"]
        assert region["value"]["brushlabels"] == ["Car"]
        assert_valid(item, configs.IMAGE_BRUSH)


def test_polygon_output_validates(client):
    item = predict(client, image_uri(5), [click(30, 50, "Car"), box(10, 15, 45, 60, "Car")], configs.IMAGE_POLYGON)
    (region,) = item["result"]
    assert region["type"] == "polygonlabels" and region["value"]["polygonlabels"] == ["Car"]
    points = region["value"]["points"]
    assert len(points) >= 3 and all(0 <= x <= 100 and 0 <= y <= 100 for x, y in points)
    assert_valid(item, configs.IMAGE_POLYGON)


def test_seed_config_negative_clicks_and_the_masks_own_label(client, backend, monkeypatch):
    """Seed 002's config through the API (no is_positive): clicks labelled positive/negative,
    the mask labelled 'athlete'."""
    seen = {}
    original = backend.model.segment

    def spy(embedding, points=None, labels=None, box=None, multimask=True):
        seen.update(points=points, labels=labels, box=box)
        return original(embedding, points, labels, box, multimask)

    monkeypatch.setattr(backend.model, "segment", spy)
    item = predict(
        client,
        image_uri(6),
        [click(30, 50, "positive"), click(80, 20, "negative"), box(10, 10, 50, 70, "box")],
        configs.POSITIVE_NEGATIVE,
    )
    assert seen["labels"].tolist() == [1, 0]
    assert seen["points"][0].tolist() == pytest.approx([0.30 * WIDTH, 0.50 * HEIGHT])
    assert seen["box"].tolist() == pytest.approx([0.1 * WIDTH, 0.1 * HEIGHT, 0.6 * WIDTH, 0.8 * HEIGHT])
    (region,) = item["result"]
    assert region["value"]["brushlabels"] == ["athlete"]
    assert_valid(item, configs.POSITIVE_NEGATIVE)


def test_batch_without_context_is_empty_and_context_for_another_image_is_ignored(client):
    resp = client.post(
        "/predict",
        json={
            "tasks": [{"id": i, "data": {"image": image_uri(i)}} for i in (1, 2)],
            "project": PROJECT,
            "label_config": configs.IMAGE_BRUSH,
        },
    )
    assert [r["result"] for r in per_task_results(resp.json())] == [[], []]
    item = predict(client, image_uri(1), [click(30, 50, to_name="elsewhere")])
    assert item["result"] == []


def test_a_bad_context_region_fails_the_task_with_a_message(client):
    resp = client.post(
        "/predict",
        json={
            "tasks": [{"id": 1, "data": {"image": image_uri(1)}}],
            "project": PROJECT,
            "label_config": configs.IMAGE_BRUSH,
            "params": {"context": {"result": [{"type": "keypointlabels", "to_name": "image", "value": {"x": "a"}}]}},
        },
    )
    (item,) = per_task_results(resp.json())
    assert item["result"] == [] and "bad interactive context" in item["error"]


def test_an_exif_rotated_jpeg_is_segmented_as_the_browser_shows_it(client, backend, monkeypatch):
    """A phone-style JPEG (pixels stored turned, EXIF orientation 6): the click in percent of
    the displayed image lands on the object in the pixels the encoder gets, and the mask is
    of the displayed size."""
    from prelabel.testing.images import data_uri, exif_rotated_jpeg

    displayed_box = (50, 16, 86, 48)  # x1, y1, x2, y2 in the displayed 96 x 64 image
    image = data_uri(exif_rotated_jpeg(WIDTH, HEIGHT, displayed_box, orientation=6), "image/jpeg")
    encoded, prompts = [], []
    embed, segment = backend.model.embed, backend.model.segment
    monkeypatch.setattr(backend.model, "embed", lambda array: encoded.append(array) or embed(array))
    monkeypatch.setattr(
        backend.model,
        "segment",
        lambda e, p=None, lab=None, b=None, multimask=True: (prompts.append(p), segment(e, p, lab, b, multimask))[1],
    )
    cx, cy = (displayed_box[0] + displayed_box[2]) / 2, (displayed_box[1] + displayed_box[3]) / 2
    item = predict(client, image, [click(100 * cx / WIDTH, 100 * cy / HEIGHT, "Car", positive=True)])
    (array,) = encoded
    assert array.shape == (HEIGHT, WIDTH, 3)
    ((x, y),) = prompts[0].tolist()
    assert (x, y) == pytest.approx((cx, cy))
    assert (array[int(y) - 5 : int(y) + 5, int(x) - 5 : int(x) + 5] > 230).all(), "the click is not on the object"
    (region,) = item["result"]
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    assert rle_to_mask(region["value"]["rle"], WIDTH, HEIGHT).shape == (HEIGHT, WIDTH)
