"""The prediction job's dry run: what pre-annotating the whole project would cost.

It lists the project's tasks as the real job does (skipping those that already have the
current version's prediction, and labeled ones with ``only_unlabeled``), predicts a seeded
sample of ``sample`` of them (real calls: a paid API's tokens are measured, not guessed),
stores nothing in Label Studio, and scales the sample's tokens and calls per task to the
tasks the real job would predict.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from prelabel.backend import Task
from prelabel.jobs import JobContext
from prelabel.jobs.predict import PAGE_SIZE, TASK_FIELDS, _version_in, run_predict_job
from prelabel.usage import UsageTally, counting

DEFAULT_SAMPLE = 20
MAX_SAMPLE = 1000


def sample_size(params: dict[str, Any]) -> int:
    """``sample`` from the job params; ValueError that says what is allowed."""
    raw = params.get("sample", DEFAULT_SAMPLE)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_SAMPLE:
        raise ValueError(
            f"sample must be an integer from 1 to {MAX_SAMPLE} (tasks predicted by the dry run), got {raw!r}"
        )
    return raw


def run_dry_run(ctx: JobContext) -> dict[str, Any]:
    runtime, pid = ctx.runtime, ctx.project
    n = sample_size(ctx.params)
    seed = int(ctx.params.get("seed") or 0)
    only_unlabeled = bool(ctx.params.get("only_unlabeled"))
    client = runtime.label_studio(pid)
    info = client.projects.get(id=int(pid))
    runtime.remember_project(pid, info.label_config)
    project = runtime.project(pid)
    backend = runtime.backend
    if not backend.supported_controls(project.config):
        raise ValueError(
            f"the {backend.backend_id} backend supports none of this project's controls ({project.config.describe()})"
        )
    version = project.trained_version or backend.model_version()
    ctx.progress(0.0, "listing tasks")
    rng = random.Random(seed)
    sample: list[Task] = []
    seen = to_predict = 0
    for raw in client.tasks.list(project=int(pid), page_size=PAGE_SIZE, fields="all", include=TASK_FIELDS):
        seen += 1
        if _version_in(getattr(raw, "predictions_model_versions", None), version):
            continue
        if only_unlabeled and (getattr(raw, "is_labeled", False) or (raw.total_annotations or 0) > 0):
            continue
        to_predict += 1
        task = Task(raw.id, dict(raw.data or {}))
        if len(sample) < n:  # reservoir sampling: every task equally likely, one pass
            sample.append(task)
        elif (j := rng.randrange(to_predict)) < n:
            sample[j] = task
    ctx.progress(0.3, f"{to_predict} tasks to predict; predicting a sample of {len(sample)}")
    tally = UsageTally()
    with counting(tally):
        results = asyncio.run(runtime.predict(sample, project, {}, logger=ctx.log)) if sample else []
    failed = [{"task": t.id, "error": r["error"]} for t, r in zip(sample, results, strict=True) if "error" in r]
    measured = tally.answers - tally.cached  # cached answers cost nothing now, but would on a fresh process
    per_task = {
        k: (getattr(tally, k) / measured if measured else 0.0)
        for k in ("calls", "prompt_tokens", "completion_tokens", "reasoning_tokens")
    }
    estimate = {k: round(v * to_predict) for k, v in per_task.items()}
    estimate["total_tokens"] = estimate["prompt_tokens"] + estimate["completion_tokens"]
    ctx.progress(1.0, f"estimate for {to_predict} tasks: {estimate['calls']} calls, {estimate['total_tokens']} tokens")
    return {
        "dry_run": True,
        "model_version": version,
        "tasks": seen,
        "to_predict": to_predict,
        "sampled": len(sample),
        "sample_task_ids": [t.id for t in sample],
        "failed": len(failed),
        "failures": failed[:20],
        "sample_usage": tally.as_dict(),
        "per_task": {k: round(v, 2) for k, v in per_task.items()},
        "estimate": estimate,
        "estimated_from": measured,
    }


def run_predict_or_dry_run(ctx: JobContext) -> dict[str, Any]:
    """The ``predict`` job kind: with ``dry_run`` in its params, :func:`run_dry_run` (predict
    ``sample`` tasks, store nothing, estimate the whole project); else the prediction job."""
    return run_dry_run(ctx) if ctx.params.get("dry_run") else run_predict_job(ctx)
