"""What a job function gets: ``JobContext`` (its record, params, progress, cancellation,
the project's annotations and media)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prelabel.jobs.store import BODY_TASKS, Job, JobCancelled, JobStore

if TYPE_CHECKING:
    from prelabel.labelconfig import ParsedConfig
    from prelabel.media import MediaFetcher
    from prelabel.runtime import Runtime

log = logging.getLogger("prelabel.jobs")


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


JobFunction = Callable[[JobContext], dict]
