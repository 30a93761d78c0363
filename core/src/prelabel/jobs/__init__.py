"""Jobs: training and batch work that must never run inside a request.

A job is a JSON record in the state store (so every process and replica sees it) and is run
by a runner: ``InProcessRunner`` (threads in the server process, the default) or an RQ runner
on Redis (``prelabel worker``). A job that was queued or running in a process that died shows
as ``interrupted`` afterwards, never as silently gone.
"""

from prelabel.jobs.context import JobContext, JobFunction, prefetch
from prelabel.jobs.runner import FINAL_WRITE_RETRY_SECONDS, InProcessRunner, JobRunner, Reaper, execute, release_lock
from prelabel.jobs.store import (
    ACTIVE,
    BODY_TASKS,
    CANCELLED,
    FAILED,
    FINISHED,
    HEARTBEAT_SECONDS,
    INTERRUPTED,
    JOB_TASKS_NS,
    JOBS_NS,
    QUEUED,
    REAP_EVERY_SECONDS,
    RUNNING,
    STALE_AFTER_SECONDS,
    SUCCEEDED,
    Job,
    JobCancelled,
    JobConflict,
    JobStore,
    running_here,
)

__all__ = [
    "ACTIVE",
    "BODY_TASKS",
    "CANCELLED",
    "FAILED",
    "FINAL_WRITE_RETRY_SECONDS",
    "FINISHED",
    "HEARTBEAT_SECONDS",
    "INTERRUPTED",
    "InProcessRunner",
    "JOBS_NS",
    "JOB_TASKS_NS",
    "Job",
    "JobCancelled",
    "JobConflict",
    "JobContext",
    "JobFunction",
    "JobRunner",
    "JobStore",
    "QUEUED",
    "REAP_EVERY_SECONDS",
    "RUNNING",
    "Reaper",
    "STALE_AFTER_SECONDS",
    "SUCCEEDED",
    "execute",
    "prefetch",
    "release_lock",
    "running_here",
]
