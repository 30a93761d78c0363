"""Batch pre-annotation and interactive refinement through the real server, on a tiny
random-weight SAM 3 (scores near 0.25: the assertions are about prompts, labels, shapes and
thresholds, not accuracy)."""

from __future__ import annotations

import numpy as np
import pytest
import sam3_configs as configs
from prelabel_sam3 import Sam3Backend
from prelabel_sam3.prompts import mask_iou
from sam3_media import HEIGHT, WIDTH, image_tasks, image_uri, smart_box

from prelabel.labelconfig import parse_label_config
from prelabel.regions import rle_to_mask
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.sam_events import ui_smart_keypoint_body, ui_smart_rectangle_region

PROJECT = "3.1700000000"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    runtime = make_runtime(Sam3Backend, tmp_path_factory.mktemp("home"))
    with serve_in_process(runtime, wait_ready=300) as client:
        yield client, runtime
    runtime.close()


@pytest.fixture
def client(served):
    return served[0]


@pytest.fixture
def backend(served) -> Sam3Backend:
    return served[1].backend


@pytest.fixture
def prompts_seen(backend):
    """The texts the text encoder really receives, decoded from its input ids."""
    seen: list[str] = []
    tokenizer = backend.network.processor.tokenizer

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))

    handle = backend.network.detector.text_encoder.register_forward_pre_hook(hook, with_kwargs=True)
    yield seen
    handle.remove()


def predict(client, tasks: list[dict], config: str, context: dict | None = None) -> list[dict]:
    body = {"tasks": tasks, "project": PROJECT, "label_config": config}
    if context is not None:
        body["params"] = {"context": context}
    resp = client.post("/predict", json=body)
    assert resp.status_code == 200, resp.text
    results = per_task_results(resp.json())
    for item in results:
        assert "error" not in item, item["error"]
    return results


def assert_valid(item: dict, config: str) -> None:
    errors = parse_label_config(config).interface.validate_prediction(item, return_errors=True)
    assert not errors, errors


def masks_of(item: dict) -> list[np.ndarray]:
    return [rle_to_mask(r["value"]["rle"], r["original_width"], r["original_height"]) > 0 for r in item["result"]]


def test_the_labels_are_the_prompts_the_model_receives(client, backend, prompts_seen):
    backend.network.texts.discard(lambda key: True)  # encode them here, where the hook sees it
    network = backend.network
    calls, encodes = network.detector_calls, network.encoder_calls
    passes = -(-5 // network.prompt_batch)  # one on a GPU, five on the CPU
    predict(client, image_tasks(1), configs.MASKS)
    # values, predicted_values synonyms, and the hint instead of the coded name cls_3
    assert sorted(prompts_seen) == ["automobile", "car", "person", "traffic light", "truck"]
    assert network.detector_calls == calls + passes, "the five prompts were not decoded in prompt_batch passes"
    assert network.encoder_calls == encodes + 1, "the image was encoded more than once for its five prompts"
    prompts_seen.clear()
    predict(client, image_tasks(2, start=5), configs.MASKS)
    assert prompts_seen == [], "encoded label prompts were not reused"
    assert network.detector_calls == calls + 3 * passes
    assert network.encoder_calls == encodes + 2  # image 0 again comes from the embedding cache
    assert network.texts.stats()["hits"] >= 10


def test_prompts_decoded_together_or_one_at_a_time_give_the_same_instances(backend):
    network = backend.network
    image = np.asarray(np.random.default_rng(7).integers(0, 255, (HEIGHT, WIDTH, 3)), dtype=np.uint8)
    embedding = network.embed(image)
    texts = ["car", "person", "truck"]
    kept = network.prompt_batch
    try:
        answers = {}
        for batch in (1, 2, len(texts)):
            network.prompt_batch = batch
            calls = network.detector_calls
            answers[batch] = network.detect(embedding, texts, threshold=0.0)
            assert network.detector_calls == calls + -(-len(texts) // batch)
    finally:
        network.prompt_batch = kept
    one = answers[1]
    queries = network.detector.config.detr_decoder_config.num_queries
    assert [len(found) for found in one] == [queries] * len(texts)  # threshold 0: every query
    for batch in (2, len(texts)):
        for a, b in zip(one, answers[batch], strict=True):
            np.testing.assert_allclose([i.score for i in a], [i.score for i in b], atol=1e-4)
            np.testing.assert_allclose([i.box for i in a], [i.box for i in b], atol=1e-2)
            assert min(mask_iou(x.mask, y.mask) for x, y in zip(a[:20], b[:20], strict=True)) > 0.99


def test_each_instance_is_one_region_of_a_project_label(client):
    (item,) = predict(client, [{"id": 1, "data": {"image": image_uri(1)}}], configs.MASKS)
    regions = item["result"]
    assert regions, "no instance scored above SAM3_SCORE_THRESHOLD=0.2"
    assert {r["type"] for r in regions} == {"brushlabels"}
    assert all(len(r["value"]["brushlabels"]) == 1 for r in regions)
    assert {r["value"]["brushlabels"][0] for r in regions} <= {"Car", "Person", "cls_3"}
    assert all(0.2 <= r["score"] <= 1 for r in regions)
    assert all((r["original_width"], r["original_height"]) == (WIDTH, HEIGHT) for r in regions)
    masks = masks_of(item)
    for i in range(len(masks)):  # one region per object: no two answers for the same pixels
        for j in range(i + 1, len(masks)):
            assert mask_iou(masks[i], masks[j]) <= 0.5
    assert_valid(item, configs.MASKS)


def test_a_controls_model_score_threshold_filters_its_regions(client, prompts_seen, backend):
    backend.network.texts.discard(lambda key: True)
    (item,) = predict(client, [{"id": 1, "data": {"image": image_uri(2)}}], configs.BOXES)
    kinds = {r["type"] for r in item["result"]}
    assert "rectanglelabels" not in kinds, "model_score_threshold=0.99 let a random-weight box through"
    assert "brushlabels" in kinds
    assert sorted(prompts_seen) == ["car", "pedestrian", "person"]  # the prompt attribute on the mask control
    assert_valid(item, configs.BOXES)


def test_polygons_validate(client):
    (item,) = predict(client, [{"id": 1, "data": {"image": image_uri(3)}}], configs.POLYGONS)
    assert item["result"] and {r["type"] for r in item["result"]} == {"polygonlabels"}
    for region in item["result"]:
        assert len(region["value"]["points"]) >= 3
        assert all(0 <= x <= 100 and 0 <= y <= 100 for x, y in region["value"]["points"])
    assert_valid(item, configs.POLYGONS)


def test_one_bad_task_does_not_sink_the_others(client):
    tasks = [
        {"id": 1, "data": {"image": image_uri(1)}},
        {"id": 2, "data": {"image": "data:image/png;base64,AAAA"}},
        {"id": 3, "data": {"other": "x"}},
    ]
    resp = client.post("/predict", json={"tasks": tasks, "project": PROJECT, "label_config": configs.MASKS})
    results = per_task_results(resp.json())
    assert len(results) == 3 and results[0]["result"] and "error" not in results[0]
    assert results[1]["result"] == [] and results[1]["error"]
    assert results[2]["result"] == [] and "image" in results[2]["error"]


# -- interactive ----------------------------------------------------------------------------------
def test_a_smart_box_is_an_exemplar_of_its_label_and_alt_makes_it_negative(client, backend, monkeypatch):
    """The captured smart rectangle: its label's concept with the box as exemplar; an Alt box
    on the same image adds a negative exemplar; both change what the model returns."""
    seen = []
    original = backend.network.detect

    def spy(embedding, texts, threshold, mask_threshold=0.5, boxes=None, box_labels=None):
        seen.append({"texts": list(texts), "boxes": boxes, "labels": box_labels})
        return original(embedding, texts, threshold, mask_threshold, boxes, box_labels)

    monkeypatch.setattr(backend.network, "detect", spy)
    task = [{"id": 11, "data": {"image": image_uri(4)}}]
    (plain,) = predict(client, task, configs.SMART)  # batch: the label alone
    (first,) = predict(client, task, configs.SMART, {"result": [ui_smart_rectangle_region()]})
    (second,) = predict(client, task, configs.SMART, {"result": [smart_box(50, 10, 30, 30, positive=False)]})
    assert [s["texts"] for s in seen] == [["defect"]] * 3
    assert seen[0]["boxes"] is None
    x1, y1, x2, y2 = seen[1]["boxes"][0]
    assert (x1, y1) == pytest.approx((0.07961 * WIDTH, 0.61922 * HEIGHT))
    assert (x2, y2) == pytest.approx(((0.07961 + 0.29071) * WIDTH, (0.61922 + 0.31041) * HEIGHT))
    assert seen[1]["labels"] == [1]
    assert len(seen[2]["boxes"]) == 2 and seen[2]["labels"] == [1, 0]  # the earlier box is remembered
    for item in (first, second):
        assert item["result"] and {r["from_name"] for r in item["result"]} == {"tag"}  # the mask control
        assert all(r["value"]["brushlabels"] == ["defect"] for r in item["result"])
        assert_valid(item, configs.SMART)
    signature = [sorted(round(r["score"], 6) for r in item["result"]) for item in (plain, first, second)]
    assert signature[0] != signature[1] != signature[2], "the exemplars did not change the result"


def test_smart_boxes_fill_a_boxes_only_project(client):
    (item,) = predict(
        client,
        [{"id": 12, "data": {"image": image_uri(5)}}],
        configs.SMART_BOXES_ONLY,
        {"result": [smart_box(10, 10, 40, 50, label="Person", from_name="box")]},
    )
    assert item["result"] and {r["type"] for r in item["result"]} == {"rectanglelabels"}
    assert {r["value"]["rectanglelabels"][0] for r in item["result"]} == {"Person"}
    assert_valid(item, configs.SMART_BOXES_ONLY)


def test_smart_keypoints_go_to_the_tracker_and_the_embedding_is_cached(client, backend, monkeypatch):
    body = ui_smart_keypoint_body()
    seen = {}
    original = backend.network.segment_points

    def spy(embedding, points, labels, multimask=True):
        seen.update(points=points, labels=labels)
        return original(embedding, points, labels, multimask)

    monkeypatch.setattr(backend.network, "segment_points", spy)
    image = image_uri(6)
    tasks = [{**body["tasks"][0], "data": {"image": image}}]
    calls = backend.network.tracker_encoder_calls
    before = backend.embeddings.stats()
    (item,) = predict(client, tasks, configs.SMART, body["params"]["context"])
    # the UI's body: two ordinary keypoints before the smart click; only the smart click counts (as in sam2)
    assert seen["labels"] == [1]
    assert seen["points"][0] == pytest.approx((0.55006 * WIDTH, 0.45034 * HEIGHT))
    (region,) = item["result"]
    assert region["from_name"] == "tag" and region["value"]["brushlabels"] == ["defect"]
    assert rle_to_mask(region["value"]["rle"], WIDTH, HEIGHT).shape == (HEIGHT, WIDTH)
    assert_valid(item, configs.SMART)
    smart = body["params"]["context"]["result"][2]
    alt = dict(smart, is_positive=False)  # an Alt+click beside it
    predict(client, tasks, configs.SMART, {"result": [smart, alt]})
    assert seen["labels"] == [1, 0]
    assert backend.network.tracker_encoder_calls == calls + 1, "a second click on the image ran the encoder again"
    stats = backend.embeddings.stats()
    assert stats["hits"] == before["hits"] + 1 and stats["misses"] == before["misses"] + 1
    health = client.get("/health").json()
    assert health["embedding_cache"]["hits"] == stats["hits"] and health["checkpoint"] == "sam3_video"
    metric = 'prelabel_sam3_embedding_cache_total{result="hit"}'
    assert any(line.startswith(metric) for line in client.get("/metrics").text.splitlines())


def test_a_bad_context_region_fails_the_task_with_a_message(client):
    resp = client.post(
        "/predict",
        json={
            "tasks": [{"id": 1, "data": {"image": image_uri(1)}}],
            "project": PROJECT,
            "label_config": configs.SMART,
            "params": {"context": {"result": [{"type": "rectanglelabels", "to_name": "image", "value": {"x": "a"}}]}},
        },
    )
    (item,) = per_task_results(resp.json())
    assert item["result"] == [] and "bad interactive context" in item["error"]
