"""The ``train`` job: run the backend's fit in a fresh workdir and promote it on success."""

from __future__ import annotations

from typing import Any

from prelabel.jobs import JobContext


def run_training(ctx: JobContext) -> dict[str, Any]:
    runtime = ctx.runtime
    store = runtime.artifacts
    if runtime.config_of(ctx.project) is None and not ctx.params.get("tasks"):
        runtime.fetch_config(ctx.project)  # trained from the API before any /setup: ask Label Studio
    workdir = store.new_workdir(ctx.project, ctx.job.id)
    ctx.workdir = workdir
    try:
        result = runtime.backend.fit(ctx) or {}
        ctx.check_cancelled()
        version = store.promote(runtime.project_state(ctx.project), workdir, ctx.job.id, result)
    except BaseException:
        store.discard(workdir)  # a failed or cancelled run never becomes a version
        raise
    ctx.log.info("project %s now serves %s", ctx.project, version)
    return {**result, "model_version": version}
