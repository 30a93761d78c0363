"""``python _wsgi.py --host H --port N``: an upstream-style entry script serves its model
through prelabel's server (a real process on loopback, polled until /health answers)."""

import subprocess
import sys
from pathlib import Path

import pytest

from prelabel.testing import configs
from prelabel.testing.client import per_task_results
from prelabel.testing.harness.backendprocess import BackendProcess

WSGI = Path(__file__).parent / "wsgi_model" / "_wsgi.py"

pytestmark = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import label_studio_ml.api"], capture_output=True).returncode != 0,
    reason='needs prelabel-compat: pip install -e "core[compat]" -e compat',
)


class WsgiProcess(BackendProcess):
    """``python _wsgi.py --host HOST --port PORT [args]`` instead of ``prelabel serve``."""

    def __init__(self, script: Path, home: Path, args: tuple[str, ...] = (), **kwargs):
        super().__init__(f"python {script.name}", home, **kwargs)
        self.script = script
        self.args = args

    def command(self) -> list[str]:
        return [sys.executable, str(self.script), "--host", self.host, "--port", str(self.port), *self.args]


def test_python_wsgi_serves_the_model_with_prelabels_server(tmp_path):
    with WsgiProcess(WSGI, tmp_path / "home") as backend, backend.http() as http:
        health = http.get("/health").json()
        assert health["status"] == "UP" and health["model_class"] == "KeywordSentiment"
        assert http.get("/metrics").status_code == 200  # prelabel's server, not a bare stand-in
        setup = http.post("/setup", json={"project": "5.1700000000", "schema": configs.TEXT_CHOICES})
        assert setup.json() == {"model_version": "KeywordSentiment-v1"}
        body = {
            "tasks": [{"id": 1, "data": {"text": "a great film"}}, {"id": 2, "data": {"text": "dull"}}],
            "project": "5.1700000000",
            "label_config": configs.TEXT_CHOICES,
            "params": {"login": None, "password": None, "context": None},
        }
        results = per_task_results(http.post("/predict", json=body).json())
        assert [r["result"][0]["value"]["choices"] for r in results] == [["positive"], ["negative"]]
        assert {r["model_version"] for r in results} == {"KeywordSentiment-v1"}
    # state went where PRELABEL_HOME says, as with prelabel serve
    assert (tmp_path / "home" / "state.sqlite3").is_file()


def test_python_wsgi_with_check_kwargs_and_basic_auth(tmp_path):
    args = ("--check", "--kwargs", "project_id=9", "--basic-auth-user", "ls", "--basic-auth-pass", "pw")
    with WsgiProcess(WSGI, tmp_path / "home", args=args, auth=("ls", "pw")) as backend:
        with backend.http() as http:
            assert http.get("/health").status_code == 200
        import httpx

        assert (
            httpx.post(f"{backend.url}/predict", json={"tasks": [{"data": {"text": "x"}}]}, trust_env=False).status_code
            == 401
        )
        log = backend.log_tail(200)
    assert 'check: {"project_id": "9"} KeywordSentiment-v1' in log
