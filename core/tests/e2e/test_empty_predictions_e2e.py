"""What Label Studio 1.23 stores when a backend has nothing for some tasks (issue 22, item 4).

A backend's empty prediction (``"result": []``) is stored by Label Studio as a prediction of
the current model version: an empty tab on the task, and Retrieve Predictions then skips the
task for that version. prelabel answers a batch in which some task has nothing with a list per
task (``[]`` for those), which Label Studio stores item by item, and keeps one entry per task
(Label Studio drops a whole batch answered with fewer entries than tasks;
docs/label-studio-protocol.md section 7). Everything here is read back from a real Label
Studio; the backend is the reference backend, which before training picks the choice its text
names and has nothing for a text that names none."""

from __future__ import annotations

import httpx
import pytest

from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.lsproject import connect_backend, project_tasks, retrieve_predictions, stored_predictions

pytestmark = pytest.mark.e2e

REFERENCE = "prelabel.testing.reference:ReferenceBackend"
TEXTS = ["a positive day", "nothing to say here", "a negative turn", "the weather", "positive, positive"]


def _project(label_studio, title: str, backend) -> tuple[int, list[dict], dict]:
    client = label_studio.client()
    project = client.projects.create(title=title, label_config=TEXT_CHOICES)
    client.projects.import_tasks(id=project.id, request=[{"text": t} for t in TEXTS])
    ml = connect_backend(label_studio, project.id, backend.url, title="reference")
    return project.id, project_tasks(label_studio, project.id), ml


@pytest.fixture(scope="module")
def reference(label_studio, tmp_path_factory):
    with BackendProcess(REFERENCE, home=tmp_path_factory.mktemp("ref-home")) as backend:
        yield backend


def test_tasks_with_nothing_get_no_prediction_and_the_others_one_each(label_studio, reference):
    pid, tasks, ml = _project(label_studio, "empty-predictions", reference)
    retrieve_predictions(label_studio, pid)
    stored = stored_predictions(label_studio, pid)
    by_text = {t["data"]["text"]: [p for p in stored if p["task"] == t["id"]] for t in tasks}
    assert {text: len(preds) for text, preds in by_text.items()} == {
        "a positive day": 1,
        "nothing to say here": 0,
        "a negative turn": 1,
        "the weather": 0,
        "positive, positive": 1,
    }
    assert by_text["a negative turn"][0]["result"][0]["value"]["choices"] == ["negative"]
    assert {p["model_version"] for p in stored} == {ml["model_version"]}

    # a second Retrieve asks again for the tasks with nothing, and stores no duplicate
    retrieve_predictions(label_studio, pid)
    assert sorted(p["id"] for p in stored_predictions(label_studio, pid)) == sorted(p["id"] for p in stored)


def test_a_single_task_with_nothing_stores_nothing(label_studio, reference):
    """Opening a task (or Retrieve on one task) is a batch of one."""
    client = label_studio.client()
    project = client.projects.create(title="empty-single", label_config=TEXT_CHOICES)
    client.projects.import_tasks(id=project.id, request=[{"text": "the weather"}])
    connect_backend(label_studio, project.id, reference.url, title="reference")
    retrieve_predictions(label_studio, project.id)
    assert stored_predictions(label_studio, project.id) == []


def test_an_interactive_answer_keeps_its_shape(label_studio, reference):
    """With a context (a smart tool's click) Label Studio shows ``results[0]`` and stores nothing."""
    client = label_studio.client()
    project = client.projects.create(title="empty-interactive", label_config=TEXT_CHOICES)
    client.projects.import_tasks(id=project.id, request=[{"text": "the weather"}])
    (task,) = project_tasks(label_studio, project.id)
    with httpx.Client(base_url=reference.url, timeout=30, trust_env=False) as http:
        answer = http.post(
            "/predict",
            json={
                "tasks": [task],
                "project": str(project.id),
                "label_config": TEXT_CHOICES,
                "params": {"context": {"result": []}},
            },
        ).json()
    assert answer["results"] == [{"result": [], "score": None, "model_version": answer["model_version"]}]


def test_store_empty_predictions_keeps_the_old_behaviour(label_studio, tmp_path):
    with BackendProcess(REFERENCE, home=tmp_path / "home", env={"STORE_EMPTY_PREDICTIONS": "true"}) as backend:
        pid, tasks, _ = _project(label_studio, "empty-stored", backend)
        retrieve_predictions(label_studio, pid)
    stored = stored_predictions(label_studio, pid)
    assert sorted(p["task"] for p in stored) == sorted(t["id"] for t in tasks)
    assert sum(not p["result"] for p in stored) == 2
