"""Training: annotations -> YOLO dataset -> a trained, evaluated, promoted version that predicts."""

import functools
import json
import time
from pathlib import Path

import pytest
from prelabel_yolo import YoloBackend
from prelabel_yolo.models import CACHE
from prelabel_yolo.training import label_rows
from yolo_media import assert_valid, polygon_tasks, rectangle_tasks

from prelabel import parse_label_config
from prelabel.testing import configs
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process
from prelabel.testing.client import wait_job as client_wait_job

TRAIN = {"yolo_imgsz": 64, "yolo_max_det": 5, "yolo_epochs": 1, "yolo_train_batch": 4}


wait_job = functools.partial(client_wait_job, timeout=300.0)


@pytest.fixture
def client(tmp_path):
    rt = make_runtime(YoloBackend, tmp_path / "home", TRAIN)
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def setup(client, config, project="11.1"):
    resp = client.post("/setup", json={"project": project, "schema": config})
    assert resp.status_code == 200, resp.text
    return resp.json()["model_version"]


def test_label_rows_are_normalized_yolo_lines():
    rect = parse_label_config(configs.IMAGE_RECTANGLES).control("label")
    regions = [
        {
            "from_name": "label",
            "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Person"]},
        },
        # rotated 90 degrees clockwise about its top-left corner: it now extends to the left
        {
            "from_name": "label",
            "value": {"x": 50, "y": 50, "width": 20, "height": 10, "rotation": 90, "rectanglelabels": ["Car"]},
        },
        {"from_name": "label", "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["Truck"]}},
        {"from_name": "other", "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["Car"]}},
    ]
    assert label_rows(rect, regions) == [
        "1 0.250000 0.400000 0.300000 0.400000",
        "0 0.450000 0.600000 0.100000 0.200000",
    ]
    poly = parse_label_config(configs.IMAGE_POLYGONS).control("label")
    row = label_rows(
        poly, [{"from_name": "label", "value": {"points": [[0, 0], [50, 0], [50, 120]], "polygonlabels": ["Person"]}}]
    )
    assert row == ["1 0.000000 0.000000 0.500000 0.000000 0.500000 1.000000"]


def test_training_a_segmentation_model_promotes_a_version_that_predicts(client):
    config = configs.IMAGE_POLYGONS
    before = setup(client, config)
    resp = client.post("/train", json={"annotations": polygon_tasks(6), "project": "11.1", "label_config": config})
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["job"]
    listed = client.get("/jobs").json()["jobs"]
    assert any(j["id"] == job_id and j["kind"] == "train" for j in listed)  # visible while it runs
    job = wait_job(client, job_id)
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["task"] == "segment" and result["control"] == "label"
    assert result["train_images"] + result["val_images"] == 6 and result["val_images"] >= 1
    assert 0.0 <= result["map50"] <= 1.0 and 0.0 <= result["map50_95"] <= 1.0
    assert job["progress"] == 1.0 and job["message"].startswith("mAP50")

    version = setup(client, config)
    assert version != before and version == result["model_version"]
    assert version in client.get("/versions").json()["versions"]
    model_dir = Path(client.app.state.runtime.model_dir("11"))
    info = json.loads((model_dir / "training.json").read_text())
    assert info["labels"] == ["Car", "Person"] and (model_dir / "model.pt").is_file()

    # the new version loads through the cache and predicts the project's labels
    low = config.replace(
        '<PolygonLabels name="label" toName="image">',
        '<PolygonLabels name="label" toName="image" model_score_threshold="0.0001">',
    )
    resp = client.post("/predict", json={"tasks": polygon_tasks(2), "project": "11.1", "label_config": low})
    items = per_task_results(resp.json())
    assert str(model_dir / "model.pt") in CACHE.loaded()
    for item in items:
        assert item["model_version"] == version
        assert_valid(low, item)


def test_too_few_images_or_no_trainable_control_fail_clearly_and_keep_the_version(client):
    config = configs.IMAGE_RECTANGLES
    version = setup(client, config)
    resp = client.post("/train", json={"annotations": rectangle_tasks(1), "project": "11.1"})
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "failed" and "need at least 2" in job["error"]
    setup(client, configs.IMAGE_CHOICES, project="12.1")
    resp = client.post("/train", json={"annotations": rectangle_tasks(3), "project": "12.1"})
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "failed" and "RectangleLabels or PolygonLabels" in job["error"]
    assert setup(client, config) == version


def test_cancelling_a_run_keeps_the_served_version(tmp_path):
    rt = make_runtime(YoloBackend, tmp_path / "home", {**TRAIN, "yolo_epochs": 200})
    with serve_in_process(rt) as c:
        version = setup(c, configs.IMAGE_RECTANGLES)
        job_id = c.post("/train", json={"annotations": rectangle_tasks(4), "project": "11.1"}).json()["job"]
        deadline = time.monotonic() + 120
        while "epoch" not in c.get(f"/jobs/{job_id}").json()["message"]:  # training has started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert c.delete(f"/jobs/{job_id}").status_code == 200
        job = wait_job(c, job_id)
        assert job["status"] == "cancelled", job
        assert setup(c, configs.IMAGE_RECTANGLES) == version
        assert not list((tmp_path / "home" / "models" / "yolo" / "11").glob(".tmp-*"))  # the workdir is gone
    rt.close()


def test_start_training_exports_the_projects_annotations_from_label_studio(client, monkeypatch):
    """Label Studio's Train button sends START_TRAINING; the job fetches the annotated tasks
    (the export call is faked here: tests talk to nothing but loopback)."""
    from prelabel import lsclient

    fetched = []
    monkeypatch.setattr(lsclient, "connect", lambda url, token, timeout=60.0, max_bytes=None: ("client", url, token))
    monkeypatch.setattr(
        lsclient, "annotated_tasks", lambda client, project: fetched.append((client, project)) or rectangle_tasks(5)
    )
    before = client.post(
        "/setup",
        json={
            "project": "13.1",
            "schema": configs.IMAGE_RECTANGLES,
            "hostname": "http://127.0.0.1:9",
            "access_token": "t" * 40,
        },
    ).json()
    resp = client.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": 13, "label_config": configs.IMAGE_RECTANGLES}}
    )
    assert resp.status_code == 201, resp.text
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "succeeded", job["error"]
    assert fetched == [(("client", "http://127.0.0.1:9", "t" * 40), "13")]
    assert job["result"]["task"] == "detect" and job["result"]["train_images"] + job["result"]["val_images"] == 5
    assert setup(client, configs.IMAGE_RECTANGLES, project="13.1") == job["result"]["model_version"]
    assert job["result"]["model_version"] != before["model_version"]
