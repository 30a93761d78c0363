"""sam3 in a real Label Studio, with the label configs of plugins/sam3/README.md (read from it):
images uploaded as a user does (the backend fetches ``/data/upload/...`` with a personal access
token); Retrieve Predictions and a prediction job, checked by what Label Studio stored; the
labeling UI's captured smart-box and smart-keypoint contexts (sam2's e2e_ui_contexts/, the
bodies Chromium sent) through ``POST /api/ml/{id}/interactive-annotating``; and in Chromium, a
smart click of the UI itself drawing the mask sam3 answered, and a stored sam3 prediction
drawn where its masks are.

Random weights (SAM 3's weights are gated, none is on PyPI): the tiny model scores every
instance about 0.25, so the README's ``model_score_threshold="0.4"`` would keep nothing; the
tests lower it to 0.2, where it finds some instances on every image. What is checked is the
protocol and the geometry Label Studio needs, not what is found."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from prelabel.regions import rle_to_mask
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.browser import (
    LabelStudioBrowser,
    artifact_dir,
    changed,
    overlap_and_outside,
    require_browser,
)
from prelabel.testing.harness.lsproject import (
    check_predictions,
    connect_backend,
    retrieve_predictions,
    stored_predictions,
    upload_files,
)
from prelabel.testing.images import png_bytes

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
# the contexts the labeling UI sent for upstream's SAM config (tag/tag2/tag3, label "defect"),
# which is this plugin's README interactive config too
UI_CONTEXTS = HERE.parents[1] / "sam2" / "tests" / "e2e_ui_contexts"
SIZES = [(160, 120), (120, 160), (200, 100)]


def readme_configs() -> list[str]:
    """The ```xml blocks of the plugin's README, in order: batch masks, interactive, video."""
    return re.findall(r"```xml\n(.*?)```", (HERE.parent / "README.md").read_text(), re.S)


BATCH = readme_configs()[0].replace('model_score_threshold="0.4"', 'model_score_threshold="0.2"')
INTERACTIVE = readme_configs()[1]


def images() -> list[tuple[str, bytes, str]]:
    return [
        (
            f"street-{i}.png",
            png_bytes(w, h, color=(40 + 60 * i, 100, 180), box=(20, 20, w - 30, h - 20), noise=8, seed=i),
            "image/png",
        )
        for i, (w, h) in enumerate(SIZES)
    ]


def ui_context(name: str, width: int, height: int) -> dict:
    """A captured context as it was sent, on an image of this size."""
    context = json.loads((UI_CONTEXTS / name).read_text())
    for region in context["result"]:
        region["original_width"], region["original_height"] = width, height
    return context


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from prelabel.testing.harness.lsproject import label_studio as start

    try:
        with start(tmp_path_factory.mktemp("label-studio")) as server:
            yield server
    except LookupError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def sam3(label_studio, model_root, tmp_path_factory):
    # the model settings come from the conftest's environment (the tiny SAM 3 in model_root)
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "MODEL_ROOT": str(model_root),
    }
    with BackendProcess("sam3", home=tmp_path_factory.mktemp("sam3-home"), env=env).start(timeout=300) as backend:
        yield backend


def new_project(
    ls, backend, title: str, config: str, files: list[tuple[str, bytes, str]], interactive: bool = False
) -> tuple[int, dict, list[dict]]:
    project = ls.client().projects.create(title=title, label_config=config)
    ml = connect_backend(ls, project.id, backend.url, title="sam3", interactive=interactive)
    tasks = upload_files(ls, project.id, files)
    assert all(t["data"]["image"].startswith("/data/upload/") for t in tasks)
    return project.id, ml, tasks


def check_stored(ls, pid: int, ml: dict, tasks: list[dict]) -> dict[int, dict]:
    """One prediction per task, each with regions of the project's labels inside the image,
    every mask of the image's size."""
    sizes = {t["id"]: size for t, size in zip(tasks, SIZES, strict=True)}
    by_task = check_predictions(stored_predictions(ls, pid), list(sizes), ml["model_version"], BATCH, image_sizes=sizes)
    for task_id, prediction in by_task.items():
        width, height = sizes[task_id]
        for region in prediction["result"]:
            assert region["type"] == "brushlabels" and region["from_name"] == "mask", region
            assert rle_to_mask(region["value"]["rle"], width, height).any()
    return by_task


def test_retrieve_predictions_stores_one_prediction_per_task(label_studio, sam3):
    pid, ml, tasks = new_project(label_studio, sam3, "sam3-retrieve", BATCH, images())
    retrieve_predictions(label_studio, pid)
    check_stored(label_studio, pid, ml, tasks)
    retrieve_predictions(label_studio, pid)  # the same version again: nothing new is stored
    assert len(stored_predictions(label_studio, pid)) == len(tasks)


def test_a_prediction_job_stores_one_prediction_per_task(label_studio, sam3):
    pid, ml, tasks = new_project(label_studio, sam3, "sam3-job", BATCH, images())
    with sam3.http(timeout=60) as http:
        resp = http.post("/jobs", json={"kind": "predict", "project": pid})
    assert resp.status_code == 201, resp.text
    job = sam3.wait_job(resp.json()["id"], timeout=600)
    assert job["status"] == "succeeded" and job["result"]["predicted"] == len(tasks), job
    assert job["result"]["failed"] == 0, job
    check_stored(label_studio, pid, ml, tasks)


def interactive(ls, ml_id: int, task_id: int, context: dict) -> dict:
    resp = httpx.post(
        f"{ls.url}/api/ml/{ml_id}/interactive-annotating",
        headers=ls.auth_headers("legacy"),
        json={"task": task_id, "context": context},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "errors" not in body, f"Label Studio relayed errors from the backend: {body['errors']}"
    return body["data"]


@pytest.mark.parametrize("name", ["smart_rectangle_alone.json", "smart_keypoint_after_two_ordinary_keypoints.json"])
def test_ui_context_through_label_studio_gets_masks_of_the_label(label_studio, sam3, name):
    """A smart box is an exemplar of "defect" (every instance like it), a smart keypoint goes to
    the tracker (one mask): either way brush masks of the mask control, of the image's size."""
    width, height = 320, 240
    image = png_bytes(width, height, color=(40, 120, 200), box=(120, 80, 220, 160), noise=6, seed=3)
    pid, ml, (task,) = new_project(
        label_studio, sam3, f"sam3-{name[:-5]}", INTERACTIVE, [("defect.png", image, "image/png")], interactive=True
    )
    before = stored_predictions(label_studio, pid)
    data = interactive(label_studio, ml["id"], task["id"], ui_context(name, width, height))
    assert data["model_version"] == ml["model_version"]
    masks = data["result"]
    assert masks, "no mask for the UI's context"
    if name.startswith("smart_keypoint"):
        assert len(masks) == 1, "a click segments one object"
    for region in masks:
        assert region["type"] == "brushlabels" and (region["from_name"], region["to_name"]) == ("tag", "image")
        assert region["value"]["brushlabels"] == ["defect"]
        assert (region["original_width"], region["original_height"]) == (width, height)
        assert rle_to_mask(region["value"]["rle"], width, height).any()
    # a suggestion: Label Studio stores nothing until the annotator accepts it
    assert stored_predictions(label_studio, pid) == before


def test_smart_click_in_the_browser_draws_the_backends_mask(label_studio, sam3):
    """The labeling UI itself: Auto-Annotation on, the smart keypoint tool, the label "defect",
    one click in the middle of the object. Chromium sends the context (to the tracker: one
    mask), and the pixels that change on the page are the mask sam3 answered."""
    require_browser()
    width, height = 320, 240
    image = png_bytes(width, height, color=(40, 120, 200), box=(120, 80, 220, 160), noise=6, seed=3)
    pid, ml, (task,) = new_project(
        label_studio, sam3, "sam3-smart-click", INTERACTIVE, [("click.png", image, "image/png")], interactive=True
    )
    # sam3 answers a task without a context with its batch pre-annotation, which Label Studio
    # asked for on import and would ask for again when the task opens, and copies into the new
    # annotation: that prediction goes and this project does not ask again, so the page is plain
    headers = label_studio.auth_headers("legacy")
    httpx.patch(
        f"{label_studio.url}/api/projects/{pid}",
        headers=headers,
        # either flag makes opening a task without predictions ask for one (label_studio/tasks/api.py)
        json={"evaluate_predictions_automatically": False, "show_collab_predictions": False},
        timeout=60,
    ).raise_for_status()
    for prediction in stored_predictions(label_studio, pid):
        httpx.delete(
            f"{label_studio.url}/api/predictions/{prediction['id']}", headers=headers, timeout=60
        ).raise_for_status()
    with (
        LabelStudioBrowser(label_studio, artifact_dir("sam3-interactive", fresh=True)) as browser,
        browser.keep_on_failure("smart-click"),
    ):
        browser.open_task(pid, task["id"])
        before = browser.image("before")
        # "defect" is a label of three controls, shown in the config's order (tag, tag2, tag3):
        # the second is the smart keypoints' (the first would paint with the brush)
        body = browser.smart_keypoint_click(before, 170, 120, "defect", nth=1)  # the middle of the box
        assert "data" in body and "errors" not in body, body
        masks = [r for r in body["data"]["result"] if r["type"] == "brushlabels"]
        assert len(masks) == 1, "a click segments one object"
        (region,) = masks
        assert (region["from_name"], region["to_name"]) == ("tag", "image")
        assert region["value"]["brushlabels"] == ["defect"]
        expected = rle_to_mask(region["value"]["rle"], width, height) > 0
        assert expected.any() and expected.mean() < 0.98, "a mask of all or nothing: a misplaced drawing would pass"
        after = browser.image("after")
        drawn = after.media_mask(changed(before.pixels, after.pixels, speckle=0))
        overlap, outside = overlap_and_outside(drawn, expected)
        assert overlap >= 0.8, f"only {overlap:.0%} of the backend's mask is drawn"
        assert outside <= 0.05, f"{outside:.0%} of what was drawn is not in the backend's mask"
    # a suggestion: Label Studio stores nothing until the annotator accepts it
    assert stored_predictions(label_studio, pid) == []


def test_a_stored_prediction_is_drawn_where_its_masks_are(label_studio, sam3):
    """Two tasks of one image; Retrieve Predictions on the second only; the pixels that differ
    between their labeling pages are the masks Label Studio stored (their union, holes included:
    random weights give large blobs)."""
    require_browser()
    (name, image, mime) = images()[2]
    width, height = SIZES[2]
    pid, ml, (plain, predicted) = new_project(
        label_studio, sam3, "sam3-browser", BATCH, [("plain-" + name, image, mime), (name, image, mime)]
    )
    resp = httpx.post(
        f"{label_studio.url}/api/dm/actions",
        headers=label_studio.auth_headers("legacy"),
        params={"id": "retrieve_tasks_predictions", "project": pid},
        timeout=600,
        json={"selectedItems": {"all": False, "included": [predicted["id"]]}},
    )
    assert resp.status_code == 200, resp.text
    (stored,) = stored_predictions(label_studio, pid)
    assert stored["task"] == predicted["id"] and stored["result"]
    expected = np.zeros((height, width), bool)
    for region in stored["result"]:
        expected |= rle_to_mask(region["value"]["rle"], width, height) > 0
    assert expected.mean() < 0.98, "the masks cover the whole image: a misplaced drawing would pass"
    # opening a task asks a connected backend for a prediction (context null), which sam3
    # answers with the batch pre-annotation: disconnect it, so the plain task stays plain
    httpx.delete(
        f"{label_studio.url}/api/ml/{ml['id']}", headers=label_studio.auth_headers("legacy"), timeout=60
    ).raise_for_status()
    with (
        LabelStudioBrowser(label_studio, artifact_dir("sam3-prediction", fresh=True)) as browser,
        browser.keep_on_failure("prediction"),
    ):
        before = browser.open_task(pid, plain["id"]).image("plain")
        after = browser.open_task(pid, predicted["id"]).image("predicted")
        drawn = after.media_mask(changed(before.pixels, after.pixels, speckle=0))
        overlap, outside = overlap_and_outside(drawn, expected)
        assert overlap >= 0.8, f"only {overlap:.0%} of the stored masks is drawn"
        assert outside <= 0.05, f"{outside:.0%} of what was drawn is not in the stored masks"


def test_the_readme_configs_are_what_these_tests_use():
    """If the README's configs change, these tests follow them (and must still pass)."""
    batch, smart, video = readme_configs()
    assert "<BrushLabels" in batch and 'hint="traffic light"' in batch
    assert 'name="tag2"' in smart and 'name="tag3"' in smart and "<VideoRectangle" in video
