"""Whole-project pre-annotation as a job: page through the project's tasks in Label Studio,
predict in batches, upload each batch's predictions in one request.

Unlike Label Studio's "retrieve predictions" (one synchronous /predict for every selected
task, which times out after ~100 s on a large project and then stores nothing), this never
times out: progress is visible in /jobs, it resumes (tasks that already have a prediction of
the current model version are skipped), it cancels between batches (a batch is uploaded
whole or not at all), and a task that fails is counted and listed, never fatal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prelabel.backend import Task
from prelabel.jobs import JobContext

MAX_LISTED_FAILURES = 100
PAGE_SIZE = 100


def _version_in(versions: Any, version: str) -> bool:
    """Label Studio lists a task's prediction versions as a comma-separated string."""
    if not versions:
        return False
    items = versions if isinstance(versions, list) else str(versions).split(",")
    return version in (v.strip() for v in items)


def run_predict_job(ctx: JobContext) -> dict[str, Any]:
    """Params: ``only_unlabeled`` (bool), ``batch_size`` (int, default the backend's)."""
    runtime = ctx.runtime
    pid = ctx.project
    client = runtime.label_studio(pid)
    project_info = client.projects.get(id=int(pid))
    runtime.remember_project(pid, project_info.label_config)
    project = runtime.project(pid)
    if not runtime.backend.supported_controls(project.config):
        raise ValueError(f"the {runtime.backend.backend_id} backend supports none of this project's controls "
                         f"({project.config.describe()})")
    version = project.trained_version or runtime.backend.model_version()
    batch_size = int(ctx.params.get("batch_size") or runtime.backend.max_batch_size)
    only_unlabeled = bool(ctx.params.get("only_unlabeled"))
    total = int(getattr(project_info, "task_number", 0) or 0)
    counts = {"tasks": 0, "predicted": 0, "empty": 0, "skipped_existing": 0, "skipped_labeled": 0, "failed": 0}
    failures: list[dict[str, Any]] = []
    ctx.progress(0.0, f"{total} tasks; model version {version}")

    def flush(batch: list[Task]) -> None:
        results = asyncio.run(runtime.predict(batch, project, {}, logger=ctx.log))
        uploads = []
        for task, item in zip(batch, results, strict=True):
            if "error" in item:
                counts["failed"] += 1
                if len(failures) < MAX_LISTED_FAILURES:
                    failures.append({"task": task.id, "error": item["error"]})
                continue
            counts["predicted"] += 1
            counts["empty"] += not item["result"]
            uploads.append({"task": task.id, "result": item["result"], "score": item["score"],
                            "model_version": version})
        if uploads:
            client.projects.import_predictions(id=int(pid), request=uploads)

    batch: list[Task] = []
    for raw in client.tasks.list(project=int(pid), page_size=PAGE_SIZE):
        counts["tasks"] += 1
        if _version_in(getattr(raw, "predictions_model_versions", None), version):
            counts["skipped_existing"] += 1
            continue
        if only_unlabeled and (getattr(raw, "is_labeled", False) or (getattr(raw, "total_annotations", 0) or 0) > 0):
            counts["skipped_labeled"] += 1
            continue
        batch.append(Task(raw.id, dict(raw.data or {}), {"id": raw.id, "data": raw.data}))
        if len(batch) >= batch_size:
            flush(batch)
            batch = []
            ctx.progress(counts["tasks"] / max(total, counts["tasks"]), _message(counts))
    if batch:
        flush(batch)
    ctx.progress(1.0, _message(counts))
    return {**counts, "model_version": version, "failures": failures}


def _message(counts: dict[str, int]) -> str:
    return (f"{counts['tasks']} seen, {counts['predicted']} predicted, {counts['failed']} failed, "
            f"{counts['skipped_existing']} already had this version")
