"""sam2 in a real Label Studio: connected for interactive pre-annotations, asked through
``POST /api/ml/{id}/interactive-annotating`` with the contexts the labeling UI sends
(e2e_ui_contexts/, captured from Chromium), on an uploaded image that the backend fetches
from ``/data/upload/`` with a personal access token; then the smart click of the UI itself in
Chromium, with the mask drawn where the object is.

Random weights (no SAM 2 checkpoint is on PyPI): the mask's shape is arbitrary, so this checks
the protocol (what reaches the backend, what comes back, what Label Studio keeps) and that the
browser draws what the backend answered, not the mask's quality."""

from __future__ import annotations

import copy
import json
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
from prelabel.testing.harness.lsproject import connect_backend, stored_predictions, upload_files
from prelabel.testing.images import png_bytes

pytestmark = pytest.mark.e2e

CONTEXTS = Path(__file__).parent / "e2e_ui_contexts"
W, H = 320, 240
# the README's config
CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <KeyPointLabels name="kp" toName="image" smart="true">
    <Label value="Car" smart="true" background="red"/>
    <Label value="Person" smart="true" background="blue"/>
  </KeyPointLabels>
  <RectangleLabels name="rect" toName="image" smart="true">
    <Label value="Car" background="red"/>
    <Label value="Person" background="blue"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="Car" background="red"/>
    <Label value="Person" background="blue"/>
  </BrushLabels>
</View>"""


def ui_context(name: str, label: str = "Car") -> dict:
    """A captured context with this project's control names, label and image size."""
    context = json.loads((CONTEXTS / name).read_text())
    for region in context["result"]:
        region["from_name"] = {"keypointlabels": "kp", "rectanglelabels": "rect"}[region["type"]]
        region["original_width"], region["original_height"] = W, H
        for key in ("keypointlabels", "rectanglelabels", "labels"):
            if key in region["value"]:
                region["value"][key] = [label]
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
def sam2(label_studio, model_root, tmp_path_factory):
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "MODEL_ROOT": str(model_root),
        "MODEL_CONFIG": "tiny",
        "SAM2_IMAGE_SIZE": "128",
        "DEVICE": "cpu",
    }
    with BackendProcess("sam2", home=tmp_path_factory.mktemp("sam2-home"), env=env) as backend:
        yield backend


@pytest.fixture(scope="module")
def project(label_studio, sam2):
    client = label_studio.client()
    created = client.projects.create(title="sam2-interactive", label_config=CONFIG)
    ml = connect_backend(label_studio, created.id, sam2.url, title="sam2", interactive=True)
    image = png_bytes(W, H, color=(40, 120, 200), box=(120, 80, 220, 160))
    (task,) = upload_files(label_studio, created.id, [("car.png", image, "image/png")])
    assert task["data"]["image"].startswith("/data/upload/")
    return created.id, ml, task


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


def assert_mask_of_the_image(result: list[dict], label: str) -> np.ndarray:
    masks = [r for r in result if r["type"] == "brushlabels"]
    assert len(masks) == 1, result
    (region,) = masks
    assert region["from_name"] == "mask" and region["to_name"] == "image"
    assert region["value"]["brushlabels"] == [label]
    assert (region["original_width"], region["original_height"]) == (W, H)
    mask = rle_to_mask(region["value"]["rle"], W, H)
    assert mask.shape == (H, W) and mask.any()
    return mask


@pytest.mark.parametrize(
    ("name", "label"),
    [("smart_keypoint_after_two_ordinary_keypoints.json", "Car"), ("smart_rectangle_alone.json", "Person")],
)
def test_ui_context_through_label_studio_gets_a_mask_of_the_image(label_studio, project, name, label):
    pid, ml, task = project
    before = stored_predictions(label_studio, pid)
    data = interactive(label_studio, ml["id"], task["id"], ui_context(name, label))
    assert data["model_version"] == ml["model_version"]
    assert_mask_of_the_image(data["result"], label)
    # an interactive answer is a suggestion: Label Studio stores nothing until it is accepted
    assert stored_predictions(label_studio, pid) == before


def test_alt_click_is_negative_and_changes_the_mask(label_studio, project):
    """The UI flags only its newest smart point; the earlier, unflagged points of a UI request
    are left out (plugins/sam2/README.md, "In Label Studio, step by step"). So an Alt+click is a negative
    point with no positive one beside it, which asks for no mask: the suggestion goes away."""
    pid, ml, task = project
    before = stored_predictions(label_studio, pid)
    context = ui_context("smart_keypoint_after_two_ordinary_keypoints.json")
    assert_mask_of_the_image(interactive(label_studio, ml["id"], task["id"], context)["result"], "Car")
    negative = copy.deepcopy(context)
    negative["result"][-1]["is_positive"] = False  # Alt+click
    flipped = interactive(label_studio, ml["id"], task["id"], negative)["result"]
    assert [r for r in flipped if r["type"] == "brushlabels"] == [], "a lone negative point must give no mask"
    assert stored_predictions(label_studio, pid) == before


def test_smart_click_in_the_browser_draws_the_backends_mask(label_studio, project, sam2):
    require_browser()
    pid, ml, task = project
    with (
        LabelStudioBrowser(label_studio, artifact_dir("sam2-interactive", fresh=True)) as browser,
        browser.keep_on_failure("smart-click"),
    ):
        browser.open_task(pid, task["id"])
        before = browser.image("before")
        body = browser.smart_keypoint_click(before, 170, 120, "Car")  # the middle of the box in the image
        assert "data" in body, body
        expected = assert_mask_of_the_image(body["data"]["result"], "Car") > 0
        after = browser.image("after")
        drawn = after.media_mask(changed(before.pixels, after.pixels, speckle=0))
        overlap, outside = overlap_and_outside(drawn, expected)
        assert overlap >= 0.8, f"only {overlap:.0%} of the backend's mask is drawn"
        assert outside <= 0.05, f"{outside:.0%} of what was drawn is not in the backend's mask"
