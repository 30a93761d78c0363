"""Run ``prelabel serve <backend>`` as a real process on loopback (end-to-end tests, ``make demo``).

:class:`BackendProcess` starts the server with a clean environment (``PRELABEL_HOME`` of its
own; no stray ``LABEL_STUDIO_*``, ``BASIC_AUTH_*`` or ``REDIS_URL`` from the caller's shell),
waits until ``GET /health`` answers 200 (the model is loaded), and stops the process group
on :meth:`stop`. :meth:`wait_job` polls ``/jobs/{id}`` until a job has finished.

Example::

    with BackendProcess("text_classifier", home=tmp_path / "home",
                        env={"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": pat}) as backend:
        httpx.get(f"{backend.url}/health")
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from prelabel.testing.harness.labelstudio import _parent_death_signal, _port_in_use, describe_tail, free_port, read_log

__all__ = ["BackendProcess", "BackendProcessError", "prelabel_command"]

#: Variables of the caller's environment that would change the backend silently.
_DROPPED_PREFIXES = ("LABEL_STUDIO_", "HEARTEX_", "BASIC_AUTH_", "TEXT_CLASSIFIER_", "PROMETHEUS_MULTIPROC")
_DROPPED = {
    "PRELABEL_HOME",
    "REDIS_URL",
    "TRAIN_EVERY_N",
    "BIND_HOST",
    "BIND_PORT",
    "WORKER_COUNT",
    "LOCAL_FILES_DOCUMENT_ROOT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
}
FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


class BackendProcessError(RuntimeError):
    """The backend did not start, or a job did not finish in time."""


def prelabel_command() -> list[str]:
    """``prelabel`` next to this interpreter, else ``python -m prelabel.cli``."""
    script = Path(sys.executable).with_name("prelabel")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "prelabel.cli"]


class BackendProcess:
    """``prelabel serve BACKEND --host HOST --port PORT`` as a child process.

    Args:
        backend: plugin name (``text_classifier``) or ``module:Class``.
        home: ``PRELABEL_HOME`` (state, models, media cache); created if missing.
        port: TCP port; ``None`` picks a free one (and retries another if it is lost to a race).
        host: interface; keep it on loopback.
        env: more environment variables (``LABEL_STUDIO_URL``, ``BASIC_AUTH_USER``...).
        log_file: where the server's output goes (appended); default ``<home>/backend.log``.
        auth: (user, password) for the readiness probe and :meth:`http`, when Basic auth is on.
            Taken from ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` in ``env`` when not given.
    """

    def __init__(
        self,
        backend: str,
        home: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.home = Path(home).resolve()
        self.host = host
        self._requested_port = port
        self.port = port or 0
        self.extra_env = dict(env or {})
        self.log_file = Path(log_file) if log_file else self.home / "backend.log"
        if auth is None and self.extra_env.get("BASIC_AUTH_USER") and self.extra_env.get("BASIC_AUTH_PASS"):
            auth = (self.extra_env["BASIC_AUTH_USER"], self.extra_env["BASIC_AUTH_PASS"])
        self.auth = auth
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._started = 0.0
        #: seconds the last :meth:`start` took until /health answered 200.
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise BackendProcessError("the backend has no port yet: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED and not k.startswith(_DROPPED_PREFIXES)}
        env.update(
            {
                "PRELABEL_HOME": str(self.home),
                "LOG_FORMAT": "text",
                "PYTHONUNBUFFERED": "1",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        return [*prelabel_command(), "serve", self.backend, "--host", self.host, "--port", str(self.port)]

    def http(self, timeout: float = 10.0) -> httpx.Client:
        """An httpx client for this backend (with its Basic auth, if any)."""
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False, auth=self.auth)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> BackendProcess:
        """Start the server and wait until ``/health`` is 200. Raises BackendProcessError
        with the tail of the log when it exits or is not ready within ``timeout`` seconds."""
        if not self.is_running():
            self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> BackendProcess:
        """Start the process and return at once (then :meth:`wait_ready`); lets a caller
        start several servers side by side."""
        if self.is_running():
            return self
        if self._requested_port is None:
            self.port = free_port(self.host)
        elif _port_in_use(self.host, self.port):
            raise BackendProcessError(f"port {self.port} is already in use")
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n=== {' '.join(self.command())}\n".encode())
            log.flush()
            self._started = time.monotonic()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )
        atexit.register(self.stop)
        return self

    def wait_ready(self, timeout: float = 60.0) -> BackendProcess:
        """Wait until ``/health`` answers 200 (``timeout`` counts from the launch). A free port
        lost to a race is replaced by another (3 attempts); a given port never is."""
        for attempt in range(1, 4):
            try:
                self._wait_ready(self._started, timeout)
            except _PortLost:
                self.stop()
                if self._requested_port is not None or attempt == 3:
                    raise BackendProcessError(
                        f"could not bind port {self.port} for {self.backend}{self._tail()}"
                    ) from None
                self.launch()
                continue
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - self._started
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_ready(self, started: float, timeout: float) -> None:
        deadline = started + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0, trust_env=False, auth=self.auth) as client:
            while True:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    if "address already in use" in self._log_text().lower():
                        raise _PortLost()
                    raise BackendProcessError(
                        f"{self.backend} exited with code {code} before it was ready{self._tail()}"
                    )
                try:
                    resp = client.get(f"{self.url}/health")
                    if resp.status_code == 200:
                        return
                    last = f"{resp.status_code} {resp.text[:200]}"
                    if resp.status_code == 503 and '"ERROR"' in resp.text:
                        raise BackendProcessError(f"{self.backend} failed to load: {last}{self._tail()}")
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                if time.monotonic() > deadline:
                    raise BackendProcessError(
                        f"{self.backend} not ready on {self.url} after {timeout:.0f} s "
                        f"(last /health: {last}){self._tail()}"
                    )
                time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``timeout`` s. Returns the exit code."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return proc.wait()

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"BackendProcess({self.backend}, port={self.port or None}, {state})"

    # -- jobs --------------------------------------------------------------------------------
    def jobs(self, project: int | str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """``GET /jobs`` (newest first)."""
        params = {k: str(v) for k, v in (("project", project), ("kind", kind)) if v is not None}
        with self.http() as client:
            resp = client.get("/jobs", params=params)
            resp.raise_for_status()
            return resp.json()["jobs"]

    def wait_job(self, job_id: str, timeout: float = 120.0, interval: float = 0.2) -> dict[str, Any]:
        """Poll ``/jobs/{id}`` until the job finished (any final status); its record."""
        deadline = time.monotonic() + timeout
        with self.http() as client:
            while True:
                resp = client.get(f"/jobs/{job_id}")
                resp.raise_for_status()
                job = resp.json()
                if job["status"] in FINISHED:
                    return job
                if time.monotonic() > deadline:
                    raise BackendProcessError(f"job {job_id} still {job['status']} after {timeout:.0f} s: {job}")
                if not self.is_running():
                    raise BackendProcessError(f"the backend exited while job {job_id} was {job['status']}")
                time.sleep(interval)

    def wait_new_job(
        self, project: int | str, kind: str = "train", since: float = 0.0, timeout: float = 120.0
    ) -> dict[str, Any]:
        """The newest ``kind`` job of ``project`` created at or after ``since`` (epoch seconds),
        once it has finished."""
        deadline = time.monotonic() + timeout
        while True:
            found = [j for j in self.jobs(project, kind) if j["created_at"] >= since]
            if found:
                return self.wait_job(found[0]["id"], timeout=max(1.0, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise BackendProcessError(f"no {kind} job for project {project} appeared within {timeout:.0f} s")
            time.sleep(0.1)

    # -- logs --------------------------------------------------------------------------------
    def _log_text(self) -> str:
        return read_log(self.log_file, self._log_offset)

    def _tail(self, lines: int = 30) -> str:
        return describe_tail(self.log_file, self._log_text(), lines)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:])


class _PortLost(Exception):
    pass
