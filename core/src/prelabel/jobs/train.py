"""The ``train`` job: run the backend's fit in a fresh workdir and promote it on success."""

from __future__ import annotations

from typing import Any

from prelabel.jobs import JobContext


class NotPromoted(Exception):
    """Raised by ``fit`` when the new version was evaluated and is not good enough: the job
    succeeds, its workdir is discarded, the project keeps serving its version, and the job
    result and ``/versions`` say why (``reason``) with the numbers (``result``)."""

    def __init__(self, reason: str, result: dict[str, Any]):
        super().__init__(reason)
        self.reason = reason
        self.result = result


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
    except NotPromoted as refused:
        store.discard(workdir)
        store.refuse(runtime.project_state(ctx.project), ctx.job.id, refused.reason, refused.result)
        kept = runtime.model_version(ctx.project)
        ctx.log.info("project %s keeps %s: %s", ctx.project, kept, refused.reason)
        return {**refused.result, "promoted": False, "reason": refused.reason, "model_version": kept}
    except BaseException:
        store.discard(workdir)  # a failed or cancelled run never becomes a version
        raise
    ctx.log.info("project %s now serves %s", ctx.project, version)
    return {**result, "promoted": True, "model_version": version}
