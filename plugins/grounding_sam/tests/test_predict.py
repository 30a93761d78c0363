"""Detection and segmentation through the real server: labels, masks, prompts, thresholds."""

from __future__ import annotations

import dataclasses

import grounding_sam_configs as configs
import numpy as np
import pytest
import torch
from grounding_sam_media import HEIGHT, WIDTH, image_tasks
from prelabel_grounding_sam import GroundingSamBackend

from prelabel.labelconfig import parse_label_config
from prelabel.regions import rle_to_mask
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results

PROJECT = "5.1700000000"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    runtime = make_runtime(GroundingSamBackend, tmp_path_factory.mktemp("home"))
    with serve_in_process(runtime, wait_ready=300) as client:
        yield client, runtime
    runtime.close()


@pytest.fixture
def client(served):
    return served[0]


@pytest.fixture
def backend(served) -> GroundingSamBackend:
    return served[1].backend


def predict(client, config: str, tasks: list[dict], context: dict | None = None, project: str = PROJECT) -> list:
    resp = client.post(
        "/predict", json={"tasks": tasks, "project": project, "label_config": config, "params": {"context": context}}
    )
    assert resp.status_code == 200, resp.text
    results = per_task_results(resp.json())
    assert len(results) == len(tasks)
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors
    parsed = parse_label_config(config)
    for item in results:
        problems = parsed.interface.validate_prediction(item, return_errors=True)
        assert not problems, problems
    return results


class FixedDetections:
    """Stands in for the Grounding DINO network: query 0 lights up the tokens of ``phrase``
    in the prompt it is given, with a box over the image's left half; nothing else scores."""

    def __init__(self, tokenizer, phrase: str, score: float = 0.9):
        self.tokenizer, self.phrase, self.score = tokenizer, phrase, score
        self.prompts: list[str] = []

    def __call__(self, input_ids, **kwargs):
        from types import SimpleNamespace

        text = self.tokenizer.decode(input_ids[0], skip_special_tokens=True)
        self.prompts.append(text)
        logits = torch.full((input_ids.shape[0], 4, 256), -20.0)
        target = self.tokenizer(self.phrase, add_special_tokens=False)["input_ids"]
        ids = input_ids[0].tolist()
        for start in range(len(ids) - len(target) + 1):
            if ids[start : start + len(target)] == target:
                logits[:, 0, start : start + len(target)] = float(np.log(self.score / (1 - self.score)))
        boxes = torch.tensor([[0.25, 0.5, 0.5, 0.8]] * 4).expand(input_ids.shape[0], 4, 4)
        return SimpleNamespace(logits=logits, pred_boxes=boxes)


def test_project_labels_are_the_prompt_and_every_region_carries_one(client, backend, monkeypatch):
    fake = FixedDetections(backend.detector.tokenizer, "truck")
    monkeypatch.setattr(backend.detector, "model", fake)
    (item,) = predict(client, configs.BOXES_AND_MASKS, image_tasks(1))
    assert fake.prompts == ["car. truck. person."]  # each label and its predicted_values
    by_type = {r["type"]: r for r in item["result"]}
    assert set(by_type) == {"rectanglelabels", "brushlabels"} and len(item["result"]) == 2
    box = by_type["rectanglelabels"]["value"]
    assert box["rectanglelabels"] == ["Car"]  # 'truck' is one of Car's predicted_values
    assert (box["x"], box["y"], box["width"], box["height"]) == pytest.approx((0, 10, 50, 80))
    assert by_type["brushlabels"]["value"]["brushlabels"] == ["Car"]
    assert by_type["rectanglelabels"]["score"] == pytest.approx(0.9, abs=1e-4)
    mask = rle_to_mask(by_type["brushlabels"]["value"]["rle"], WIDTH, HEIGHT)
    assert mask.shape == (HEIGHT, WIDTH) and (mask > 0).any()
    # the same image again: SAM 2's embedding comes from the cache, the mask is the same
    hits = backend.embeddings.hits
    (again,) = predict(client, configs.BOXES_AND_MASKS, image_tasks(1))
    assert backend.embeddings.hits == hits + 1
    assert [r["value"].get("rle") for r in again["result"]] == [r["value"].get("rle") for r in item["result"]]
    assert 'prelabel_grounding_sam_embedding_cache_total{result="hit"}' in client.get("/metrics").text


def test_random_weights_batch_gives_valid_labelled_regions(client):
    results = predict(client, configs.BOXES_AND_MASKS, image_tasks(3))
    regions = [r for item in results for r in item["result"]]
    assert regions, "a random Grounding DINO scores some boxes above 0.3"
    for region in regions:
        labels = region["value"].get("rectanglelabels") or region["value"].get("brushlabels")
        assert labels and set(labels) <= {"Car", "Person"}
        if region["type"] == "brushlabels":
            rle_to_mask(region["value"]["rle"], region["original_width"], region["original_height"])


def test_polygons_validate(client):
    (item,) = predict(client, configs.POLYGONS, image_tasks(1, start=9))
    for region in item["result"]:
        assert region["type"] == "polygonlabels" and len(region["value"]["points"]) >= 3


def test_a_typed_prompt_is_used_remembered_and_forgotten(client, backend, monkeypatch):
    fake = FixedDetections(backend.detector.tokenizer, "referee")
    monkeypatch.setattr(backend.detector, "model", fake)
    typed = {
        "result": [
            {
                "from_name": "prompt",
                "to_name": "image",
                "type": "textarea",
                "value": {"text": ["football player. Referee"]},
            }
        ]
    }
    (item,) = predict(client, configs.PROMPT_BRUSH, image_tasks(1), context=typed, project="11")
    assert fake.prompts[-1] == "football player. referee."
    assert [r["value"]["brushlabels"] for r in item["result"]] == [["referee"]]
    # Retrieve predictions (no context) on the same project: the remembered prompt
    predict(client, configs.PROMPT_BRUSH, image_tasks(2, start=20), project="11")
    assert fake.prompts[-1] == "football player. referee."
    # another project never saw it: its labels
    predict(client, configs.PROMPT_BRUSH, image_tasks(1), project="12")
    assert fake.prompts[-1] == "athlete. referee."
    # an empty prompt forgets it
    empty = {"result": [{"from_name": "prompt", "to_name": "image", "type": "textarea", "value": {"text": [""]}}]}
    predict(client, configs.PROMPT_BRUSH, image_tasks(1), context=empty, project="11")
    assert fake.prompts[-1] == "athlete. referee."


def test_per_control_thresholds(client, backend, monkeypatch):
    monkeypatch.setattr(backend.detector, "model", FixedDetections(backend.detector.tokenizer, "person", 0.6))
    strict = configs.BOXES_AND_MASKS.replace(
        '<BrushLabels name="mask" toName="image">', '<BrushLabels name="mask" toName="image" box_threshold="0.7">'
    )
    (item,) = predict(client, strict, image_tasks(1))
    assert [r["type"] for r in item["result"]] == ["rectanglelabels"]  # 0.6 passes 0.3, not 0.7
    score_attr = configs.BOXES.replace(
        '<RectangleLabels name="label" toName="image">',
        '<RectangleLabels name="label" toName="image" model_score_threshold="0.65">',
    )
    assert predict(client, score_attr, image_tasks(1))[0]["result"] == []


def without_ids(items: list[dict]) -> list[list[dict]]:
    return [[{k: v for k, v in r.items() if k != "id"} for r in item["result"]] for item in items]


def test_batched_and_one_at_a_time_agree(client, backend):
    tasks = image_tasks(4, start=30)
    in_force, per_pass = backend.limits, backend.images_per_pass
    assert per_pass == (1 if backend.detector.device == "cpu" else 1 << 30)  # GROUNDING_IMAGES_PER_PASS=0
    backend.limits = dataclasses.replace(in_force, max_batch_size=1)  # as GROUNDING_MAX_BATCH_SIZE=1 would
    calls = backend.detector.calls
    try:
        single = predict(client, configs.BOXES, tasks)
        assert backend.detector.calls - calls == 4
        backend.limits = in_force
        backend.images_per_pass = 1  # one call of 4 tasks, one image per pass
        calls = backend.detector.calls
        assert without_ids(predict(client, configs.BOXES, tasks)) == without_ids(single)  # the same passes
        assert backend.detector.calls - calls == 4
        backend.images_per_pass = 4  # as GROUNDING_IMAGES_PER_PASS=4 would
        calls = backend.detector.calls
        batched = predict(client, configs.BOXES, tasks)
        assert backend.detector.calls - calls == 1
    finally:
        backend.limits, backend.images_per_pass = in_force, per_pass
    for one, many in zip(single, batched, strict=True):
        assert [r["value"]["rectanglelabels"] for r in one["result"]] == [
            r["value"]["rectanglelabels"] for r in many["result"]
        ]
        for a, b in zip(one["result"], many["result"], strict=True):
            assert a["value"]["x"] == pytest.approx(b["value"]["x"], abs=0.5)


def test_without_sam_masks_are_the_boxes(tmp_path, monkeypatch):
    monkeypatch.setenv("USE_SAM", "false")
    monkeypatch.setenv("MODEL_CHECKPOINT", str(tmp_path / "absent.pt"))  # not needed without SAM
    runtime = make_runtime(GroundingSamBackend, tmp_path / "home")
    with serve_in_process(runtime, wait_ready=300) as client:
        backend = runtime.backend
        assert backend.sam is None
        # the detector is shared by the process: monkeypatch puts its network back afterwards
        monkeypatch.setattr(backend.detector, "model", FixedDetections(backend.detector.tokenizer, "car"))
        (item,) = predict(client, configs.BOXES_AND_MASKS, image_tasks(1))
    runtime.close()
    mask = next(r for r in item["result"] if r["type"] == "brushlabels")
    pixels = rle_to_mask(mask["value"]["rle"], WIDTH, HEIGHT) > 0
    assert pixels[int(0.1 * HEIGHT) : int(0.9 * HEIGHT), : int(0.5 * WIDTH)].all()
    assert not pixels[:, int(0.5 * WIDTH) + 1 :].any()


def test_preflight(tmp_path):
    from prelabel_grounding_sam.settings import GroundingSamSettings

    from prelabel import CoreSettings

    core = CoreSettings(prelabel_home=tmp_path)
    hub = "IDEA-Research/grounding-dino-tiny"
    with pytest.raises(ValueError, match="sam2.1_hiera_large.pt"):
        GroundingSamBackend.preflight(
            GroundingSamSettings(model_root=tmp_path, model_config_name="large", grounding_dino_model=hub), core
        )
    GroundingSamBackend.preflight(
        GroundingSamSettings(model_root=tmp_path, use_sam=False, grounding_dino_model=hub), core
    )
    with pytest.raises(ValueError, match="config.json"):
        GroundingSamBackend.preflight(GroundingSamSettings(grounding_dino_model=str(tmp_path), use_sam=False), core)
    with pytest.raises(ValueError, match="neither a directory"):
        GroundingSamBackend.preflight(GroundingSamSettings(grounding_dino_model="no such dir", use_sam=False), core)


class BrightestBox(FixedDetections):
    """Like FixedDetections, but query 0's box is where the white object is in the pixels the
    network gets (a stand-in that looks at the image, since random weights do not)."""

    def __call__(self, input_ids, pixel_values, pixel_mask=None, **kwargs):
        out = super().__call__(input_ids, **kwargs)
        red = pixel_values[0, 0]  # normalized: the white object is far brighter than the blue background
        ys, xs = torch.nonzero(red > 1.5, as_tuple=True)
        h, w = red.shape
        x1, x2, y1, y2 = xs.min() / w, (xs.max() + 1) / w, ys.min() / h, (ys.max() + 1) / h
        box = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=torch.float32)
        out.pred_boxes = box.expand(input_ids.shape[0], 4, 4).clone()
        return out


def test_an_exif_rotated_jpeg_gets_regions_where_the_browser_shows_the_object(client, backend, monkeypatch):
    """Pixels stored turned with EXIF orientation 6 (as phones write portrait photos): the
    detector and SAM 2 get the displayed image, and the box lands on the object in percent
    of the displayed size."""
    from prelabel.testing.images import data_uri, exif_rotated_jpeg

    displayed_box = (50, 16, 86, 48)  # x1, y1, x2, y2 in the displayed 96 x 64 image
    image = data_uri(exif_rotated_jpeg(WIDTH, HEIGHT, displayed_box, orientation=6), "image/jpeg")
    monkeypatch.setattr(backend.detector, "model", BrightestBox(backend.detector.tokenizer, "truck"))
    (item,) = predict(client, configs.BOXES_AND_MASKS, [{"id": 1, "data": {"image": image}}])
    by_type = {r["type"]: r for r in item["result"]}
    box = by_type["rectanglelabels"]
    assert (box["original_width"], box["original_height"]) == (WIDTH, HEIGHT)
    x1, y1, x2, y2 = displayed_box
    expected = (100 * x1 / WIDTH, 100 * y1 / HEIGHT, 100 * (x2 - x1) / WIDTH, 100 * (y2 - y1) / HEIGHT)
    got = tuple(box["value"][k] for k in ("x", "y", "width", "height"))
    assert got == pytest.approx(expected, abs=3.0), "the box is not where the browser shows the object"
    mask = by_type["brushlabels"]
    assert (mask["original_width"], mask["original_height"]) == (WIDTH, HEIGHT)
    assert rle_to_mask(mask["value"]["rle"], WIDTH, HEIGHT).shape == (HEIGHT, WIDTH)
