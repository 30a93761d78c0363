"""The prediction pipeline: from a request's tasks to exactly one Label Studio result each.

Checks each task's data, splits tasks into batches of ``max_batch_size``, runs the backend
(sync backends in a worker thread, at most ``max_concurrency`` at once per process, async
ones on the loop),
isolates a failing task from its batch, keeps only regions and labels that exist in the
project's config, and stamps every prediction with the project's model version.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from prelabel.backend import PredictContext, Prediction, Task, TaskError
from prelabel.redact import redact

if TYPE_CHECKING:
    from prelabel.runtime import Runtime

log = logging.getLogger("prelabel.predict")


def _normalize(output: Any) -> tuple[list[dict], float | None]:
    if output is None:
        return [], None
    if isinstance(output, Prediction):
        return list(output.result), output.score
    if isinstance(output, dict) and "result" in output:
        return list(output.get("result") or []), output.get("score")
    if isinstance(output, (list, tuple)):
        return list(output), None
    raise TypeError(f"predict returned {type(output).__name__} for a task; return a Prediction, a list of "
                    "regions, None, or a TaskError")


def dropped_regions_message(problems: list[str]) -> str:
    """One line for a task's ``error``: what sanitize dropped, each distinct problem once."""
    counts = Counter(problems)
    shown = [f"{problem} (x{n})" if n > 1 else problem for problem, n in list(counts.items())[:10]]
    more = f"; and {len(counts) - 10} more" if len(counts) > 10 else ""
    return (f"dropped {len(problems)} region{'s' if len(problems) > 1 else ''} that the project's label config "
            f"does not have: {'; '.join(shown)}{more}")


def _mean_score(result: list[dict]) -> float | None:
    scores = [r["score"] for r in result if isinstance(r, dict) and isinstance(r.get("score"), (int, float))]
    return sum(scores) / len(scores) if scores else None


class Predictor:
    """Runs a runtime's backend over tasks; one instance per process."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.backend = runtime.backend
        self.is_async = inspect.iscoroutinefunction(self.backend.predict)
        # A thread semaphore, not an anyio limiter: the server's loop and batch jobs (which run
        # their own loop in a job thread) must share one bound on the model.
        self.model_slots = threading.BoundedSemaphore(max(1, self.backend.max_concurrency))
        # ...and a per-loop limiter, so waiting requests queue on the loop rather than as
        # dozens of blocked threads fighting for the GIL.
        self._limiters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _limiter(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(max(1, self.backend.max_concurrency))
        return limiter

    def _locked_predict(self, tasks: list[Task], ctx: PredictContext) -> Sequence[Any]:
        with self.model_slots:
            return self.backend.predict(tasks, ctx)

    async def _call(self, tasks: list[Task], ctx: PredictContext) -> Sequence[Any]:
        if self.is_async:
            return await self.backend.predict(tasks, ctx)
        return await anyio.to_thread.run_sync(self._locked_predict, tasks, ctx, limiter=self._limiter())

    async def _run_batch(self, tasks: list[Task], ctx: PredictContext) -> list[Any]:
        """Outputs for one batch; a batch that raises is retried task by task."""
        started = time.perf_counter()
        try:
            outputs = list(await self._call(tasks, ctx))
        except Exception as exc:
            if len(tasks) == 1:
                return [exc]
            ctx.log.warning("batch of %d tasks failed (%s: %s); retrying one task at a time",
                            len(tasks), type(exc).__name__, exc)
            results: list[Any] = []
            for task in tasks:
                results.extend(await self._run_batch([task], ctx))
            return results
        finally:
            self.runtime.metrics.batch_seconds.observe(time.perf_counter() - started)
        if len(outputs) != len(tasks):
            msg = (f"{type(self.backend).__name__}.predict returned {len(outputs)} results for {len(tasks)} tasks: "
                   "return one per task, empty if none")
            ctx.log.error(msg)
            outputs = (outputs + [TaskError(msg)] * len(tasks))[: len(tasks)]
        return outputs

    async def predict(self, tasks: list[Task], ctx: PredictContext) -> list[dict]:
        """One Label Studio prediction dict per task, in order, never raising for a task."""
        version = ctx.model_version
        controls = self.backend.supported_controls(ctx.config)
        needed = sorted({o.data_key for c in controls for o in c.objects
                         if o.data_key and o.tag in self.backend.object_tags})
        outputs: list[Any] = [None] * len(tasks)
        runnable: list[int] = []
        for i, task in enumerate(tasks):
            missing = [k for k in needed if k not in task.data]
            if missing:
                outputs[i] = TaskError(
                    f"task {task.id} has no data key {', '.join(repr(k) for k in missing)} that the label config "
                    f"reads (its data keys: {sorted(task.data)})")
            else:
                runnable.append(i)
        size = self.backend.max_batch_size
        batches = [runnable[j:j + size] for j in range(0, len(runnable), size)]
        if self.is_async:
            done = await asyncio.gather(*(self._run_batch([tasks[i] for i in b], ctx) for b in batches))
        else:
            done = [await self._run_batch([tasks[i] for i in b], ctx) for b in batches]
        for batch, outs in zip(batches, done, strict=True):
            for i, out in zip(batch, outs, strict=True):
                outputs[i] = out

        metrics = self.runtime.metrics
        results = []
        for task, out in zip(tasks, outputs, strict=True):
            item: dict[str, Any]
            if isinstance(out, BaseException):
                reason = "task_error" if isinstance(out, TaskError) else type(out).__name__
                message = redact(str(out) or type(out).__name__)
                ctx.log.error("task %s failed: %s", task.id, message,
                              exc_info=None if isinstance(out, TaskError) else out)
                metrics.task_failures.labels(reason=reason).inc()
                item = {"result": [], "score": None, "model_version": version, "error": message}
            else:
                try:
                    result, score = _normalize(out)
                except TypeError as exc:
                    ctx.log.error("task %s: %s", task.id, exc)
                    metrics.task_failures.labels(reason="bad_output").inc()
                    results.append({"result": [], "score": None, "model_version": version, "error": str(exc)})
                    continue
                result, problems = ctx.config.sanitize(result)
                for problem in problems:
                    ctx.log.warning("task %s: dropped a region: %s", task.id, problem)
                if score is None:
                    score = _mean_score(result)
                item = {"result": result, "score": score, "model_version": version}
                if problems and self.backend.report_dropped_regions:
                    item["error"] = dropped_regions_message(problems)
            results.append(item)
        metrics.tasks.inc(len(tasks))
        return results
