"""POST /predict: from the raw body to Label Studio's answer, served by the outer middleware
(the hot path). Big bodies are parsed, predicted and answered a slice at a time; a batch in
which some task has nothing is answered so that Label Studio stores nothing for it."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import msgspec
import orjson

from prelabel.backend import Task, describe_supports
from prelabel.labelconfig import LabelConfigError, ParsedConfig, warm_label_config
from prelabel.paths import InvalidIdentifier
from prelabel.predict import RESULTS_SLICE
from prelabel.runtime import Runtime
from prelabel.server.models import project_key_problem
from prelabel.state import StateUnavailable

log = logging.getLogger("prelabel.server")

MAX_LOGGED_BAD_TASKS = 5  # per request; the rest are counted in one summary line
# A /predict body this big is parsed, and its answer written, a slice of tasks at a time with
# the event loop let in between, so /health and other requests are served meanwhile (a body of
# 400,000 tasks held the loop for over a second at a time, parsed or written in one call).
COOPERATIVE_BODY_BYTES = 1 << 20
SLICE = RESULTS_SLICE  # tasks between two turns of the event loop, as prelabel.predict builds results
JSON_HEADERS: list[tuple[bytes, bytes]] = []
SHUTTING_DOWN = {"error": "the backend is shutting down; retry on another replica or after the restart"}


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays from model code
        return obj.tolist()
    return str(obj)


def dumps_json(obj: Any) -> bytes:
    """orjson: several times faster than json.dumps on big /predict responses, and it
    serializes the numpy numbers model code tends to leave in scores and coordinates."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def unsupported_message(runtime: Runtime, config: ParsedConfig) -> str:
    b = runtime.backend
    skipped = [c.name for c in config.controls if c.attr("model_skip", False, bool)]
    return (
        f"the {b.backend_id} backend supports {describe_supports(b.supports)}; "
        f"this label config has {config.describe()}"
        + (f' (left to annotators with model_skip="true": {", ".join(skipped)})' if skipped else "")
    )


class PredictEndpoint:
    """POST /predict: from the raw body to (status, JSON bytes, headers). The middleware calls
    it directly (the hot path); the FastAPI route, which documents the body, delegates to it."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.backend = runtime.backend
        # the in-flight gauge: read from runtime.inflight when scraped (no two locked updates
        # per request), except with several processes, whose gauges prometheus_client sums
        # from values each process writes
        self._inflight_gauge = None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self._inflight_gauge = runtime.metrics.inflight
        else:
            runtime.metrics.inflight.set_function(lambda: runtime.inflight)

    async def __call__(self, raw: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            return await self.handle(raw)
        except StateUnavailable as exc:
            log.error("POST /predict: %s", exc)
            return 503, orjson.dumps({"error": str(exc)}), [(b"retry-after", b"2")]
        except InvalidIdentifier as exc:
            return self._fail(400, str(exc))
        except asyncio.CancelledError:
            # Only the server cancels a request: at shutdown, when the grace period ended with
            # this prediction still running. Say so (a bare 500 would read as a bug), then stop.
            log.warning("POST /predict cancelled by the server's shutdown")
            return 503, orjson.dumps(SHUTTING_DOWN), [(b"retry-after", b"5"), (b"connection", b"close")]
        except Exception as exc:
            log.exception("unhandled error on POST /predict")
            return 500, orjson.dumps({"error": f"internal error ({type(exc).__name__}); see the backend's log"}), []

    @staticmethod
    def _fail(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple:
        return status, orjson.dumps({"error": message}), headers or JSON_HEADERS

    def _parse(self, raw: bytes) -> tuple[dict | None, tuple | None]:
        """The body as a dict (its ``tasks`` already Task objects, and ``bad``: a message per
        malformed task by index), or the 4xx answer for it. Only the top level is refused
        here: each task is checked on its own, so one malformed task fails alone."""
        try:
            # the common, well-formed body: msgspec builds only each task's id and data and
            # skips the rest (a 100-task body from Label Studio: 2.5x faster than building it
            # all); anything it does not take goes the general way below, with its messages
            shape = _DECODE_PREDICT_BODY.decode(raw)
        except msgspec.DecodeError:
            shape = None
        if shape is not None:
            source = _BodyTasks(raw)
            tasks = [_LazyTask(t.id, t.data, source, i) for i, t in enumerate(shape.tasks)]
            body = {
                "tasks": tasks,
                "bad": {},
                "project": shape.project,
                "label_config": shape.label_config,
                "params": shape.params,
            }
        else:
            if not raw.strip():
                return None, self._fail(400, "the request has no body: send a JSON object")
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                return None, self._fail(400, f"malformed JSON body: {exc.msg}")
            if type(body) is not dict:
                return None, self._fail(422, f"invalid request: the body must be a JSON object, got {kind_of(body)}")
        tasks = body.get("tasks")
        problems = _body_problems(
            tasks, "tasks" in body, body.get("project"), body.get("label_config"), body.get("params")
        )
        if problems:
            return None, self._fail(422, "invalid request: " + "; ".join(problems))
        if shape is None:
            body["tasks"], body["bad"] = _tasks(tasks)
        return body, None

    async def _parse_cooperatively(self, raw: bytes) -> tuple[dict | None, tuple | None]:
        """What ``_parse`` does, for a big body: one quick pass that only finds where each
        task starts and ends, then the tasks built a slice at a time, the loop let in between.
        A body that pass does not take (not an object, tasks not a list, malformed JSON) goes
        the general way, for its messages."""
        try:
            shape = _DECODE_BIG_BODY.decode(raw)
        except msgspec.DecodeError:
            return self._parse(raw)
        items = shape.tasks
        problems = _body_problems(items, items is not None, shape.project, shape.label_config, shape.params)
        if problems:
            return None, self._fail(422, "invalid request: " + "; ".join(problems))
        source = _RawTasks(items)
        decode = _DECODE_TASK.decode
        tasks: list[Task] = []
        bad: dict[int, str] = {}
        for start in range(0, len(items), SLICE):
            for i in range(start, min(start + SLICE, len(items))):
                try:
                    t = decode(items[i])
                except msgspec.DecodeError:  # the general way says what is wrong with it
                    task = _task_or_problem(i, orjson.loads(memoryview(items[i])))
                    if type(task) is str:
                        bad[i] = task
                    else:
                        tasks.append(task)
                else:
                    tasks.append(_LazyTask(t.id, t.data, source, i))
            await asyncio.sleep(0)
        _log_bad(bad, len(items))
        return {
            "tasks": tasks,
            "bad": bad,
            "project": shape.project,
            "label_config": shape.label_config,
            "params": shape.params,
        }, None

    async def handle(self, raw: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        runtime = self.runtime
        if runtime.setup_error:
            return self._fail(503, f"the model failed to load: {runtime.setup_error}")
        if not runtime.ready.is_set():
            return self._fail(503, "the model is still loading", [(b"retry-after", b"5")])
        body, refused = self._parse(raw) if len(raw) <= COOPERATIVE_BODY_BYTES else await self._parse_cooperatively(raw)
        if refused is not None:
            return refused
        metrics = runtime.metrics
        if runtime.inflight >= runtime.core.max_inflight:
            metrics.rejected.inc()
            return self._fail(
                503,
                f"overloaded: {runtime.inflight} predictions in flight "
                f"(MAX_INFLIGHT={runtime.core.max_inflight}); retry later",
                [(b"retry-after", b"1")],
            )
        project_key = body.get("project")
        try:
            await warm_label_config(body.get("label_config"))
            project = runtime.project(None if project_key is None else str(project_key), body.get("label_config"))
        except (LabelConfigError, LookupError) as exc:
            return self._fail(400, str(exc) if isinstance(exc, LabelConfigError) else exc.args[0])
        plan = runtime.predictor.plan(project.config)
        if not plan.controls:
            return self._fail(400, unsupported_message(runtime, project.config))
        version = project.trained_version or self.backend.model_version()
        tasks, bad = body["tasks"], body["bad"]
        gauge = self._inflight_gauge
        runtime.inflight += 1
        if gauge is not None:
            gauge.inc()
        try:
            results = await runtime.predict(tasks, project, body.get("params") or {}) if tasks else []
        finally:
            runtime.inflight -= 1
            if gauge is not None:
                gauge.dec()
        if bad:
            merged = iter(results)
            results = [
                {"result": [], "score": None, "model_version": version, "error": bad[i]} if i in bad else next(merged)
                for i in range(len(tasks) + len(bad))
            ]
        tail = b"}"
        params = body.get("params")
        interactive = type(params) is dict and params.get("context") is not None
        if not interactive and not runtime.core.store_empty_predictions and any(not r["result"] for r in results):
            results, errors = _without_empty_predictions(results, tasks, bad)
            if errors:
                tail = b',"errors":' + dumps_json(errors) + b"}"
        if len(results) <= SLICE:
            return 200, dumps_json({"results": results, "model_version": version})[:-1] + tail, JSON_HEADERS
        # byte for byte what dumps_json writes for the whole, a slice at a time
        parts = []
        for start in range(0, len(results), SLICE):
            parts.append(dumps_json(results[start : start + SLICE])[1:-1])
            await asyncio.sleep(0)
        return (
            200,
            b"".join((b'{"results":[', b",".join(parts), b'],"model_version":', dumps_json(version), tail)),
            JSON_HEADERS,
        )


def _without_empty_predictions(
    results: list[dict], tasks: list[Task], bad: dict[int, str]
) -> tuple[list[list[dict]], list[dict]]:
    """A batch answer in which Label Studio stores nothing for a task with nothing: a list of
    predictions per task, empty for those (Label Studio 1.23 stores each item of a task's list,
    docs/label-studio-protocol.md section 7), and each task's error, which an empty entry
    carried, in a top-level ``errors`` list by index. Label Studio drops a whole batch whose
    answer has fewer entries than tasks, so every task keeps its entry."""
    ids = iter(task.id for task in tasks)
    errors = []
    shaped: list[list[dict]] = []
    for i, item in enumerate(results):
        task_id = None if i in bad else next(ids)
        if item["result"]:
            shaped.append([item])
            continue
        shaped.append([])
        if "error" in item:
            errors.append({"index": i, "task": task_id, "error": item["error"]})
    return shaped, errors


def _body_problems(tasks: Any, has_tasks: bool, project: Any, config: Any, params: Any) -> list[str]:
    """What is wrong with a /predict body's top level, as messages."""
    problems = []
    if type(tasks) is not list or not tasks:
        problems.append(
            "tasks: "
            + (
                "field required"
                if tasks is None and not has_tasks
                else "must be a non-empty list of tasks"
                if type(tasks) is list
                else f"must be a list of tasks, got {kind_of(tasks)}"
            )
        )
    if project is not None and (problem := project_key_problem(project)):
        problems.append(f"project: the project id {problem}")
    if config is not None and type(config) is not str:
        problems.append(f"label_config: must be a string, got {kind_of(config)}")
    if params is not None and type(params) is not dict:
        problems.append(f"params: must be an object, got {kind_of(params)}")
    return problems


def kind_of(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number"
    )


class _TaskShape(msgspec.Struct, gc=False):
    """What core reads of a task. gc=False: it holds no reference back to itself."""

    data: dict
    id: int | None = None


class _PredictBodyShape(msgspec.Struct, gc=False):
    tasks: list[_TaskShape]
    project: Any = None
    label_config: Any = None
    params: Any = None


_DECODE_PREDICT_BODY = msgspec.json.Decoder(_PredictBodyShape)
_DECODE_TASK = msgspec.json.Decoder(_TaskShape)


class _BigBodyShape(msgspec.Struct, gc=False):
    """A big body's top level, each task left as its bytes (found, not built)."""

    tasks: list[msgspec.Raw] | None = None
    project: Any = None
    label_config: Any = None
    params: Any = None


_DECODE_BIG_BODY = msgspec.json.Decoder(_BigBodyShape)


class _RawTasks:
    """A big body's tasks as their bytes; each task's whole dict is parsed when asked for."""

    __slots__ = ("items",)

    def __init__(self, items: list[msgspec.Raw]):
        self.items = items

    def task(self, index: int) -> dict:
        return orjson.loads(memoryview(self.items[index]))


class _BodyTasks:
    """A request body's tasks as whole dicts, parsed the first time one is asked for."""

    __slots__ = ("body", "tasks")

    def __init__(self, body: bytes):
        self.body = body
        self.tasks: list | None = None

    def task(self, index: int) -> dict:
        if self.tasks is None:
            self.tasks = orjson.loads(self.body)["tasks"]
        return self.tasks[index]


class _LazyTask(Task):
    """A Task whose ``raw`` dict (annotations, meta... which most plugins never read) is
    built on first use; ``raw["data"]`` is ``data``, as for any Task."""

    __slots__ = ("_source", "_index", "_raw")

    def __init__(self, id: int | None, data: dict[str, Any], source: _BodyTasks | _RawTasks, index: int):
        self.id = id
        self.data = data
        self._source = source
        self._index = index
        self._raw = None

    @property
    def raw(self) -> dict[str, Any]:  # type: ignore[override]
        if self._raw is None:
            raw = self._source.task(self._index)
            raw["data"] = self.data
            self._raw = raw
        return self._raw

    @raw.setter
    def raw(self, value: dict[str, Any]) -> None:
        self._raw = value


def _tasks(raw_tasks: list) -> tuple[list[Task], dict[int, str]]:
    """Task objects for the well-formed tasks, and a message per malformed one (by index),
    logged once per request however many there are."""
    tasks: list[Task] = []
    bad: dict[int, str] = {}
    for i, raw in enumerate(raw_tasks):
        # the common case inline (a dict with a data object and an int id); Task.from_dict
        # says what is wrong with the others
        if type(raw) is dict:
            data, tid = raw.get("data"), raw.get("id")
            if type(data) is dict and (tid is None or type(tid) is int):
                tasks.append(Task(tid, data, raw))
                continue
        task = _task_or_problem(i, raw)
        if type(task) is str:
            bad[i] = task
        else:
            tasks.append(task)
    _log_bad(bad, len(raw_tasks))
    return tasks, bad


def _task_or_problem(index: int, raw: Any) -> Task | str:
    """The Task for one of a body's tasks, or what is wrong with it."""
    try:
        return Task.from_dict(raw)
    except ValueError as exc:
        tid = raw.get("id") if isinstance(raw, dict) else None
        return f"task #{index} (id {tid!r}) is malformed: {exc}"


def _log_bad(bad: dict[int, str], total: int) -> None:
    """One log line for a request's malformed tasks, however many there are."""
    if bad:
        first = list(bad.values())[:MAX_LOGGED_BAD_TASKS]
        more = len(bad) - len(first)
        log.error(
            "%d of %d tasks are malformed and got an empty result: %s%s",
            len(bad),
            total,
            "; ".join(first),
            f"; and {more} more" if more else "",
        )
