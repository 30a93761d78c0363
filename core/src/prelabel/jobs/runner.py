"""Running jobs: ``execute`` (one job, start to recorded outcome), the in-process runner,
and the reaper of jobs whose process died."""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from prelabel.jobs.context import JobContext
from prelabel.jobs.store import (
    _RUNNING,
    _RUNNING_LOCK,
    ACTIVE,
    CANCELLED,
    FAILED,
    HEARTBEAT_SECONDS,
    QUEUED,
    REAP_EVERY_SECONDS,
    RUNNING,
    STALE_AFTER_SECONDS,
    SUCCEEDED,
    Job,
    JobCancelled,
    JobConflict,
    JobStore,
    _owner,
    running_here,
)
from prelabel.redact import redact
from prelabel.state import StateUnavailable

if TYPE_CHECKING:
    from prelabel.runtime import Runtime

log = logging.getLogger("prelabel.jobs")

FINAL_WRITE_RETRY_SECONDS = 600.0  # how long a finished job retries writing its outcome


class Reaper:
    """Reaps, while the process lives, jobs whose process died or whose final write was lost,
    and frees the project locks they held (else one lost write would 409 every later
    prediction job of the project). Other hosts' jobs are judged by heartbeat only after the
    state store has been reachable for a whole staleness period, so an outage that delayed
    everyone's heartbeats does not reap live jobs."""

    def __init__(self, runtime: Runtime, include_queued: bool, every: float = REAP_EVERY_SECONDS):
        self.runtime = runtime
        self.include_queued = include_queued
        self.every = every
        self._stop = threading.Event()
        self._reachable_since: float | None = None
        self._thread = threading.Thread(target=self._loop, name="prelabel-reaper", daemon=True)

    def start(self) -> Reaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def reap_once(self) -> list[Job]:
        now = time.time()
        try:
            self.runtime.jobs.list()
        except StateUnavailable:
            self._reachable_since = None
            return []
        if self._reachable_since is None:
            self._reachable_since = now
        foreign = now - self._reachable_since >= STALE_AFTER_SECONDS
        marked = self.runtime.jobs.mark_orphans_interrupted(self.include_queued, running_here(), foreign)
        for job in marked:
            log.warning("job %s (%s, project %s) reaped: %s", job.id, job.kind, job.project, job.error)
            release_lock(self.runtime, job)
        return marked

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.reap_once()
            except Exception:  # the reaper must outlive any one failure
                log.warning("job reaper pass failed", exc_info=True)


def execute(job_id: str, runtime: Runtime) -> Job:
    """Run one job to completion in this process; used by every runner."""
    store = runtime.jobs
    job = store.get(job_id)
    if job is None:
        raise KeyError(f"no job {job_id}")
    if job.status != QUEUED:
        log.warning("job %s is %s, not queued; not running it again", job_id, job.status)
        return job
    if job.cancel_requested:
        return store.update(job_id, status=CANCELLED, finished_at=time.time())
    handler = runtime.job_handlers.get(job.kind)
    if handler is None:
        return store.update(job_id, status=FAILED, error=f"unknown job kind {job.kind!r}", finished_at=time.time())
    now = time.time()
    with _RUNNING_LOCK:
        _RUNNING.add(job_id)
    try:
        job = store.update(job_id, status=RUNNING, started_at=now, heartbeat_at=now, owner=_owner())
        ctx = JobContext(job, store, runtime)
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(store, job_id, stop), daemon=True)
        beat.start()
        try:
            result = handler(ctx)
        except JobCancelled:
            changes = dict(status=CANCELLED, finished_at=time.time(), message="cancelled")
        except Exception as exc:
            log.error("job %s (%s) failed: %s\n%s", job_id, job.kind, exc, traceback.format_exc())
            changes = dict(status=FAILED, error=redact(f"{type(exc).__name__}: {exc}"), finished_at=time.time())
        else:
            changes = dict(status=SUCCEEDED, progress=1.0, result=result or {}, finished_at=time.time())
        finally:
            stop.set()
        job = _write_outcome(store, job, changes)
        # a /train body's tasks are not kept once trained on
        _retrying(lambda: store.drop_tasks(job), f"dropping the tasks of job {job_id}")
        _retrying(lambda: release_lock(runtime, job), f"releasing the lock of job {job_id}")
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(job_id)
    log.info("job %s (%s, project %s) %s", job.id, job.kind, job.project, job.status)
    return job


def _write_outcome(store: JobStore, job: Job, changes: dict[str, Any]) -> Job:
    """Record how a job ended, retrying while the state store is unavailable (a Redis
    restart must not leave the job "running" forever). If it stays down past
    FINAL_WRITE_RETRY_SECONDS the reaper marks the job interrupted once the store is back."""
    written = _retrying(lambda: store.update(job.id, **changes), f"recording the outcome of job {job.id}")
    if written is not None:
        return written
    for key, value in changes.items():
        setattr(job, key, value)
    return job


def _retrying(write: Callable[[], Any], what: str) -> Any:
    deadline = FINAL_WRITE_RETRY_SECONDS
    give_up = time.monotonic() + deadline
    delay = 0.2
    while True:
        try:
            return write()
        except StateUnavailable as exc:
            if time.monotonic() > give_up:
                log.error("gave up %s after %.0fs: %s", what, deadline, exc)
                return None
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def release_lock(runtime: Runtime, job: Job) -> None:
    """Free the exclusive lock a job holds, if it still holds it."""
    key = job.params.get("_lock")
    if key:
        st = runtime.project_state(job.project)
        if st.get(key) == job.id:
            st.delete(key)


def _heartbeat(store: JobStore, job_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            store.update(job_id, heartbeat_at=time.time())
        except Exception:  # the store may be briefly unavailable; the next beat retries
            log.debug("heartbeat for %s failed", job_id, exc_info=True)


class JobRunner(ABC):
    """Queues jobs for execution; ``submit`` returns at once."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def submit(
        self,
        kind: str,
        project: str,
        params: dict[str, Any] | None = None,
        coalesce: bool = False,
        exclusive: bool = False,
    ) -> Job:
        """Create and enqueue a job. With ``coalesce``, an already queued job of the same kind
        and project is returned instead of a second one (e.g. several START_TRAINING clicks).
        With ``exclusive``, JobConflict is raised while another job of the kind is active."""
        if coalesce:
            for existing in self.runtime.jobs.list(project=str(project), kind=kind):
                if existing.status == QUEUED and not existing.cancel_requested:
                    return existing
        job = self.create(kind, project, params, exclusive)
        self.enqueue(job)
        self.runtime.jobs.prune()
        return job

    def create(self, kind: str, project: str, params: dict[str, Any] | None = None, exclusive: bool = False) -> Job:
        """Record a queued job without enqueueing it (``prelabel predict`` runs it itself)."""
        store = self.runtime.jobs
        if kind not in self.runtime.job_handlers:
            raise ValueError(f"unknown job kind {kind!r}; known: {sorted(self.runtime.job_handlers)}")
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, project=str(project), params=dict(params or {}))
        store.keep_tasks(job)
        if exclusive:
            job.params["_lock"] = self._claim(kind, str(project), job.id)
        store.save(job)
        return job

    def _claim(self, kind: str, project: str, job_id: str) -> str:
        """Take the project's lock for ``kind`` (shared by every process through state)."""
        st = self.runtime.project_state(project)
        key = f"active_{kind}_job"
        if not st.store.set_if_absent(st.ns, key, job_id):
            holder = self.runtime.jobs.get(st.get(key) or "")
            if holder is not None and holder.status in ACTIVE:
                raise JobConflict(holder)
            st.set(key, job_id)  # the previous holder finished or died: take over
        return key

    @abstractmethod
    def enqueue(self, job: Job) -> None: ...

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop: a queued one is cancelled at once, a running one at its next
        progress report (jobs report between units of work, so nothing is left half-done)."""
        job = self.runtime.jobs.update(job_id, cancel_requested=True)
        if job.status == QUEUED:
            job = self.runtime.jobs.update(job_id, status=CANCELLED, finished_at=time.time())
            release_lock(self.runtime, job)
        return job

    def shutdown(self, wait: bool = False) -> None:
        pass


class InProcessRunner(JobRunner):
    """One worker thread per job kind inside the serving process."""

    def __init__(self, runtime: Runtime):
        super().__init__(runtime)
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def enqueue(self, job: Job) -> None:
        with self._lock:
            executor = self._executors.get(job.kind)
            if executor is None:
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"prelabel-{job.kind}")
                self._executors[job.kind] = executor
        executor.submit(self._run, job.id)

    def _run(self, job_id: str) -> None:
        try:
            execute(job_id, self.runtime)
        except Exception:  # execute records failures; this guards the worker thread itself
            log.exception("job %s crashed the runner", job_id)

    def shutdown(self, wait: bool = False) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=wait, cancel_futures=not wait)
