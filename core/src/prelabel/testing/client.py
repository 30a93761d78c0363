"""Build a Runtime and an in-process ASGI client for a backend, for tests."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prelabel.backend import Backend
from prelabel.runtime import Runtime
from prelabel.settings import CoreSettings


@contextlib.contextmanager
def patched_env(env: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_runtime(
    backend_class: type[Backend], home: Path, settings: dict[str, Any] | None = None, **core: Any
) -> Runtime:
    """A Runtime with its state under ``home``; ``core`` overrides CoreSettings fields."""
    core_settings = CoreSettings(prelabel_home=home, log_format="text", **core)
    backend_settings = backend_class.Settings(**(settings or {}))
    return Runtime(backend_class, core_settings, backend_settings)


@contextlib.contextmanager
def serve_in_process(runtime: Runtime, wait_ready: float | None = 120.0) -> Iterator[Any]:
    """A Starlette TestClient on the app; by default waits until the model is loaded."""
    from fastapi.testclient import TestClient

    from prelabel.server.app import create_app

    app = create_app(runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        if wait_ready:
            if not runtime.ready.wait(wait_ready):
                raise TimeoutError(
                    f"{runtime.backend.backend_id} did not load within {wait_ready}s: "
                    f"{runtime.setup_error or 'still loading'}"
                )
        yield client


def wait_job(client: Any, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """Poll ``GET /jobs/{job_id}`` through an in-process client until the job has ended
    (succeeded, failed, cancelled, interrupted); its final state."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
        time.sleep(0.05)  # polling a job's state, not waiting for readiness by a fixed delay


def per_task_results(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A /predict answer as one prediction dict per task, in order, whichever shape it has.

    A batch in which some task has nothing is answered with a list per task (empty for those,
    so that Label Studio stores nothing for them) and the tasks' errors in a top-level
    ``errors`` list; this gives each such task ``{"result": [], "score": None,
    "model_version": ...}`` again, with its ``error`` where it had one."""
    results = answer["results"]
    if not any(type(item) is list for item in results):
        return results
    errors = {e["index"]: e["error"] for e in answer.get("errors", [])}
    out = []
    for i, item in enumerate(results):
        if type(item) is list and item:
            out.append(item[0])
            continue
        empty = {"result": [], "score": None, "model_version": answer.get("model_version")}
        if i in errors:
            empty["error"] = errors[i]
        out.append(empty)
    return out
