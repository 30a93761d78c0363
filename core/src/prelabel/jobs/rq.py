"""Jobs on Redis with RQ: servers enqueue, ``prelabel worker`` processes run them.

Each worker builds one Runtime (the model loads once) and runs jobs in-process with RQ's
SimpleWorker, so a job never pays a model load. The job record itself stays in prelabel's
state (Redis too), so /jobs on every replica shows the same status; ``execute`` refuses to run
a job that is not queued, so a job runs at most once even if RQ hands it out again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prelabel.jobs import Job, JobRunner, execute

if TYPE_CHECKING:
    from prelabel.runtime import Runtime

log = logging.getLogger(__name__)

JOB_TIMEOUT_SECONDS = 24 * 3600
_worker_runtime: Runtime | None = None


def queue_name(backend_id: str) -> str:
    return f"prelabel-{backend_id}"


def _connect(url: str):
    try:
        from redis import Redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('REDIS_URL is set but redis/rq are not installed: pip install "prelabel[redis]"') from exc
    return Redis.from_url(url)


class RQRunner(JobRunner):
    """Enqueues job ids on ``prelabel-<backend>``; a ``prelabel worker`` runs them."""

    def __init__(self, runtime: Runtime):
        super().__init__(runtime)
        from rq import Queue

        self.connection = _connect(runtime.core.redis_url)
        self.queue = Queue(queue_name(runtime.backend.backend_id), connection=self.connection)

    def enqueue(self, job: Job) -> None:
        self.queue.enqueue_call(
            "prelabel.jobs.rq.run_job",
            args=(job.id,),
            job_id=f"prelabel-{job.id}",
            timeout=JOB_TIMEOUT_SECONDS,
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            description=f"{job.kind} project {job.project}",
        )

    def shutdown(self, wait: bool = False) -> None:
        self.connection.close()


def run_job(job_id: str) -> str:
    """The function RQ calls in the worker."""
    if _worker_runtime is None:
        raise RuntimeError("run_job runs inside `prelabel worker`, which sets up the backend first")
    return execute(job_id, _worker_runtime).status


def work(runtime: Runtime, burst: bool = False) -> None:
    """Serve the backend's queue until stopped (SIGTERM/SIGINT finish the current job first)."""
    global _worker_runtime
    from rq import Queue, SimpleWorker

    _worker_runtime = runtime
    connection = _connect(runtime.core.redis_url)
    queue = Queue(queue_name(runtime.backend.backend_id), connection=connection)
    worker = SimpleWorker([queue], connection=connection)
    log.info("worker %s listening on %s", worker.name, queue.name)
    worker.work(burst=burst, logging_level=runtime.core.log_level.upper(), with_scheduler=False)
