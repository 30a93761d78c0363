#!/usr/bin/env python
"""`make demo`: Label Studio + the text_classifier backend, a sentiment project, trained once.

Starts a real Label Studio (SQLite, loopback, data in <home>/label-studio) and
`prelabel serve text_classifier` (state and models in <home>/prelabel), creates the project
"prelabel demo: sentiment" with 42 short reviews (12 of them already annotated), connects the
backend to it (interactive pre-annotation on), trains once and retrieves predictions, so every
unlabeled task opens pre-annotated. Then it prints the URL and the login and waits; Ctrl-C (or
SIGTERM) stops both servers.

A second run reuses everything: the same data directories, the project found by its title, no
second import, no retraining when the backend already has a trained version. Fully offline.

    .venv/bin/python scripts/demo.py [--home .demo] [--port 8080] [--backend-port 9095] [--no-wait]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA_FILE = HERE / "demo_data.json"
TITLE = "prelabel demo: sentiment"
ML_TITLE = "text_classifier"
BACKEND = "text_classifier"
USERNAME = "admin@example.com"
PASSWORD = "prelabel-demo"
STATE_FILE = "demo-state.json"
CONTROL = "sentiment"
LABEL_CONFIG = f"""<View>
  <Header value="How does the writer feel?"/>
  <Text name="text" value="$text"/>
  <Choices name="{CONTROL}" toName="text" choice="single" showInline="true">
    <Choice value="positive"/>
    <Choice value="negative"/>
    <Choice value="neutral"/>
  </Choices>
</View>"""
DESCRIPTION = (
    "Short reviews, 12 of them annotated. The text_classifier backend (TF-IDF + logistic regression) "
    "was trained on those and pre-annotated the rest. Annotate more, then Settings > Model > "
    "Start Training, and Retrieve Predictions again."
)
NO_RETRY = {"max_retries": 0}


class DemoError(RuntimeError):
    """Something the person running the demo has to fix; printed without a traceback."""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def port_free(host: str, port: int) -> bool:
    """Nothing listens on the port and a server could bind it (SO_REUSEADDR, as servers do, so
    a port in TIME_WAIT after the last run counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        if sock.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def first_free_port(host: str, start: int, avoid: set[int] = frozenset()) -> int:
    for port in range(start, start + 200):
        if port not in avoid and port_free(host, port):
            return port
    raise DemoError(f"no free port in {start}..{start + 199} on {host}")


def load_rows() -> list[dict[str, Any]]:
    rows = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert all({"text", "sentiment", "annotated"} <= set(r) for r in rows), "demo_data.json rows need these keys"
    return rows


def import_payload(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks for the import API; the annotated ones carry their annotation in the same payload."""
    tasks = []
    for row in rows:
        task: dict[str, Any] = {"data": {"text": row["text"]}}
        if row["annotated"]:
            task["annotations"] = [
                {
                    "result": [
                        {
                            "from_name": CONTROL,
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": [row["sentiment"]]},
                        }
                    ]
                }
            ]
        tasks.append(task)
    return tasks


class Demo:
    def __init__(self, args: argparse.Namespace):
        from rich.console import Console

        self.args = args
        self.home = Path(args.home).resolve()
        self.console = Console(highlight=False, soft_wrap=True)
        self.ls: Any = None
        self.backend: Any = None
        self.started = time.monotonic()

    # -- output --------------------------------------------------------------------------------
    def step(self, message: str) -> Any:
        return self.console.status(f"{message} ...", spinner="dots")

    def done(self, message: str, since: float | None = None) -> None:
        took = f" [dim]({time.monotonic() - since:.1f} s)[/]" if since is not None else ""
        self.console.print(f"[green]✓[/] {message}{took}")

    def lock(self) -> None:
        """One demo per home: a second Label Studio on the same SQLite database would corrupt it."""
        import fcntl

        self._lock = (self.home / "demo.lock").open("a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DemoError(f"another `make demo` is running with {_rel(self.home)}; stop it first (Ctrl-C)") from None

    # -- servers -------------------------------------------------------------------------------
    def start_servers(self) -> None:
        from prelabel.testing.harness.backendprocess import BackendProcess
        from prelabel.testing.harness.labelstudio import (
            LabelStudioError,
            LabelStudioServer,
            find_label_studio_executable,
        )

        host = "127.0.0.1"
        executable = find_label_studio_executable()
        if executable is None or not executable.is_file():
            raise DemoError("Label Studio is not installed: run scripts/install-label-studio.sh (make setup does)")
        ls_port = first_free_port(host, self.args.port)
        backend_port = first_free_port(host, self.args.backend_port, avoid={ls_port})
        ls_dir = self.home / "label-studio"
        self.ls = LabelStudioServer(
            ls_dir, port=ls_port, host=host, executable=executable, username=USERNAME, password=PASSWORD
        )
        self.backend = BackendProcess(
            BACKEND,
            home=self.home / "prelabel",
            port=backend_port,
            host=host,
            log_file=self.home / "prelabel" / "backend.log",
        )

        # On a second run the PAT cached in the data directory lets the backend start while
        # Label Studio does; on the first run the PAT exists only once Label Studio is up.
        cached = _cached_pat(self.ls.pat_cache_file)
        if cached:
            self._launch_backend(cached)
        fresh = not (ls_dir / "label_studio.sqlite3").exists()
        t0 = time.monotonic()
        what = "first start: database migrations, about a minute" if fresh else "existing data"
        with self.step(f"Starting Label Studio on {host}:{ls_port} ({what})"):
            try:
                self.ls.start(timeout=self.args.timeout)
            except LabelStudioError as exc:
                raise DemoError(f"Label Studio did not start: {exc}") from None
        self.done(f"Label Studio {self.ls.url}   data: {_rel(ls_dir)}", t0)
        pat = self.ls.personal_access_token()
        if cached != pat:
            if cached:
                self.backend.stop()
            self._launch_backend(pat)
        t0 = time.monotonic()
        with self.step(f"Starting the {BACKEND} backend on {host}:{backend_port}"):
            self.backend.wait_ready(timeout=self.args.timeout)
        self.done(f"{BACKEND} backend {self.backend.url}   data: {_rel(self.backend.home)}", t0)

    def _launch_backend(self, pat: str) -> None:
        self.backend.extra_env.update({"LABEL_STUDIO_URL": self.ls.url, "LABEL_STUDIO_API_KEY": pat})
        self.backend.launch()

    def stop(self) -> None:
        for server in (self.backend, self.ls):
            if server is not None:
                server.stop()

    # -- Label Studio objects ------------------------------------------------------------------
    def project(self, sdk: Any) -> tuple[Any, int, bool]:
        """The demo project (found by title, else created and imported); (project, task count, created)."""
        rows = load_rows()
        found = [p for p in sdk.projects.list(page_size=100) if p.title == TITLE]
        if found:
            project = found[0]
            count = sdk.projects.get(id=project.id).task_number or 0
            if count:
                self.done(f'Project "{TITLE}" found: {count} tasks')
                return project, count, False
        else:
            project = sdk.projects.create(
                title=TITLE, label_config=LABEL_CONFIG, description=DESCRIPTION, request_options=NO_RETRY
            )
        t0 = time.monotonic()
        with self.step(f"Importing {len(rows)} texts"):
            sdk.projects.import_tasks(id=project.id, request=import_payload(rows), request_options=NO_RETRY)
        annotated = sum(r["annotated"] for r in rows)
        self.done(f'Project "{TITLE}" created: {len(rows)} tasks, {annotated} of them annotated', t0)
        return project, len(rows), True

    def connect(self, sdk: Any, project_id: int) -> Any:
        """The project's ML backend pointing at this backend: found, created, or moved here when
        a busy port made the backend start on another one than last time."""
        url = self.backend.url
        existing = sdk.ml.list(project=project_id, request_options=NO_RETRY)
        ml = next((m for m in existing if m.url == url), None)
        if ml is not None:
            message = f"ML backend #{ml.id} already connected"
        elif existing:
            old = existing[0]
            ml = sdk.ml.update(id=old.id, url=url, project=project_id, is_interactive=True, request_options=NO_RETRY)
            for hook in sdk.webhooks.list(project=str(project_id), request_options=NO_RETRY):
                if hook.url == f"{old.url.rstrip('/')}/webhook":  # the webhook LS made for the old URL
                    sdk.webhooks.update(id=hook.id, url=f"{url}/webhook", request_options=NO_RETRY)
            message = f"ML backend #{ml.id} moved from {old.url} to {url}"
        else:
            ml = sdk.ml.create(
                project=project_id,
                url=url,
                title=ML_TITLE,
                is_interactive=True,
                description="prelabel text_classifier (make demo)",
                request_options=NO_RETRY,
            )
            message = f"Connected the backend to the project (ML backend #{ml.id}, interactive)"
        # list, update and create all ran /health and /setup just now: ml.state is current
        if ml.state != "CO":
            raise DemoError(f"Label Studio reports the ML backend as {ml.state}: {ml.error_message}")
        self.done(f"{message}: {ml.model_version}")
        return ml

    def train_once(self, sdk: Any, project_id: int, ml: Any) -> tuple[str, dict | None]:
        """Train unless this backend already has a trained version for the project."""
        with self.backend.http() as http:
            trained = str(project_id) in http.get("/health").json().get("trained_projects", [])
        if trained:
            return sdk.ml.get(id=ml.id, request_options=NO_RETRY).model_version, None
        t0 = time.monotonic()
        pressed = time.time()
        with self.step("Training on the annotated tasks (Label Studio sends START_TRAINING)"):
            sdk.ml.train(id=ml.id, request_options=NO_RETRY)
            job = self.backend.wait_new_job(project_id, "train", since=pressed - 1, timeout=self.args.timeout)
        if job["status"] != "succeeded":
            raise DemoError(
                f"training job {job['id']} {job['status']}: {job.get('error')}\nsee {self.backend.log_file}"
            )
        result = job["result"]
        acc = result.get("accuracy")
        metrics = f", held-out accuracy {acc:.0%} on {result['holdout_examples']}" if acc is not None else ""
        self.done(f"Trained {result['model_version']} on {result['train_examples']} annotations{metrics}", t0)
        return result["model_version"], job

    def preannotate(self, sdk: Any, project_id: int, version: str) -> tuple[int, int]:
        """Retrieve predictions for every task; (unlabeled tasks pre-annotated, unlabeled tasks)."""
        t0 = time.monotonic()
        with self.step("Retrieving predictions for the unlabeled tasks"):
            sdk.actions.create(
                id="retrieve_tasks_predictions",
                project=project_id,
                selected_items={"all": True, "excluded": []},
                request_options=NO_RETRY,
            )
            unlabeled = [t.id for t in sdk.tasks.list(project=project_id, page_size=1000) if not t.total_annotations]
            have = {
                p.task
                for p in sdk.predictions.list(project=project_id, request_options=NO_RETRY)
                if p.model_version == version and p.result
            }
        done = sum(tid in have for tid in unlabeled)
        if done < len(unlabeled):
            raise DemoError(
                f"only {done} of {len(unlabeled)} unlabeled tasks got a prediction from {version}; "
                f"see {self.backend.log_file} and {self.ls.log_file}"
            )
        self.done(f"{done} unlabeled tasks are pre-annotated by {version}", t0)
        return done, len(unlabeled)

    # -- main ----------------------------------------------------------------------------------
    def run(self) -> int:
        self.console.print(f"[bold]prelabel demo[/]  home: {_rel(self.home)}")
        # label_studio_sdk takes seconds to import (pandas): do it while the servers start
        threading.Thread(target=importlib.import_module, args=("label_studio_sdk.client",), daemon=True).start()
        self.home.mkdir(parents=True, exist_ok=True)
        self.lock()
        self.start_servers()
        sdk = self.ls.client("pat")
        project, count, created = self.project(sdk)
        ml = self.connect(sdk, project.id)
        version, job = self.train_once(sdk, project.id, ml)
        if job is None:
            self.done(f"Already trained: {version}")
        preannotated, unlabeled = self.preannotate(sdk, project.id, version)
        setup_seconds = time.monotonic() - self.started
        state = {
            "label_studio_url": self.ls.url,
            "backend_url": self.backend.url,
            "project_id": project.id,
            "project_url": f"{self.ls.url}/projects/{project.id}/data",
            "ml_backend_id": ml.id,
            "username": USERNAME,
            "password": self.ls.password,
            "model_version": version,
            "tasks": count,
            "created_project": created,
            "trained_now": job is not None,
            "preannotated": preannotated,
            "unlabeled": unlabeled,
            "setup_seconds": round(setup_seconds, 2),
            "pid": os.getpid(),
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))
        self.summary(state)
        if self.args.no_wait:
            self.console.print("--no-wait: stopping both servers")
            return 0
        self.console.print("[bold]Ctrl-C stops Label Studio and the backend.[/]")
        return self.wait()

    def summary(self, s: dict[str, Any]) -> None:
        c = self.console
        c.print(f"\n[bold green]Ready[/] in {s['setup_seconds']:.0f} s\n")
        c.print(f"  Open        [bold]{s['project_url']}[/]")
        c.print(f"  Log in as   [bold]{s['username']}[/] / [bold]{s['password']}[/]")
        c.print(f"  Backend     {s['backend_url']}  (/health /jobs /versions /metrics), model {s['model_version']}")
        c.print(f"  Logs        {_rel(self.ls.log_file)}, {_rel(self.backend.log_file)}\n")
        c.print("[bold]What to do next[/]")
        c.print("  1. Click an unlabeled task: the sentiment is already selected (the model's prediction).")
        c.print("     Correct it if needed and Submit. Annotate a few more.")
        c.print("  2. Settings > Model > (...) > Start Training: the backend trains a new version (GET /jobs).")
        c.print("  3. In the task list select all > Actions > Retrieve Predictions: pre-annotations from the")
        c.print("     new version (Label All Tasks also asks the backend for tasks that have none yet).")
        c.print(f"  Start over: stop the demo and delete {_rel(self.home)}\n")

    def wait(self) -> int:
        while True:
            for name, server in (("Label Studio", self.ls), (BACKEND, self.backend)):
                if not server.is_running():
                    self.console.print(f"[red]{name} exited unexpectedly[/]; last lines:\n{server.log_tail()}")
                    return 1
            time.sleep(0.5)  # a supervision loop, not a readiness wait


def _cached_pat(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    token = data.get("token") if isinstance(data, dict) and data.get("username") == USERNAME else None
    return token if isinstance(token, str) and token else None


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home",
        default=os.environ.get("PRELABEL_DEMO_HOME", ".demo"),
        help="where Label Studio's and the backend's data live (default: ./.demo)",
    )
    parser.add_argument("--port", type=int, default=8080, help="Label Studio port, or the next free one (8080)")
    parser.add_argument(
        "--backend-port", type=int, default=9095, help="text_classifier port, or the next free one (9095)"
    )
    parser.add_argument("--no-wait", action="store_true", help="set everything up, print, then stop both servers")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each step (300)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(args)
    try:
        return demo.run()
    except KeyboardInterrupt:
        demo.console.print("\nstopping ...")
        return 0
    except Exception as exc:
        from prelabel.testing.harness.backendprocess import BackendProcessError
        from prelabel.testing.harness.labelstudio import LabelStudioError

        if not isinstance(exc, (DemoError, BackendProcessError, LabelStudioError)):
            raise
        demo.console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        # a second Ctrl-C (or a SIGTERM) must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if demo.ls is not None:
            demo.stop()
            demo.console.print("Label Studio and the backend are stopped.")


if __name__ == "__main__":
    sys.exit(main())
