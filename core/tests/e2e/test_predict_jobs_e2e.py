"""Whole-project prediction jobs against a real Label Studio: 500 tasks, resumable, one job
per project, cancellable without half-written batches, and the `prelabel predict` CLI.
Everything is checked by reading what Label Studio stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess

pytestmark = pytest.mark.e2e

WORDS = {"positive": "great wonderful love", "negative": "awful terrible hate", "neutral": "average okay plain"}
N_TASKS = 500


def texts(n: int, offset: int = 0) -> list[tuple[str, str]]:
    labels = list(WORDS)
    return [
        (f"review {i}: the service was {WORDS[labels[i % 3]].split()[i % 3]} today", labels[i % 3])
        for i in range(offset, offset + n)
    ]


def make_project(client, title: str, n: int = N_TASKS, annotated: int = 30, named: bool = False) -> int:
    """A project of ``n`` reviews, the first ``annotated`` of them annotated; ``named``: each
    text also names its label (which the untrained reference backend picks)."""
    project = client.projects.create(title=title, label_config=TEXT_CHOICES)
    payload = []
    for i, (text, label) in enumerate(texts(n)):
        if named:
            text = f"{text}, {label} overall"
        task: dict = {"data": {"text": text}}
        if i < annotated:
            task["annotations"] = [
                {
                    "result": [
                        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ]
                }
            ]
        payload.append(task)
    client.projects.import_tasks(id=project.id, request=payload)
    return project.id


def stored_predictions(ls, project_id: int) -> list[dict]:
    resp = httpx.get(
        f"{ls.url}/api/predictions", params={"project": project_id}, headers=ls.auth_headers("legacy"), timeout=60
    )
    resp.raise_for_status()
    return resp.json()


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    env = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.personal_access_token()}
    with BackendProcess("text_classifier", home=tmp_path_factory.mktemp("tc-home"), env=env) as proc:
        yield proc


def start_job(backend, project_id: int, **params) -> httpx.Response:
    with backend.http() as http:
        return http.post("/jobs", json={"kind": "predict", "project": project_id, "params": params})


def train(backend, project_id: int) -> str:
    with backend.http() as http:
        job = http.post("/jobs", json={"kind": "train", "project": project_id}).json()
    done = backend.wait_job(job["id"], timeout=120)
    assert done["status"] == "succeeded", done
    return done["result"]["model_version"]


def test_500_tasks_predicted_once_and_rerun_adds_nothing(label_studio, backend):
    client = label_studio.client()
    pid = make_project(client, "predict-job-500")
    version = train(backend, pid)
    started = time.monotonic()
    resp = start_job(backend, pid, batch_size=50)
    assert resp.status_code == 201, resp.text
    job = backend.wait_job(resp.json()["id"], timeout=300)
    elapsed = time.monotonic() - started
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["tasks"] == N_TASKS and result["predicted"] == N_TASKS and result["failed"] == 0
    print(f"\n500-task prediction job: {elapsed:.1f}s, {N_TASKS / elapsed:.0f} tasks/s")

    stored = stored_predictions(label_studio, pid)
    per_task = Counter(p["task"] for p in stored)
    assert len(per_task) == N_TASKS and set(per_task.values()) == {1}
    assert {p["model_version"] for p in stored} == {version}
    # the held-out (unannotated) tasks are labeled right
    by_task = {p["task"]: p["result"][0]["value"]["choices"][0] for p in stored if p["result"]}
    tasks = list(client.tasks.list(project=pid, page_size=100))
    truth = {t.id: label for t, (_, label) in zip(sorted(tasks, key=lambda t: t.id), texts(N_TASKS), strict=True)}
    held_out = [tid for tid in truth if tid not in sorted(truth)[:30]]
    accuracy = sum(by_task.get(tid) == truth[tid] for tid in held_out) / len(held_out)
    assert accuracy >= 0.9

    again = backend.wait_job(start_job(backend, pid).json()["id"], timeout=300)
    assert again["status"] == "succeeded"
    assert again["result"]["predicted"] == 0 and again["result"]["skipped_existing"] == N_TASKS
    assert len(stored_predictions(label_studio, pid)) == N_TASKS


def test_one_prediction_job_per_project_and_clean_cancel(label_studio, backend):
    client = label_studio.client()
    pid = make_project(client, "predict-job-cancel")
    train(backend, pid)  # an untrained classifier has nothing to say, and nothing would be stored
    first = start_job(backend, pid, batch_size=10)
    assert first.status_code == 201
    second = start_job(backend, pid, batch_size=10)
    assert second.status_code == 409 and first.json()["id"] in second.json()["error"]

    job_id = first.json()["id"]
    with backend.http() as http:
        deadline = time.monotonic() + 120
        while http.get(f"/jobs/{job_id}").json()["progress"] < 0.1:  # some batches are in
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cancel = http.delete(f"/jobs/{job_id}")
        assert cancel.status_code == 200 and cancel.json()["cancel_requested"] is True
    job = backend.wait_job(job_id, timeout=120)
    assert job["status"] == "cancelled"
    stored = stored_predictions(label_studio, pid)
    per_task = Counter(p["task"] for p in stored)
    assert 0 < len(per_task) < N_TASKS and set(per_task.values()) == {1}
    assert len(per_task) % 10 == 0  # whole batches only: nothing half-written

    # the lock was released, and a new job finishes the rest without duplicates
    rest = backend.wait_job(start_job(backend, pid, batch_size=100).json()["id"], timeout=300)
    assert rest["status"] == "succeeded"
    assert rest["result"]["skipped_existing"] == len(per_task)
    stored = stored_predictions(label_studio, pid)
    assert len(stored) == N_TASKS and len({p["task"] for p in stored}) == N_TASKS


def test_cli_predicts_only_unlabeled_tasks_with_progress(label_studio, tmp_path):
    client = label_studio.client()
    pid = make_project(client, "predict-cli", n=120, annotated=20, named=True)
    env = {
        **os.environ,
        "PRELABEL_HOME": str(tmp_path / "home"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
    }
    cmd = [
        sys.executable,
        "-m",
        "prelabel.cli",
        "predict",
        "prelabel.testing.reference:ReferenceBackend",
        "--project",
        str(pid),
        "--only-unlabeled",
        "--batch-size",
        "25",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "succeeded" in out.stderr and "predicted 100" in out.stderr and "skipped_labeled 20" in out.stderr
    stored = stored_predictions(label_studio, pid)
    assert len(stored) == 100 and all(p["model_version"] == "reference-1" for p in stored)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "predicted 0" in again.stderr
    assert len(stored_predictions(label_studio, pid)) == 100

    missing = subprocess.run(
        cmd,
        env={k: v for k, v in env.items() if k != "LABEL_STUDIO_API_KEY"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "LABEL_STUDIO_API_KEY" in missing.stderr


def test_500_tasks_with_kimi_on_the_fake_llm(label_studio, tmp_path):
    from prelabel.testing.fake_openai import FakeOpenAI

    client = label_studio.client()
    project = client.projects.create(title="predict-job-kimi", label_config=TEXT_CHOICES)
    client.projects.import_tasks(id=project.id, request=[{"text": t} for t, _ in texts(N_TASKS)])
    with FakeOpenAI(latency=0.01) as fake:
        env = {
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
            "MOONSHOT_API_KEY": "sk-test",
            "MOONSHOT_BASE_URL": fake.base_url,
            "MAX_CONCURRENT": "20",
        }
        with BackendProcess("kimi", home=tmp_path / "kimi", env=env) as kimi:
            first = start_job(kimi, project.id)
            assert first.status_code == 201, first.text
            job = kimi.wait_job(first.json()["id"], timeout=300)
            assert job["status"] == "succeeded", job
            assert job["result"]["predicted"] == N_TASKS and job["result"]["failed"] == 0
            again = kimi.wait_job(start_job(kimi, project.id).json()["id"], timeout=300)
            assert again["result"]["predicted"] == 0 and again["result"]["skipped_existing"] == N_TASKS
        calls = len(fake.chat_requests)
    stored = stored_predictions(label_studio, project.id)
    assert len(stored) == N_TASKS and len({p["task"] for p in stored}) == N_TASKS
    assert {p["model_version"] for p in stored} == {job["result"]["model_version"]}
    choices = {p["result"][0]["value"]["choices"][0] for p in stored}
    assert choices <= {"positive", "negative", "neutral"}
    assert calls == N_TASKS  # the re-run sent nothing to the provider


def test_a_job_stores_no_empty_prediction(label_studio, backend):
    """The untrained text_classifier has nothing for any task: the job says so and Label
    Studio is given nothing to store (an empty prediction would be a tab on every task)."""
    client = label_studio.client()
    pid = make_project(client, "predict-job-empty", n=40, annotated=0)
    job = backend.wait_job(start_job(backend, pid).json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    assert job["result"]["predicted"] == 40 and job["result"]["empty"] == 40, job["result"]
    assert stored_predictions(label_studio, pid) == []
