"""Whole-project pre-annotation as a job: page through the project's tasks in Label Studio,
predict in batches, upload each batch's predictions in one request.

Unlike Label Studio's "retrieve predictions" (one synchronous /predict for every selected
task, which times out after ~100 s on a large project and then stores nothing), this never
times out: progress is visible in /jobs, it resumes (tasks that already have a prediction of
the current model version are skipped), it cancels between batches (a batch is uploaded
whole or not at all), and a task that fails is counted and listed, never fatal.

Label Studio is the slow part (listing and storing cost milliseconds per task, plus a fixed
cost per call), so pages are large, predictions are stored in chunks of up to UPLOAD_BATCH
tasks (each chunk whole or not at all), the next page downloads and up to
MAX_UPLOADS_IN_FLIGHT chunks upload while the current batch is predicted. On cancel, the
tasks already predicted are stored (whole chunks) before the job stops, so a resumed job
predicts only the rest.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prelabel.backend import Project, Task
from prelabel.jobs import JobCancelled, JobContext, prefetch
from prelabel.usage import UsageTally, counting

MAX_LISTED_FAILURES = 100
# Label Studio's task list has no page size limit unless TASK_API_PAGE_SIZE_MAX is set, and
# every page re-counts the project's tasks, annotations and predictions: fewer, larger pages.
PAGE_SIZE = 1000
UPLOAD_BATCH = 500  # predictions per import call: Label Studio's per-call cost is ~a batch of 50
MAX_UPLOADS_IN_FLIGHT = 2
# Only the fields the job reads: Label Studio computes the others per task (3x slower pages).
# (fields="all" is still needed: without it Label Studio leaves predictions_model_versions empty.)
TASK_FIELDS = "id,data,predictions_model_versions,is_labeled,total_annotations"


def _version_in(versions: Any, version: str) -> bool:
    """Label Studio lists a task's prediction versions as a comma-separated string."""
    if not versions:
        return False
    items = versions if isinstance(versions, list) else str(versions).split(",")
    return version in (v.strip() for v in items)


class PredictJob:
    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.runtime = ctx.runtime
        self.pid = ctx.project
        self.client = self.runtime.label_studio(self.pid)
        self.batch_size = int(ctx.params.get("batch_size") or self.runtime.backend.limits.max_batch_size)
        self.only_unlabeled = bool(ctx.params.get("only_unlabeled"))
        self.counts = {"tasks": 0, "predicted": 0, "empty": 0, "skipped_existing": 0, "skipped_labeled": 0, "failed": 0}
        # an explicit batch_size is also the upload unit (what is stored when a cancel lands);
        # by default predictions go up in UPLOAD_BATCH chunks
        default_upload = self.batch_size if ctx.params.get("batch_size") else max(self.batch_size, UPLOAD_BATCH)
        self.upload_batch = max(1, int(ctx.params.get("upload_batch") or default_upload))
        self.failures: list[dict[str, Any]] = []
        self.uploader = ThreadPoolExecutor(max_workers=MAX_UPLOADS_IN_FLIGHT, thread_name_prefix="prelabel-upload")
        self.pending: list[Future] = []
        self.ready: list[dict[str, Any]] = []  # predicted, not yet handed to an upload
        self.upload_sizes: list[int] = []
        self.usage = UsageTally()  # tokens and calls of backends that report them (LLMs)

    def run(self) -> dict[str, Any]:
        info = self.client.projects.get(id=int(self.pid))
        self.runtime.remember_project(self.pid, info.label_config)
        project = self.runtime.project(self.pid)
        backend = self.runtime.backend
        if not backend.supported_controls(project.config):
            raise ValueError(
                f"the {backend.backend_id} backend supports none of this project's controls "
                f"({project.config.describe()})"
            )
        version = project.trained_version or backend.model_version()
        total = int(getattr(info, "task_number", 0) or 0)
        self.ctx.progress(0.0, f"{total} tasks; model version {version}")
        try:
            try:
                self._predict_all(project, version, total)
            except JobCancelled:
                self._upload(final=True)  # what was predicted is kept: a resumed job skips it
                raise
            self._upload(final=True)
        finally:
            try:
                self._wait_uploads(0)  # done, failed or cancelled: no upload is left half-way
            finally:
                self.uploader.shutdown(wait=True)
        self.ctx.progress(1.0, self._message())
        return {
            **self.counts,
            "model_version": version,
            "failures": self.failures,
            "upload_sizes": self.upload_sizes,
            **({"usage": self.usage.as_dict()} if self.usage.answers else {}),
        }

    def _predict_all(self, project: Project, version: str, total: int) -> None:
        pages = self.client.tasks.list(project=int(self.pid), page_size=PAGE_SIZE, fields="all", include=TASK_FIELDS)
        batch: list[Task] = []
        counts = self.counts
        # Label Studio said how many tasks the project has; a listing that goes on well past
        # that (a host a /setup named that never ends its pages) is stopped, not followed forever
        limit = total + 2 * PAGE_SIZE
        for raw in prefetch(pages, depth=2 * PAGE_SIZE):
            counts["tasks"] += 1
            if counts["tasks"] > limit:
                raise RuntimeError(
                    f"Label Studio listed more than {limit} tasks for a project of {total}: "
                    "stopped (is the Label Studio URL right?)"
                )
            if counts["tasks"] % PAGE_SIZE == 0:  # a cancel is seen even while every task is skipped
                self.ctx.progress(counts["tasks"] / max(total, counts["tasks"]), self._message())
            if _version_in(getattr(raw, "predictions_model_versions", None), version):
                counts["skipped_existing"] += 1
                continue
            if self.only_unlabeled and (getattr(raw, "is_labeled", False) or (raw.total_annotations or 0) > 0):
                counts["skipped_labeled"] += 1
                continue
            batch.append(Task(raw.id, dict(raw.data or {})))
            if len(batch) >= self.batch_size:
                self._flush(batch, project, version)
                batch = []
                # raises JobCancelled when asked to stop; run() then waits for the upload in flight
                self.ctx.progress(counts["tasks"] / max(total, counts["tasks"]), self._message())
        if batch:
            self._flush(batch, project, version)

    def _flush(self, batch: list[Task], project: Project, version: str) -> None:
        with counting(self.usage):
            results = asyncio.run(self.runtime.predict(batch, project, {}, logger=self.ctx.log))
        uploads = []
        for task, item in zip(batch, results, strict=True):
            if "error" in item:
                self.counts["failed"] += 1
                if len(self.failures) < MAX_LISTED_FAILURES:
                    self.failures.append({"task": task.id, "error": item["error"]})
                continue
            self.counts["predicted"] += 1
            if not item["result"]:
                self.counts["empty"] += 1
                if not self.runtime.core.store_empty_predictions:
                    continue  # nothing to show: no empty tab on the task (a later run predicts it again)
            uploads.append(
                {"task": task.id, "result": item["result"], "score": item["score"], "model_version": version}
            )
        self.ready.extend(uploads)
        self._upload(final=False)

    def _upload(self, final: bool) -> None:
        """Hand full chunks (and with ``final`` the rest) to the uploader; at most
        MAX_UPLOADS_IN_FLIGHT run at once, overlapping the next batches' predictions."""
        while len(self.ready) >= self.upload_batch or (final and self.ready):
            chunk, self.ready = self.ready[: self.upload_batch], self.ready[self.upload_batch :]
            self._wait_uploads(MAX_UPLOADS_IN_FLIGHT - 1)
            self.upload_sizes.append(len(chunk))
            self.pending.append(
                self.uploader.submit(self.client.projects.import_predictions, id=int(self.pid), request=chunk)
            )

    def _wait_uploads(self, keep: int) -> None:
        """Wait until at most ``keep`` uploads are in flight; an upload error fails the job."""
        while len(self.pending) > keep:
            self.pending.pop(0).result()

    def _message(self) -> str:
        c = self.counts
        return (
            f"{c['tasks']} seen, {c['predicted']} predicted, {c['failed']} failed, "
            f"{c['skipped_existing']} already had this version"
        )


def run_predict_job(ctx: JobContext) -> dict[str, Any]:
    """The ``predict`` job. Params: ``only_unlabeled`` (bool), ``batch_size`` (tasks predicted
    between progress reports and cancel checks; default the backend's ``max_batch_size``),
    ``upload_batch`` (predictions per Label Studio import call; default ``batch_size`` when
    that is given, else UPLOAD_BATCH). ``dry_run`` is handled before this by
    :func:`prelabel.dryrun.run_predict_or_dry_run`, the job kind's entry point."""
    return PredictJob(ctx).run()
