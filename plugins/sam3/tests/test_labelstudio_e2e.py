"""sam3 against a real Label Studio: a prediction job pre-annotates a project with its labels as
prompts, Label Studio's own "Retrieve predictions" stores them, and a smart box through
/api/ml/{id}/interactive-annotating comes back as mask suggestions. Checked by reading what
Label Studio stored or answered. Skips without Label Studio (scripts/install-label-studio.sh)."""

from __future__ import annotations

import httpx
import pytest
import sam3_configs as configs
from sam3_media import image_uri, smart_box

from prelabel.testing.backendprocess import BackendProcess
from prelabel.testing.labelstudio import LabelStudioServer, find_label_studio_executable

pytestmark = pytest.mark.e2e
LABELS = {"Car", "Person", "cls_3"}


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    executable = find_label_studio_executable()
    if executable is None or not executable.is_file():
        pytest.skip("needs Label Studio: scripts/install-label-studio.sh")
    server = LabelStudioServer(tmp_path_factory.mktemp("ls-data"), executable=executable)
    server.start(timeout=300)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend(label_studio, model_root, tmp_path_factory):
    env = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
           "MODEL_ROOT": str(model_root), "SAM3_MODEL": "sam3-tiny", "DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
           "SAM3_SCORE_THRESHOLD": "0.2", "PRELABEL_PLUGINS": "sam3"}
    with BackendProcess("sam3", home=tmp_path_factory.mktemp("sam3-home"), env=env) as proc:
        yield proc


def api(label_studio, method: str, path: str, **kwargs) -> httpx.Response:
    resp = httpx.request(method, f"{label_studio.url}{path}", headers=label_studio.auth_headers("legacy"),
                         timeout=120, **kwargs)
    assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
    return resp


def project(label_studio, title: str, config: str, n: int) -> int:
    pid = api(label_studio, "POST", "/api/projects", json={"title": title, "label_config": config}).json()["id"]
    api(label_studio, "POST", f"/api/projects/{pid}/import", json=[{"data": {"image": image_uri(i)}} for i in range(n)])
    return pid


def predictions(label_studio, pid: int) -> list[dict]:
    return api(label_studio, "GET", "/api/predictions", params={"project": pid}).json()


def check_masks(stored: list[dict], version: str) -> None:
    assert {p["model_version"] for p in stored} == {version}
    regions = [r for p in stored for r in p["result"]]
    assert regions, "no region stored"
    assert {r["type"] for r in regions} == {"brushlabels"} and {r["from_name"] for r in regions} == {"mask"}
    assert {r["value"]["brushlabels"][0] for r in regions} <= LABELS


def test_a_prediction_job_stores_one_prediction_per_task(label_studio, backend):
    pid = project(label_studio, "sam3-job", configs.MASKS, 3)
    with backend.http(timeout=60) as http:
        resp = http.post("/jobs", json={"kind": "predict", "project": pid})
        assert resp.status_code == 201, resp.text
        version = http.get("/health").json()["model_version"]
    job = backend.wait_job(resp.json()["id"], timeout=600)
    assert job["status"] == "succeeded", job
    assert job["result"]["predicted"] == 3 and job["result"]["failed"] == 0
    stored = predictions(label_studio, pid)
    assert sorted(p["task"] for p in stored) == sorted({p["task"] for p in stored}) and len(stored) == 3
    check_masks(stored, version)


def test_retrieve_predictions_and_a_smart_box_through_label_studio(label_studio, backend):
    config = configs.SMART.replace('name="tag"', 'name="mask"')
    pid = project(label_studio, "sam3-connected", configs.MASKS, 2)
    ml = api(label_studio, "POST", "/api/ml", json={"url": backend.url, "project": pid, "title": "sam3",
                                                    "is_interactive": True}).json()
    api(label_studio, "POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": pid},
        json={"selectedItems": {"all": True, "excluded": []}})
    with backend.http() as http:
        version = http.get("/health").json()["model_version"]
    stored = predictions(label_studio, pid)
    assert len(stored) == 2
    check_masks(stored, version)
    # the interactive call: Label Studio forwards the context, answers {"data": results[0]}
    smart = project(label_studio, "sam3-smart", config, 1)
    ml = api(label_studio, "POST", "/api/ml", json={"url": backend.url, "project": smart, "title": "sam3-smart",
                                                    "is_interactive": True}).json()
    task = api(label_studio, "GET", "/api/tasks", params={"project": smart}).json()
    task_id = (task["tasks"] if isinstance(task, dict) else task)[0]["id"]
    answer = api(label_studio, "POST", f"/api/ml/{ml['id']}/interactive-annotating",
                 json={"task": task_id, "context": {"result": [smart_box(10, 20, 40, 50)]}}).json()
    assert "errors" not in answer, answer
    regions = answer["data"]["result"]
    assert regions and {r["from_name"] for r in regions} == {"mask"}
    assert all(r["value"]["brushlabels"] == ["defect"] for r in regions)
