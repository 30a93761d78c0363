"""Jobs: training and batch work that must never run inside a request.

A job is a JSON record in the state store (so every process and replica sees it) and is run
by a runner: ``InProcessRunner`` (threads in the server process, the default) or an RQ runner
on Redis (``prelabel worker``). A job that was queued or running in a process that died shows
as ``interrupted`` afterwards, never as silently gone.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from prelabel.paths import InvalidIdentifier, safe_id
from prelabel.redact import redact
from prelabel.state import StateStore, StateUnavailable

if TYPE_CHECKING:
    from prelabel.labelconfig import ParsedConfig
    from prelabel.media import MediaFetcher
    from prelabel.runtime import Runtime

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "succeeded", "failed", "cancelled", "interrupted",
)
ACTIVE = {QUEUED, RUNNING}
FINISHED = {SUCCEEDED, FAILED, CANCELLED, INTERRUPTED}
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0
JOBS_NS = "jobs"
# A job's annotated tasks from a /train body (megabytes), kept beside its record, not in it:
# every update of the record (progress, heartbeat) and every listing would carry them again.
JOB_TASKS_NS = "job_tasks"
BODY_TASKS = "_body_tasks"  # the params key that says how many there are
REAP_EVERY_SECONDS = 15.0
FINAL_WRITE_RETRY_SECONDS = 600.0  # how long a finished job retries writing its outcome

# Jobs this process is executing right now: the reaper never touches these, and marks any
# other job "running" under this process's name as interrupted (its final write was lost).
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


def running_here() -> set[str]:
    with _RUNNING_LOCK:
        return set(_RUNNING)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Job:
    """The record of one job, as ``GET /jobs/{id}`` shows it."""

    id: str
    kind: str
    project: str
    status: str = QUEUED
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    result: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    owner: str = field(default_factory=_owner)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies params, 9 s for a /train body of 200,000
        # tasks; the state store serializes the record, so a copy of the top level will do
        raw = {name: getattr(self, name) for name in _JOB_FIELDS}
        raw["params"] = dict(self.params)
        if self.result is not None:
            raw["result"] = dict(self.result)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


_JOB_FIELDS = tuple(Job.__dataclass_fields__)


class JobCancelled(Exception):
    """Raised inside a job when cancellation was requested."""


class JobConflict(Exception):
    """An exclusive job of this kind is already active for the project."""

    def __init__(self, job: Job):
        super().__init__(f"a {job.kind} job ({job.id}) is already {job.status} for project {job.project}")
        self.job = job


class JobStore:
    """Jobs kept in the state store under the ``jobs`` namespace."""

    def __init__(self, state: StateStore, keep: int = 500):
        self.state = state
        self.keep = keep
        self._lock = threading.Lock()

    def save(self, job: Job) -> None:
        self.state.set(JOBS_NS, job.id, job.to_dict())

    def keep_tasks(self, job: Job) -> None:
        """Move a job's ``tasks`` param (a /train body's annotated tasks) beside its record;
        the record keeps their count under BODY_TASKS. Before the job is first saved."""
        tasks = job.params.get("tasks")
        if isinstance(tasks, list):
            # each task as its JSON text: orjson writes them many times faster than the store's
            # json would, and reading them back is many short calls, not one that holds the GIL
            # (and the event loop) for the whole body
            self.state.set(JOB_TASKS_NS, job.id, [orjson.dumps(task).decode() for task in tasks])
            job.params = {k: v for k, v in job.params.items() if k != "tasks"}
            job.params[BODY_TASKS] = len(tasks)

    def tasks_of(self, job: Job) -> list[dict] | None:
        """The annotated tasks kept for a job by keep_tasks, or None."""
        if BODY_TASKS not in job.params:
            return None
        tasks = self.state.get(JOB_TASKS_NS, job.id)
        if tasks is None:
            raise RuntimeError(f"job {job.id}: the {job.params[BODY_TASKS]} annotated tasks of its /train body "
                               "are no longer stored (the job already ran); send them again")
        return [orjson.loads(task) for task in tasks]

    def drop_tasks(self, job: Job) -> None:
        if BODY_TASKS in job.params:
            self.state.delete(JOB_TASKS_NS, job.id)

    def get(self, job_id: str) -> Job | None:
        try:
            safe_id(job_id, "job id")
        except InvalidIdentifier:
            return None  # not an id this store ever made (a 404, not a key lookup)
        raw = self.state.get(JOBS_NS, job_id)
        return Job.from_dict(raw) if raw else None

    def list(self, project: str | None = None, kind: str | None = None) -> list[Job]:
        jobs = []
        for key, value in self.state.items(JOBS_NS).items():
            try:
                jobs.append(Job.from_dict(value))
            except (TypeError, ValueError, AttributeError):  # one bad record must not hide the others
                log.error("job record %r in the state store is unreadable; skipped", key)
        jobs = [j for j in jobs if (project is None or j.project == project) and (kind is None or j.kind == kind)]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def update(self, job_id: str, **changes: Any) -> Job:
        with self._lock:
            job = self.get(job_id)
            if job is None:
                raise KeyError(job_id)
            for key, value in changes.items():
                setattr(job, key, value)
            self.save(job)
            return job

    def prune(self) -> None:
        jobs = self.list()
        finished = [j for j in jobs if j.status in FINISHED]
        for job in finished[self.keep:]:
            self.drop_tasks(job)
            self.state.delete(JOBS_NS, job.id)

    def mark_orphans_interrupted(self, include_queued: bool = True, running: set[str] | None = None,
                                 foreign: bool = True) -> list[Job]:
        """Mark running (and, for in-process runners, queued) jobs whose process is gone as
        ``interrupted``. At start (``running`` is None) every active job of this process's name
        is an orphan of an earlier process with the same pid (a container's pid 1). While the
        process lives (the reaper passes ``running``), a job "running" under this process's
        name that it is not executing lost its final write (the state store was down when it
        ended). ``foreign``: also judge other hosts' jobs by their heartbeat."""
        host = socket.gethostname()
        now = time.time()
        marked = []
        for job in self.list():
            if job.status not in ACTIVE:
                continue
            owner_host, _, pid = job.owner.rpartition(":")
            own = owner_host == host and pid == str(os.getpid())
            reason = f"the process running this job ({job.owner}) stopped before it finished"
            if own and running is not None:
                if job.status == QUEUED or job.id in running:
                    continue
                dead, reason = True, ("the job ended while the state store was unavailable, and its "
                                      "outcome could not be recorded; run it again")
            elif job.status == QUEUED and not include_queued:
                continue
            elif own:
                dead = True
            elif owner_host == host and pid.isdigit():
                dead = not _pid_alive(int(pid))
            elif foreign:
                last = job.heartbeat_at or job.started_at or job.created_at
                dead = now - last > STALE_AFTER_SECONDS
            else:
                continue
            if dead:
                job = self.update(job.id, status=INTERRUPTED, finished_at=now, error=reason)
                self.drop_tasks(job)
                marked.append(job)
        return marked


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


class JobContext:
    """What a job function gets: its record, progress reporting, cancellation, runtime."""

    def __init__(self, job: Job, store: JobStore, runtime: Runtime, workdir: Path | None = None):
        self.job = job
        self.store = store
        self.runtime = runtime
        self.workdir = workdir
        self.log = logging.LoggerAdapter(log, {"job_id": job.id, "project": job.project})
        self._params: dict[str, Any] | None = None

    @property
    def project(self) -> str:
        return self.job.project

    @property
    def params(self) -> dict[str, Any]:
        """The job's params; a /train body's annotated tasks under ``tasks``, as sent."""
        if self._params is None:
            tasks = self.store.tasks_of(self.job)
            params = {k: v for k, v in self.job.params.items() if k != BODY_TASKS}
            if tasks is not None:
                params["tasks"] = tasks
            self._params = params
        return self._params

    @property
    def config(self) -> ParsedConfig | None:
        """The project's label config as /setup or the webhook stored it."""
        return self.runtime.config_of(self.project)

    def annotated_tasks(self) -> list[dict]:
        """The project's annotated tasks: those the legacy /train call carried, else the
        project's annotated tasks fetched from Label Studio (webhooks are only a trigger)."""
        if self.params.get("tasks"):
            return list(self.params["tasks"])
        from prelabel import lsclient

        return lsclient.annotated_tasks(self.runtime.label_studio(self.project), self.project)

    def annotations(self) -> list[tuple[dict, list[dict]]]:
        """(task, its annotations that count) for each annotated task: not cancelled, with a
        result, ground truth first; tasks left with none are skipped."""
        from prelabel.lsclient import usable_annotations

        pairs = ((task, usable_annotations(task)) for task in self.annotated_tasks())
        return [(task, anns) for task, anns in pairs if anns]

    @property
    def media(self) -> MediaFetcher:
        """A media fetcher for this project's Label Studio."""
        st = self.runtime.project_state(self.project)
        return self.runtime.media.bind(st.get("hostname"), st.get("access_token"))

    @staticmethod
    def prefetch(iterable: Iterable[Any], depth: int) -> Iterator[Any]:
        """Iterate ``iterable`` (downloads, say) in a background thread, ``depth`` items ahead
        of the loop that uses them (a model's forward passes)."""
        return prefetch(iterable, depth)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0..1) and a short message; raises JobCancelled if cancelled."""
        fraction = max(0.0, min(1.0, float(fraction)))
        job = self.store.update(self.job.id, progress=fraction, message=message, heartbeat_at=time.time())
        self.job = job
        if job.cancel_requested:
            raise JobCancelled(f"job {job.id} was cancelled")

    def check_cancelled(self) -> None:
        job = self.store.get(self.job.id)
        if job is not None and job.cancel_requested:
            raise JobCancelled(f"job {self.job.id} was cancelled")


JobFunction = Callable[[JobContext], dict]


def prefetch(iterable: Iterable[Any], depth: int) -> Iterator[Any]:
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in iterable:
                items.put(item)
        except BaseException as exc:  # handed to the consumer
            items.put(exc)
        items.put(done)

    threading.Thread(target=produce, name="prelabel-prefetch", daemon=True).start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


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

    def submit(self, kind: str, project: str, params: dict[str, Any] | None = None, coalesce: bool = False,
               exclusive: bool = False) -> Job:
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
