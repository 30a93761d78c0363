"""`make demo` (scripts/demo.py) on a fresh home, twice, then once more until Ctrl-C.

Run 1 (``--no-wait``) starts a brand-new Label Studio (migrations), creates and imports the
project, connects and trains the backend and retrieves predictions. Run 2 (``--no-wait``) must
reuse all of it. Run 3 waits like a person's `make demo` does; the test reads what Label Studio
stored while it is up, then presses Ctrl-C (SIGINT) and checks that both servers are gone.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "scripts" / "demo.py"
ROWS = json.loads((REPO / "scripts" / "demo_data.json").read_text())
TITLE = "prelabel demo: sentiment"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


@dataclass
class Run:
    seconds: float
    code: int
    output: str
    state: dict[str, Any]


@pytest.fixture(scope="module")
def demo(label_studio_executable: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("demo")
    home = workdir / ".demo"
    ports = ["--port", str(_free_port()), "--backend-port", str(_free_port())]
    command = [sys.executable, str(DEMO), "--home", str(home), *ports]

    def run(*extra: str) -> Run:
        started = time.monotonic()
        proc = subprocess.run([*command, *extra], cwd=workdir, capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - started
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"demo exited with {proc.returncode}:\n{output}"
        return Run(seconds, proc.returncode, output, json.loads((home / "demo-state.json").read_text()))

    first = run("--no-wait")
    second = run("--no-wait")
    print(
        f"\nmake demo: first run {first.seconds:.1f} s (setup {first.state['setup_seconds']} s), "
        f"second run {second.seconds:.1f} s (setup {second.state['setup_seconds']} s)"
    )
    return {"home": home, "workdir": workdir, "command": command, "first": first, "second": second}


def test_first_run_sets_everything_up(demo: dict) -> None:
    first: Run = demo["first"]
    state = first.state
    assert state["created_project"] and state["trained_now"]
    assert state["tasks"] == len(ROWS)
    assert state["unlabeled"] == sum(not r["annotated"] for r in ROWS) == state["preannotated"]
    assert (
        state["model_version"].startswith("text_classifier-") and state["model_version"] != "text_classifier-untrained"
    )
    for expected in (state["project_url"], "admin@example.com", state["password"], "Ready", "What to do next"):
        assert expected in first.output
    # both servers were stopped by --no-wait
    assert not _listening(state["label_studio_url"]) and not _listening(state["backend_url"])
    model_dir = demo["home"] / "prelabel" / "models" / "text_classifier" / str(state["project_id"])
    assert (model_dir / state["model_version"] / "model.joblib").is_file()


def test_second_run_reuses_and_is_faster(demo: dict) -> None:
    first, second = demo["first"], demo["second"]
    assert not second.state["created_project"] and not second.state["trained_now"]
    assert second.state["project_id"] == first.state["project_id"]
    assert second.state["model_version"] == first.state["model_version"]
    assert second.state["tasks"] == len(ROWS)
    assert "already connected" in second.output and "Already trained" in second.output
    assert second.seconds < first.seconds, (first.seconds, second.seconds)


def test_waiting_demo_serves_preannotations_and_stops_on_ctrl_c(demo: dict) -> None:
    from label_studio_sdk.client import LabelStudio

    from prelabel.testing.harness.labelstudio import DEFAULT_LEGACY_TOKEN

    home: Path = demo["home"]
    state_file = home / "demo-state.json"
    log = demo["workdir"] / "run3.log"
    with log.open("w") as out:
        proc = subprocess.Popen(demo["command"], cwd=demo["workdir"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:  # ready when this run wrote its state file
            try:
                state = json.loads(state_file.read_text())
                if state["pid"] == proc.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"demo not ready after 300 s:\n{log.read_text()}"
            time.sleep(0.2)
        assert not state["created_project"] and not state["trained_now"]

        sdk = LabelStudio(base_url=state["label_studio_url"], api_key=DEFAULT_LEGACY_TOKEN)
        projects = [p for p in sdk.projects.list() if p.title == TITLE]
        assert [p.id for p in projects] == [state["project_id"]]  # one project, never a duplicate
        pid = state["project_id"]
        tasks = list(sdk.tasks.list(project=pid, page_size=1000))
        assert sorted(t.data["text"] for t in tasks) == sorted(r["text"] for r in ROWS)  # no duplicate import
        annotated = {t.id for t in tasks if t.total_annotations}
        assert len(annotated) == sum(r["annotated"] for r in ROWS)

        ml = sdk.ml.list(project=pid)
        assert len(ml) == 1 and ml[0].state == "CO" and ml[0].is_interactive
        version = sdk.ml.get(id=ml[0].id).model_version
        assert version == state["model_version"]

        preds = sdk.predictions.list(project=pid)
        per_task = Counter(p.task for p in preds if p.model_version == version and p.result)
        unlabeled = [t.id for t in tasks if t.id not in annotated]
        assert all(per_task[tid] == 1 for tid in unlabeled), per_task

        with httpx.Client(base_url=state["backend_url"], trust_env=False) as backend:
            assert backend.get("/health").json()["trained_projects"] == [str(pid)]
            jobs = backend.get("/jobs", params={"kind": "train"}).json()["jobs"]
        assert [j["status"] for j in jobs] == ["succeeded"]  # trained once over three runs

        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert code == 0, output
    assert "stopped" in output
    assert not _listening(state["label_studio_url"]), "Label Studio still listens after Ctrl-C"
    assert not _listening(state["backend_url"]), "the backend still listens after Ctrl-C"
