"""``prelabel serve --model-file``: the real command, over HTTP on loopback."""

import os
import subprocess
from pathlib import Path

import pytest

from prelabel.testing.client import per_task_results
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess, prelabel_command

MODELS = Path(__file__).parent / "models"


class ModelFileProcess(BackendProcess):
    """``prelabel serve --model-file FILE`` instead of a plugin name."""

    def __init__(self, model_file: Path, home: Path, workers: int = 1, **kwargs):
        super().__init__(f"--model-file {model_file.name}", home, **kwargs)
        self.model_file = model_file
        self.workers = workers

    def command(self) -> list[str]:
        return [
            *prelabel_command(),
            "serve",
            "--model-file",
            str(self.model_file),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]


def _annotated(tid, text, label):
    return {
        "id": tid,
        "data": {"text": text},
        "annotations": [
            {
                "id": tid,
                "result": [
                    {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                ],
            }
        ],
    }


@pytest.fixture(autouse=True)
def _no_model_dir(monkeypatch):
    monkeypatch.delenv("MODEL_DIR", raising=False)  # so serve's default is what is tested


def test_serve_model_file_answers_label_studio(tmp_path):
    home = tmp_path / "home"
    with ModelFileProcess(MODELS / "sklearn_text_classifier.py", home) as backend, backend.http() as http:
        health = http.get("/health").json()
        assert health["status"] == "UP" and health["model_class"] == "SklearnTextClassifier"
        assert health["model_file"].endswith("sklearn_text_classifier.py:SklearnTextClassifier")
        setup = http.post("/setup", json={"project": "1.1700000000", "schema": TEXT_CHOICES})
        assert setup.json() == {"model_version": "SklearnTextClassifier-v0.0.1"}
        tasks = [{"id": 1, "data": {"text": "wonderful"}}, {"id": 2, "data": {"text": "boring"}}]
        body = {
            "tasks": tasks,
            "project": "1.1700000000",
            "label_config": TEXT_CHOICES,
            "params": {"login": None, "password": None, "context": None},
        }
        results = per_task_results(http.post("/predict", json=body).json())
        assert len(results) == 2 and all(r["model_version"] == "SklearnTextClassifier-v0.0.1" for r in results)
        train = http.post(
            "/train",
            json={
                "project": "1.1700000000",
                "annotations": [
                    _annotated(1, "great wonderful film", "positive"),
                    _annotated(2, "awful boring film", "negative"),
                ],
            },
        )
        job = backend.wait_job(train.json()["job"])
        assert job["status"] == "succeeded", job
        results = per_task_results(http.post("/predict", json=body).json())
        assert [r["result"][0]["value"]["choices"] for r in results] == [["positive"], ["negative"]]
        assert {r["model_version"] for r in results} == {"SklearnTextClassifier-v0.1.0"}
        assert "SklearnTextClassifier-v0.1.0" in http.get("/versions").json()["versions"]
    # MODEL_DIR defaults to PRELABEL_HOME/models/<model file>
    assert (home / "models" / "sklearn_text_classifier" / "model-1.pkl").is_file()


def test_serve_model_file_with_two_processes_agrees_on_versions(tmp_path):
    with (
        ModelFileProcess(MODELS / "scaffold_model.py", tmp_path / "home", workers=2) as backend,
        backend.http() as http,
    ):
        setup = {"project": "4.1700000000", "schema": TEXT_CHOICES}
        assert {http.post("/setup", json=setup).json()["model_version"] for _ in range(8)} == {"0.0.1"}
        project = {"id": 4, "label_config": TEXT_CHOICES}
        resp = http.post("/webhook", json={"action": "START_TRAINING", "project": project})
        assert resp.status_code == 201, resp.text
        assert backend.wait_job(resp.json()["job"])["status"] == "succeeded"
        # whichever process answers, it reports the version fit() stored in the shared state
        assert {http.post("/setup", json=setup).json()["model_version"] for _ in range(8)} == {"0.1.0"}


def test_serve_needs_a_backend_or_a_model_file():
    run = [*prelabel_command(), "serve"]
    env = {**os.environ, "PRELABEL_HOME": "/nonexistent-prelabel-home"}
    neither = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert neither.returncode != 0 and "--model-file" in neither.stderr
    both = subprocess.run(
        [*run, "reference", "--model-file", str(MODELS / "scaffold_model.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert both.returncode != 0 and "not both" in both.stderr
    missing = subprocess.run(
        [*run, "--model-file", "no/such/model.py"], capture_output=True, text=True, timeout=60, env=env
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr
