"""The FastAPI app: /health /setup /predict /webhook /train /versions /jobs /metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import msgspec
import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

import prelabel
from prelabel.compat.hooks import TrainsOnEvents
from prelabel.jobs import BODY_TASKS, Job, JobConflict
from prelabel.labelconfig import LabelConfigError, parse_label_config, warm_label_config
from prelabel.paths import InvalidIdentifier
from prelabel.runtime import Runtime, project_id_of
from prelabel.server.middleware import PrelabelMiddleware
from prelabel.server.models import (
    MAX_JSON_DEPTH,
    JobRequest,
    PredictRequest,
    SetupRequest,
    TrainRequest,
    WebhookRequest,
    too_deep,
)
from prelabel.server.predict_endpoint import (
    COOPERATIVE_BODY_BYTES,
    SLICE,
    PredictEndpoint,
    kind_of,
    unsupported_message,
)
from prelabel.state import StateUnavailable

log = logging.getLogger("prelabel.server")

EXCLUSIVE_KINDS = {"predict"}  # one running prediction job per project
WARM_UP_CONFIG = '<View><Text name="text" value="$text"/></View>'
ANNOTATION_EVENTS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"}
# Label Studio's webhook actions (GET /api/webhooks/info, docs/label-studio-protocol.md section 6)
# and START_TRAINING: the only values the webhook metric's label takes, besides "other".
WEBHOOK_ACTIONS = frozenset(
    {
        "START_TRAINING",
        "PROJECT_CREATED",
        "PROJECT_UPDATED",
        "PROJECT_DELETED",
        "TASKS_CREATED",
        "TASKS_DELETED",
        "ANNOTATION_CREATED",
        "ANNOTATIONS_CREATED",
        "ANNOTATION_UPDATED",
        "ANNOTATIONS_DELETED",
        "LABEL_LINK_CREATED",
        "LABEL_LINK_UPDATED",
        "LABEL_LINK_DELETED",
    }
)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _format_errors(errors: list[dict]) -> str:
    parts = []
    for err in errors[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


class BodyTooDeep(HTTPException):
    def __init__(self) -> None:
        super().__init__(400, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")


class OrjsonRequest(Request):
    """Request bodies parsed by orjson, which refuses what Python's json module lets through
    and the state store or a response later chokes on: NaN and Infinity, lone surrogates
    ("\\ud800"), and nesting beyond 1024 levels; deeper than MAX_JSON_DEPTH is refused here."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            if len(raw) > COOPERATIVE_BODY_BYTES:
                self._json = await loads_cooperatively(raw)
            else:
                value = orjson.loads(raw)  # orjson.JSONDecodeError is a json.JSONDecodeError
                if too_deep(value):
                    raise BodyTooDeep()
                self._json = value
        return self._json


_DECODE_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_DECODE_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


async def loads_cooperatively(raw: bytes) -> Any:
    """``orjson.loads`` (and the depth check) of a big body, a slice at a time: a top-level
    object's list members are parsed SLICE items at a time, the event loop let in between (a
    /train body of 200,000 annotated tasks parsed in one call held it for over a second). A
    body that is not an object is parsed the usual way, with its usual errors."""
    try:
        members = _DECODE_MEMBERS.decode(raw)
    except msgspec.DecodeError:
        members = None
    if members is None or not all(_encodable(key) for key in members):
        value = orjson.loads(raw)
        if too_deep(value):
            raise BodyTooDeep()
        return value
    body: dict[str, Any] = {}
    for key, member in members.items():
        text = memoryview(member)
        if bytes(text[:1]) != b"[":
            value = orjson.loads(text)
            if too_deep(value, MAX_JSON_DEPTH - 1):
                raise BodyTooDeep()
            body[key] = value
            continue
        items = _DECODE_ITEMS.decode(member)
        values = []
        for start in range(0, len(items), SLICE):
            for item in items[start : start + SLICE]:
                value = orjson.loads(memoryview(item))
                if too_deep(value, MAX_JSON_DEPTH - 2):
                    raise BodyTooDeep()
                values.append(value)
            await asyncio.sleep(0)
        body[key] = values
    return body


def _encodable(key: str) -> bool:
    """Whether a key is valid UTF-8 text (no lone surrogate, which orjson refuses)."""
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return True


class OrjsonRoute(APIRoute):
    """FastAPI's documented way to swap the Request class of a route."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return route


class PrelabelApp(FastAPI):
    """FastAPI with prelabel's middleware outermost: it authenticates, limits, counts and
    logs every request, and serves the hot endpoints (``fast``) without FastAPI's stack."""

    def __init__(self, runtime: Runtime, **kwargs: Any):
        super().__init__(**kwargs)
        self.runtime = runtime
        self.fast: dict[tuple[str, str], Any] = {}
        self.router.route_class = OrjsonRoute

    def build_middleware_stack(self) -> Any:
        return PrelabelMiddleware(super().build_middleware_stack(), runtime=self.runtime, fast=self.fast)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # the hot endpoints skip FastAPI's per-request telemetry checks (environment lookups)
        if scope["type"] == "http" and (scope["method"], scope["path"]) in self.fast:
            if self.middleware_stack is None:
                self.middleware_stack = self.build_middleware_stack()
            scope["app"] = self
            if self.root_path:
                scope["root_path"] = self.root_path
            await self.middleware_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def job_view(job: Job) -> dict[str, Any]:
    """A job as /jobs shows it. A stored record that cannot be shown (written by an older
    version, or damaged) is shown as a stub that says so, so it never hides the others."""
    try:
        view = job.to_dict()
        view["params"] = summarize_params(view.get("params"))
        orjson.dumps(view)  # what the response will do: fail here, for this job only
        return view
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("job %s: stored record cannot be shown: %s", job.id, exc)
        return {
            "id": job.id,
            "kind": job.kind,
            "project": job.project,
            "status": job.status,
            "progress": job.progress if isinstance(job.progress, (int, float)) else 0.0,
            "error": f"this job's stored record cannot be shown ({type(exc).__name__}); "
            "its params or result are not plain JSON",
            "params": {},
            "result": None,
            "created_at": job.created_at,
        }


def summarize_params(params: Any) -> Any:
    """Job params as /jobs shows them: a /train body's annotated tasks (megabytes, and the
    project's data) as their count, never the tasks themselves."""
    if isinstance(params, dict) and BODY_TASKS in params:  # kept beside the record (JobStore.keep_tasks)
        shown = {k: v for k, v in params.items() if k != BODY_TASKS}
        return {**shown, "tasks": f"{params[BODY_TASKS]} annotated tasks from the /train body"}
    if isinstance(params, dict) and isinstance(params.get("tasks"), list):  # a record from an older version
        return {**params, "tasks": f"{len(params['tasks'])} annotated tasks from the /train body"}
    return params


GC_THRESHOLD0 = 100_000


def tune_gc() -> None:
    """Once the model is loaded: freeze what exists (modules, weights, caches: 70k+ objects
    that every full collection would walk again), and let GC_THRESHOLD0 allocations pass
    between young collections. Measured at 16 connections of 100-task requests: with the
    default threshold (700) the collector ran 3,200 times in 10 s (2.0 s in all, pauses up to
    0.5 s); with 100,000, 200 times (0.35 s). Reference counting frees request garbage; only
    cycles wait for the collector (docs.python.org/3/library/gc.html#gc.freeze)."""
    gc.collect()
    gc.freeze()
    threshold0, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(max(threshold0, GC_THRESHOLD0), threshold1, threshold2)


def _load(runtime: Runtime, gc_tuning: bool) -> None:
    try:
        runtime.start()
    except Exception:
        return  # recorded in setup_error; /health reports it
    if gc_tuning:
        tune_gc()


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app(runtime: Runtime, start_setup: bool = True, gc_tuning: bool = False) -> FastAPI:
    """Build the app for one Runtime. With ``start_setup`` the model loads in a background
    thread at start-up, and /health says LOADING until it is ready. ``gc_tuning`` (what
    ``prelabel serve`` uses; it changes the whole process) runs :func:`tune_gc` after the load."""
    backend = runtime.backend
    # Label Studio gives /setup 3 s and never retries it. The first label config parse imports
    # label-studio-sdk's LabelInterface (1-4 s on a busy 2-core machine: a real LS refused the
    # first connection with "Read timed out"). Pay it here, before this process (or this worker
    # of several) accepts a connection, not in Label Studio's first /setup.
    parse_label_config(WARM_UP_CONFIG)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_setup and not runtime.ready.is_set() and runtime.setup_error is None:
            runtime.import_main_thread_modules()
            threading.Thread(target=_load, args=(runtime, gc_tuning), name="prelabel-setup", daemon=True).start()
        yield
        runtime.close()

    app = PrelabelApp(
        runtime,
        title=f"prelabel: {backend.title or backend.backend_id}",
        version=prelabel.__version__,
        description=backend.description or "A Label Studio ML backend served by prelabel.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    predict_endpoint = PredictEndpoint(runtime)
    app.fast[("POST", "/predict")] = predict_endpoint

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if len(errors) == 1 and errors[0].get("type") == "missing" and tuple(errors[0].get("loc", ())) == ("body",):
            return _error(400, "the request has no body: send a JSON object")
        if any(e.get("type") == "json_invalid" for e in errors):
            ctx = errors[0].get("ctx", {})
            return _error(400, f"malformed JSON body: {ctx.get('error', 'cannot parse')}")
        return _error(
            422,
            f"invalid request: {_format_errors(errors)}",
            detail=[{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors],
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StateUnavailable)
    async def on_state_unavailable(request: Request, exc: StateUnavailable) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(InvalidIdentifier)
    async def on_invalid_identifier(request: Request, exc: InvalidIdentifier) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the backend's log")

    @app.get("/health", summary="Readiness: 503 LOADING until the model is loaded, then 200 UP")
    async def health() -> Response:
        if runtime.setup_error:
            return _json({"status": "ERROR", "error": runtime.setup_error}, 503)
        if not runtime.ready.is_set():
            return _json({"status": "LOADING", "plugin": backend.backend_id}, 503)
        body = {
            "status": "UP",
            "model_class": type(backend).__name__,
            "plugin": backend.backend_id,
            "model_version": backend.model_version(),
        }
        if backend.trainable:
            trained = runtime.trained_projects()
            body.update(trained=bool(trained), trained_projects=trained)
        return _json({**body, **backend.health()})

    @app.post("/setup", summary="Label Studio connects a project: store its config, return the model version")
    async def setup(body: SetupRequest) -> JSONResponse:
        try:
            await warm_label_config(body.label_config)
            config = parse_label_config(body.label_config)
        # Label Studio drops the body of a failed /setup ("400 Client Error: Bad Request for url")
        # and tells the person to read the backend's console log: the reason must be logged.
        except LabelConfigError as exc:
            log.warning("/setup refused project %s: %s", body.project, exc)
            return _error(400, str(exc))
        if not runtime.predictor.plan(config).controls:  # a refused config is not stored
            message = unsupported_message(runtime, config)
            log.warning("/setup refused project %s: %s", body.project, message)
            return _error(400, message)
        project = runtime.remember_project(str(body.project), body.label_config, body.hostname, body.access_token)
        return JSONResponse({"model_version": runtime.model_version(project.id)})

    @app.post(
        "/predict",
        summary="Predict tasks (batch or interactive): one result per task, in order",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
                    }
                },
            }
        },
        responses={
            200: {
                "description": "One result per task, in order",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["results", "model_version"],
                            "properties": {
                                "results": {"type": "array", "items": {"type": "object"}},
                                "model_version": {"type": "string"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def predict(request: Request) -> Response:
        # The middleware serves POST /predict itself; this route documents it, and serves it
        # where the app runs without that middleware in front.
        status, raw, headers = await predict_endpoint(await request.body())
        return Response(
            raw, status_code=status, media_type="application/json", headers={k.decode(): v.decode() for k, v in headers}
        )

    @app.post("/webhook", summary="Label Studio events: START_TRAINING and annotation events")
    async def webhook(body: WebhookRequest) -> JSONResponse:
        action = body.action
        runtime.metrics.webhooks.labels(action=action if action in WEBHOOK_ACTIONS else "other").inc()
        project = body.project or {}
        if not project.get("id"):
            return JSONResponse({"status": "ignored", "reason": "no project id in the event"})
        pid = project_id_of(project.get("id"))
        if project.get("label_config"):
            await warm_label_config(project["label_config"])
            try:
                runtime.remember_project(pid, project["label_config"])
            except LabelConfigError:
                pass
        params = (
            backend.train_on_event(action, body.model_dump(exclude={"action"}))
            if backend.trainable and isinstance(backend, TrainsOnEvents)
            else None
        )
        if params is not None:
            job = runtime.runner.submit("train", pid, params, coalesce=action == "START_TRAINING")
            runtime.metrics.jobs.labels(kind="train").inc()
            return JSONResponse({"status": "queued", "job": job.id}, status_code=201)
        if action == "START_TRAINING":
            if not backend.trainable:
                return _error(400, f"the {backend.backend_id} backend is not trainable")
            job = runtime.runner.submit("train", pid, coalesce=True)
            runtime.metrics.jobs.labels(kind="train").inc()
            return JSONResponse({"status": "queued", "job": job.id}, status_code=201)
        if action in ANNOTATION_EVENTS and backend.trainable:
            count = runtime.project_state(pid).incr("annotations_since_training")
            every = runtime.core.train_every_n
            if every > 0 and count >= every:
                runtime.project_state(pid).set("annotations_since_training", 0)
                job = runtime.runner.submit("train", pid, coalesce=True)
                runtime.metrics.jobs.labels(kind="train").inc()
                return JSONResponse({"status": "queued", "job": job.id}, status_code=201)
            return JSONResponse({"status": "recorded", "annotations_since_training": count})
        return JSONResponse({"status": "ignored", "action": action})

    @app.post("/train", summary="Legacy training call: annotated tasks in the body; queues a job")
    async def train(body: TrainRequest) -> JSONResponse:
        if not backend.trainable:
            return _error(400, f"the {backend.backend_id} backend is not trainable")
        pid = project_id_of(str(body.project))
        if body.label_config:
            await warm_label_config(body.label_config)
            try:
                runtime.remember_project(str(body.project), body.label_config)
            except LabelConfigError as exc:
                return _error(400, str(exc))
        tasks = body.annotations
        for start in range(0, len(tasks), SLICE):
            for i in range(start, min(start + SLICE, len(tasks))):
                if type(tasks[i]) is not dict:
                    return _error(
                        422,
                        f"invalid request: annotations.{i}: must be an annotated task "
                        f"(an object), got {kind_of(tasks[i])}",
                    )
            if len(tasks) > SLICE:
                await asyncio.sleep(0)
        params = {"tasks": tasks} if tasks else {}
        # in a worker thread: storing a big body's tasks is many short steps the loop runs between
        job = (
            await anyio.to_thread.run_sync(runtime.runner.submit, "train", pid, params)
            if len(tasks) > SLICE
            else runtime.runner.submit("train", pid, params)
        )
        runtime.metrics.jobs.labels(kind="train").inc()
        return JSONResponse({"status": "queued", "job": job.id}, status_code=201)

    @app.get("/versions", summary="Model versions: the base version and every trained one")
    async def versions() -> dict:
        return {
            "versions": runtime.versions(),
            "model_version": backend.model_version(),
            "projects": runtime.version_records(),
        }

    @app.get("/jobs", summary="Jobs, newest first")
    async def list_jobs(project: str | None = Query(default=None), kind: str | None = Query(default=None)) -> Response:
        jobs = runtime.jobs.list(project=project_id_of(project) if project else None, kind=kind)
        return _json({"jobs": [job_view(j) for j in jobs]})

    @app.post("/jobs", status_code=201, summary="Start a job (kind: train, ...)")
    async def create_job(body: JobRequest) -> Response:
        if body.kind not in runtime.job_handlers:
            return _error(
                400,
                f"unknown job kind {body.kind!r} for {backend.backend_id}; "
                f"known: {sorted(runtime.job_handlers) or 'none'}",
            )
        try:
            job = runtime.runner.submit(
                body.kind, project_id_of(str(body.project)), body.params, exclusive=body.kind in EXCLUSIVE_KINDS
            )
        except JobConflict as exc:
            return _error(409, str(exc), job=exc.job.id)
        runtime.metrics.jobs.labels(kind=body.kind).inc()
        return _json(job_view(job), 201)

    def _job_or_404(job_id: str) -> Job:
        job = runtime.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/jobs/{job_id}", summary="One job's status, progress, error and result")
    async def get_job(job_id: str) -> Response:
        return _json(job_view(_job_or_404(job_id)))

    @app.delete("/jobs/{job_id}", summary="Cancel a job")
    async def cancel_job(job_id: str) -> Response:
        _job_or_404(job_id)
        return _json(job_view(runtime.runner.cancel(job_id)))

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    mount_backend_routes(app, runtime)
    return app


def mount_backend_routes(app: FastAPI, runtime: Runtime) -> None:
    """Mount the endpoints the backend adds in ``Backend.add_routes``, behind core's readiness
    check (503 while the model loads or after it failed to); a path under one of core's own
    first segments (``/jobs/...``) is a configuration error, not a silent shadow."""
    from fastapi import APIRouter, Depends

    def model_ready() -> None:
        if runtime.setup_error:
            raise HTTPException(503, f"the model failed to load: {runtime.setup_error}")
        if not runtime.ready.is_set():
            raise HTTPException(503, "the model is still loading", headers={"Retry-After": "5"})

    router = APIRouter(route_class=OrjsonRoute, dependencies=[Depends(model_ready)])
    runtime.backend.add_routes(router, runtime.route_context())
    if not router.routes:
        return
    core_roots = {_root(route.path) for route in app.routes}
    clashes = sorted(route.path for route in router.routes if _root(route.path) in core_roots)
    if clashes:
        raise ValueError(
            f"backend {runtime.backend.backend_id} adds {', '.join(clashes)}, under paths core "
            f"serves ({', '.join(sorted(core_roots))}): use its own prefix, e.g. /v1/..."
        )
    app.include_router(router)


def _root(path: str) -> str:
    return "/" + path.strip("/").split("/", 1)[0]


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several worker processes): the backend spec comes
    from ``PRELABEL_SERVE_BACKEND``."""
    from prelabel.logsetup import coalesce_access_lines, configure_logging
    from prelabel.plugins import load_backend_class
    from prelabel.settings import CoreSettings

    core = CoreSettings()
    configure_logging(core.log_level, core.log_format)
    coalesce_access_lines()  # a served process: one write per loop iteration
    spec = os.environ["PRELABEL_SERVE_BACKEND"]
    runtime = Runtime(load_backend_class(spec), core)
    return create_app(runtime, gc_tuning=True)
