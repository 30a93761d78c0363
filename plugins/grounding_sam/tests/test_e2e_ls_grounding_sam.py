"""grounding_sam in a real Label Studio: the README's boxes-and-masks config, images uploaded
as a user does (fetched by the backend from ``/data/upload/`` with a personal access token),
Retrieve Predictions and a prediction job, and what Label Studio stored.

Random weights (no Grounding DINO or SAM 2 checkpoint is on PyPI): which boxes it finds is
arbitrary (the conftest's thresholds make it find some), so this checks the protocol and the
geometry Label Studio needs, not detection quality."""

from __future__ import annotations

import pytest

from prelabel.regions import rle_to_mask
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.lsproject import (
    check_predictions,
    connect_backend,
    retrieve_predictions,
    stored_predictions,
    upload_files,
)
from prelabel.testing.images import png_bytes

pytestmark = pytest.mark.e2e

# the README's config
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image" model_score_threshold="0.35">
    <Label value="Car" predicted_values="truck,bus"/>
    <Label value="Person" hint="pedestrian"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="Car" predicted_values="truck,bus"/>
    <Label value="Person" hint="pedestrian"/>
  </BrushLabels>
</View>"""
SIZES = [(160, 120), (120, 160), (200, 100)]


def images() -> list[tuple[str, bytes, str]]:
    return [
        (
            f"street-{i}.png",
            png_bytes(w, h, color=(40 + 60 * i, 100, 180), box=(20, 20, w - 30, h - 20), noise=8, seed=i),
            "image/png",
        )
        for i, (w, h) in enumerate(SIZES)
    ]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from prelabel.testing.harness.lsproject import label_studio as start

    try:
        with start(tmp_path_factory.mktemp("label-studio")) as server:
            yield server
    except LookupError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def grounding_sam(label_studio, model_root, tmp_path_factory):
    # the model settings come from the conftest's environment (tiny random models in model_root)
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "MODEL_ROOT": str(model_root),
        "BOX_THRESHOLD": "0.3",
        "TEXT_THRESHOLD": "0.25",
    }
    backend = BackendProcess("grounding_sam", home=tmp_path_factory.mktemp("gsam-home"), env=env).start(timeout=300)
    try:
        yield backend
    finally:
        backend.stop()


def new_project(ls, backend, title: str) -> tuple[int, dict, list[dict]]:
    project = ls.client().projects.create(title=title, label_config=CONFIG)
    ml = connect_backend(ls, project.id, backend.url, title="grounding_sam")
    tasks = upload_files(ls, project.id, images())
    assert all(t["data"]["image"].startswith("/data/upload/") for t in tasks)
    return project.id, ml, tasks


def check_masks_match_boxes(prediction: dict, size: tuple[int, int]) -> None:
    """Every mask has the image's size, and a box with the same label exists for it."""
    width, height = size
    box_labels = {r["value"]["rectanglelabels"][0] for r in prediction["result"] if r["type"] == "rectanglelabels"}
    for region in prediction["result"]:
        if region["type"] == "brushlabels":
            mask = rle_to_mask(region["value"]["rle"], width, height)
            assert mask.shape == (height, width)
            assert region["value"]["brushlabels"][0] in box_labels


def test_retrieve_predictions_stores_one_valid_prediction_per_task(label_studio, grounding_sam):
    pid, ml, tasks = new_project(label_studio, grounding_sam, "grounding-sam-retrieve")
    retrieve_predictions(label_studio, pid)
    sizes = {t["id"]: size for t, size in zip(tasks, SIZES, strict=True)}
    by_task = check_predictions(
        stored_predictions(label_studio, pid),
        list(sizes),
        ml["model_version"],
        CONFIG,
        image_sizes=sizes,
        allow_empty=True,
    )
    assert any(p["result"] for p in by_task.values()), "the random model finds something on some image"
    for task_id, prediction in by_task.items():
        check_masks_match_boxes(prediction, sizes[task_id])
    # the same action again predicts nothing new
    retrieve_predictions(label_studio, pid)
    assert len(stored_predictions(label_studio, pid)) == len(tasks)


def test_prediction_job_stores_the_same_as_retrieve(label_studio, grounding_sam):
    pid, ml, tasks = new_project(label_studio, grounding_sam, "grounding-sam-job")
    with grounding_sam.http(timeout=60) as http:
        resp = http.post("/jobs", json={"kind": "predict", "project": pid})
    assert resp.status_code == 201, resp.text
    job = grounding_sam.wait_job(resp.json()["id"], timeout=600)
    assert job["status"] == "succeeded" and job["result"]["failed"] == 0, job
    sizes = {t["id"]: size for t, size in zip(tasks, SIZES, strict=True)}
    by_task = check_predictions(
        stored_predictions(label_studio, pid),
        list(sizes),
        ml["model_version"],
        CONFIG,
        image_sizes=sizes,
        allow_empty=True,
    )
    for task_id, prediction in by_task.items():
        check_masks_match_boxes(prediction, sizes[task_id])
