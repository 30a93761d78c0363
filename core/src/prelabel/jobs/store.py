"""Job records and where they are kept: the state store's ``jobs`` namespace (SQLite or
Redis), with a /train body's tasks beside each record."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from prelabel.paths import InvalidIdentifier, safe_id
from prelabel.state import StateStore

if TYPE_CHECKING:
    pass

log = logging.getLogger("prelabel.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "interrupted",
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
            raise RuntimeError(
                f"job {job.id}: the {job.params[BODY_TASKS]} annotated tasks of its /train body "
                "are no longer stored (the job already ran); send them again"
            )
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
        for job in finished[self.keep :]:
            self.drop_tasks(job)
            self.state.delete(JOBS_NS, job.id)

    def mark_orphans_interrupted(
        self, include_queued: bool = True, running: set[str] | None = None, foreign: bool = True
    ) -> list[Job]:
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
                dead, reason = (
                    True,
                    (
                        "the job ended while the state store was unavailable, and its "
                        "outcome could not be recorded; run it again"
                    ),
                )
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
