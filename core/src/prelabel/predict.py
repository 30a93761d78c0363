"""The prediction pipeline: from a request's tasks to exactly one Label Studio result each.

Checks each task's data, splits tasks into batches of ``limits.max_batch_size``, runs the backend
(sync backends in a worker thread, at most ``limits.max_concurrency`` at once per process, async
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from prelabel.backend import PredictContext, Prediction, Task, TaskError, object_tags_of
from prelabel.labelconfig import ControlInfo, ParsedConfig
from prelabel.redact import redact

if TYPE_CHECKING:
    from prelabel.runtime import Runtime

log = logging.getLogger("prelabel.predict")

# anyio 4.1 renamed run_sync's ``cancellable`` to ``abandon_on_cancel``
_ABANDON = (
    "abandon_on_cancel"
    if "abandon_on_cancel" in inspect.signature(anyio.to_thread.run_sync).parameters
    else "cancellable"
)
ASYNC_BATCH_WINDOW = 32  # an async backend's batches in flight at once, at least
RESULTS_SLICE = 4096  # tasks whose results are built between two turns of the event loop
MAX_PLANS = 256  # parsed configs whose plan is kept (the parse cache keeps as many)


def _normalize(output: Any) -> tuple[list[dict], float | None]:
    if output is None:
        return [], None
    if isinstance(output, Prediction):
        return list(output.result), output.score
    if isinstance(output, dict) and "result" in output:
        return list(output.get("result") or []), output.get("score")
    if isinstance(output, (list, tuple)):
        return list(output), None
    raise TypeError(
        f"predict returned {type(output).__name__} for a task; return a Prediction, a list of "
        "regions, None, or a TaskError"
    )


def dropped_regions_message(problems: list[str]) -> str:
    """One line for a task's ``error``: what sanitize dropped, each distinct problem once."""
    counts = Counter(problems)
    shown = [f"{problem} (x{n})" if n > 1 else problem for problem, n in list(counts.items())[:10]]
    more = f"; and {len(counts) - 10} more" if len(counts) > 10 else ""
    return (
        f"dropped {len(problems)} region{'s' if len(problems) > 1 else ''} that the project's label config "
        f"does not have: {'; '.join(shown)}{more}"
    )


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
        self.model_slots = threading.BoundedSemaphore(self.backend.limits.max_concurrency)
        # ...and a per-loop limiter, so waiting requests queue on the loop rather than as
        # dozens of blocked threads fighting for the GIL.
        self._limiters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._plans: dict[int, Plan] = {}
        self.object_tags = object_tags_of(self.backend.supports)

    def _limiter(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self.backend.limits.max_concurrency)
        return limiter

    def _locked_predict(self, tasks: list[Task], ctx: PredictContext) -> Sequence[Any]:
        with self.model_slots:
            return self.backend.predict(tasks, ctx)

    async def _call(self, tasks: list[Task], ctx: PredictContext) -> Sequence[Any]:
        if self.is_async:
            return await self.backend.predict(tasks, ctx)
        # abandoned on cancel: only the server's shutdown cancels a request, and it must answer
        # (503) when its grace period ends, not when a long predict returns
        return await anyio.to_thread.run_sync(
            self._locked_predict, tasks, ctx, limiter=self._limiter(), **{_ABANDON: True}
        )

    async def _run_batch(self, tasks: list[Task], ctx: PredictContext) -> list[Any]:
        """Outputs for one batch; a batch that raises is retried task by task."""
        started = time.perf_counter()
        try:
            outputs = list(await self._call(tasks, ctx))
        except Exception as exc:
            if len(tasks) == 1:
                return [exc]
            ctx.log.warning(
                "batch of %d tasks failed (%s: %s); retrying one task at a time", len(tasks), type(exc).__name__, exc
            )
            results: list[Any] = []
            for task in tasks:
                results.extend(await self._run_batch([task], ctx))
            return results
        finally:
            self.runtime.metrics.observe_batch(time.perf_counter() - started)
        if len(outputs) != len(tasks):
            msg = (
                f"{type(self.backend).__name__}.predict returned {len(outputs)} results for {len(tasks)} tasks: "
                "return one per task, empty if none"
            )
            ctx.log.error(msg)
            outputs = (outputs + [TaskError(msg)] * len(tasks))[: len(tasks)]
        return outputs

    def plan(self, config: ParsedConfig) -> Plan:
        """The controls this backend fills in ``config`` and the task data keys they read,
        worked out once per parsed config (the parse cache hands out the same object)."""
        plan = self._plans.get(id(config))
        if plan is not None and plan.config() is config:
            return plan
        controls = self.backend.supported_controls(config)
        needed = tuple(
            sorted({o.data_key for c in controls for o in c.objects if o.data_key and o.tag in self.object_tags})
        )
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        plan = self._plans[id(config)] = Plan(weakref.ref(config), controls, needed)
        return plan

    async def predict(self, tasks: list[Task], ctx: PredictContext) -> list[dict]:
        """One Label Studio prediction dict per task, in order, never raising for a task."""
        needed = self.plan(ctx.config).needed
        # tasks that have every data key the config reads (one key, the usual case: one lookup)
        if len(needed) == 1:
            key = needed[0]
            runnable = [i for i, task in enumerate(tasks) if key in task.data]
        else:
            runnable = [i for i, task in enumerate(tasks) if all(k in task.data for k in needed)]
        size = self.backend.limits.max_batch_size
        outputs: list[Any]
        if len(runnable) == len(tasks) and len(tasks) <= size:
            # every task runnable, in one batch (interactive and most batch requests): no
            # index bookkeeping, no task to spawn
            outputs = await self._run_batch(tasks, ctx) if tasks else []
            return (
                self._results(tasks, outputs, ctx)
                if len(tasks) <= RESULTS_SLICE
                else await self._results_in_slices(tasks, outputs, ctx)
            )
        outputs = [None] * len(tasks)
        if len(runnable) < len(tasks):
            ok = set(runnable)
            for i, task in enumerate(tasks):
                if i not in ok:
                    data = task.data
                    missing = [k for k in needed if k not in data]
                    outputs[i] = TaskError(
                        f"task {task.id} has no data key {', '.join(repr(k) for k in missing)} that the label "
                        f"config reads (its data keys: {sorted(data)})"
                    )
        if len(runnable) <= size:  # one batch: no task to spawn
            batches = [runnable] if runnable else []
            done = [await self._run_batch([tasks[i] for i in runnable], ctx)] if runnable else []
        else:
            batches = [runnable[j : j + size] for j in range(0, len(runnable), size)]
            if self.is_async:
                done = await self._run_async_batches(batches, tasks, ctx)
            else:
                done = [await self._run_batch([tasks[i] for i in b], ctx) for b in batches]
        for batch, outs in zip(batches, done, strict=True):
            for i, out in zip(batch, outs, strict=True):
                outputs[i] = out
        if len(tasks) <= RESULTS_SLICE:
            return self._results(tasks, outputs, ctx)
        return await self._results_in_slices(tasks, outputs, ctx)

    async def _run_async_batches(
        self, batches: list[list[int]], tasks: list[Task], ctx: PredictContext
    ) -> list[list[Any]]:
        """An async backend's batches, at most ASYNC_BATCH_WINDOW (or its max_concurrency)
        at a time, each worker letting the event loop in between two batches: all of a big
        request's batches started at once ran in one turn of the loop when the backend's
        predict does not wait on anything (6,250 of them held it for 1.8 s)."""
        window = min(len(batches), max(self.backend.limits.max_concurrency, ASYNC_BATCH_WINDOW))
        done: list[Any] = [None] * len(batches)
        queue = iter(enumerate(batches))

        async def worker() -> None:
            for k, batch in queue:
                done[k] = await self._run_batch([tasks[i] for i in batch], ctx)
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(window)))
        return done

    async def _results_in_slices(self, tasks: list[Task], outputs: list[Any], ctx: PredictContext) -> list[dict]:
        """``_results`` for many tasks: a slice at a time, the event loop let in between
        (400,000 tasks built at once held it for over a second)."""
        failures = FailureLog(ctx.log, len(tasks))
        results: list[dict] = []
        for start in range(0, len(tasks), RESULTS_SLICE):
            end = start + RESULTS_SLICE
            results += self._results(tasks[start:end], outputs[start:end], ctx, failures)
            await asyncio.sleep(0)
        failures.flush(self.runtime.metrics)
        return results

    def _results(
        self, tasks: list[Task], outputs: list[Any], ctx: PredictContext, failures: FailureLog | None = None
    ) -> list[dict]:
        """The Label Studio prediction dicts for the backend's outputs, one per task; with
        ``failures``, the caller logs them (once for all its slices)."""
        version = ctx.model_version
        flush = failures is None
        if failures is None:
            failures = FailureLog(ctx.log, len(tasks))
        sanitize = ctx.config.sanitize
        results = []
        append = results.append
        for task, out in zip(tasks, outputs, strict=True):
            kind = type(out)
            if kind is Prediction:
                result, score = out.result, out.score
                if type(result) is not list:
                    result = list(result)
            elif kind is list:
                result, score = out, None
            elif out is None:
                append({"result": [], "score": None, "model_version": version})
                continue
            elif isinstance(out, BaseException):
                message = redact(str(out) or type(out).__name__)
                failures.failed(
                    task.id,
                    "task_error" if isinstance(out, TaskError) else "exception",
                    message,
                    None if isinstance(out, TaskError) else out,
                )
                append({"result": [], "score": None, "model_version": version, "error": message})
                continue
            else:
                try:
                    result, score = _normalize(out)
                except TypeError as exc:
                    failures.failed(task.id, "bad_output", str(exc))
                    append({"result": [], "score": None, "model_version": version, "error": str(exc)})
                    continue
            result, problems = sanitize(result)
            if problems:
                failures.dropped(task.id, problems)
            if score is None and result:
                score = _mean_score(result)
            item = {"result": result, "score": score, "model_version": version}
            if problems and self.backend.report_dropped_regions:
                item["error"] = dropped_regions_message(problems)
            append(item)
        if flush:
            failures.flush(self.runtime.metrics)
        self.runtime.metrics.count_tasks(len(tasks))
        return results


@dataclass(frozen=True)
class Plan:
    config: weakref.ref
    controls: list[ControlInfo]
    needed: tuple[str, ...]


class FailureLog:
    """Failed tasks and dropped regions of one call, logged as a few lines however many tasks
    fail: the first MAX_LOGGED one by one (with a traceback for an unexpected exception),
    then one summary with the count per reason."""

    MAX_LOGGED = 5

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter, total: int):
        self.log = logger
        self.total = total
        self.reasons: dict[str, int] = {}
        self.logged = 0
        self.dropped_tasks = 0
        self.dropped_regions = 0

    def failed(self, task_id: Any, reason: str, message: str, exc: BaseException | None = None) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if self.logged < self.MAX_LOGGED:
            self.logged += 1
            self.log.error("task %s failed: %s", task_id, message, exc_info=exc)

    def dropped(self, task_id: Any, problems: list[str]) -> None:
        self.dropped_tasks += 1
        self.dropped_regions += len(problems)
        if self.dropped_tasks <= self.MAX_LOGGED:
            for problem in problems[: self.MAX_LOGGED]:
                self.log.warning("task %s: dropped a region: %s", task_id, problem)

    def flush(self, metrics: Any) -> None:
        failed = sum(self.reasons.values())
        for reason, n in self.reasons.items():
            metrics.task_failures.labels(reason=reason).inc(n)
        if failed > self.logged:
            self.log.error(
                "%d of %d tasks failed (%s); the first %d are logged above",
                failed,
                self.total,
                ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items())),
                self.logged,
            )
        if self.dropped_tasks > self.MAX_LOGGED:
            self.log.warning(
                "dropped %d regions in %d of %d tasks (labels or controls not in the project's "
                "config); the first are logged above",
                self.dropped_regions,
                self.dropped_tasks,
                self.total,
            )
