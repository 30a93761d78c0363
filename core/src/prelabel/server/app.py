"""The FastAPI app: /health /setup /predict /webhook /train /versions /jobs /metrics."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

import prelabel
from prelabel.backend import Task
from prelabel.jobs import Job, JobConflict
from prelabel.labelconfig import LabelConfigError, ParsedConfig, parse_label_config
from prelabel.paths import InvalidIdentifier
from prelabel.runtime import Runtime, project_id_of
from prelabel.server.middleware import PrelabelMiddleware
from prelabel.server.models import (
    JobRequest,
    PredictRequest,
    PredictResponse,
    SetupRequest,
    TrainRequest,
    WebhookRequest,
)
from prelabel.state import StateUnavailable

log = logging.getLogger("prelabel.server")

EXCLUSIVE_KINDS = {"predict"}  # one running prediction job per project
WARM_UP_CONFIG = '<View><Text name="text" value="$text"/></View>'
ANNOTATION_EVENTS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"}


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays from model code
        return obj.tolist()
    return str(obj)


def dumps_json(obj: Any) -> bytes:
    """orjson: several times faster than json.dumps on big /predict responses, and it
    serializes the numpy numbers model code tends to leave in scores and coordinates."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _format_errors(errors: list[dict]) -> str:
    parts = []
    for err in errors[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


def unsupported_message(runtime: Runtime, config: ParsedConfig) -> str:
    b = runtime.backend
    skipped = [c.name for c in config.controls if c.attr("model_skip", False, bool)]
    return (f"the {b.backend_id} backend supports {', '.join(sorted(b.control_tags))} on "
            f"{', '.join(sorted(b.object_tags))}; this label config has {config.describe()}"
            + (f" (left to annotators with model_skip=\"true\": {', '.join(skipped)})" if skipped else ""))


def create_app(runtime: Runtime, start_setup: bool = True) -> FastAPI:
    """Build the app for one Runtime. With ``start_setup`` the model loads in a background
    thread at start-up, and /health says LOADING until it is ready."""
    backend = runtime.backend
    # Label Studio gives /setup 3 s and never retries it. The first label config parse imports
    # label-studio-sdk's LabelInterface (1-4 s on a busy 2-core machine: a real LS refused the
    # first connection with "Read timed out"). Pay it here, before this process (or this worker
    # of several) accepts a connection, not in Label Studio's first /setup.
    parse_label_config(WARM_UP_CONFIG)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ARG001
        if start_setup and not runtime.ready.is_set() and runtime.setup_error is None:
            runtime.start_in_background()
        yield
        runtime.close()

    app = FastAPI(
        title=f"prelabel: {backend.title or backend.backend_id}",
        version=prelabel.__version__,
        description=backend.description or "A Label Studio ML backend served by prelabel.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(PrelabelMiddleware, runtime=runtime)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if len(errors) == 1 and errors[0].get("type") == "missing" and tuple(errors[0].get("loc", ())) == ("body",):
            return _error(400, "the request has no body: send a JSON object")
        if any(e.get("type") == "json_invalid" for e in errors):
            ctx = errors[0].get("ctx", {})
            return _error(400, f"malformed JSON body: {ctx.get('error', 'cannot parse')}")
        return _error(422, f"invalid request: {_format_errors(errors)}",
                      detail=[{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors])

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

    def not_ready() -> JSONResponse | None:
        if runtime.setup_error:
            return _error(503, f"the model failed to load: {runtime.setup_error}")
        if not runtime.ready.is_set():
            return JSONResponse({"error": "the model is still loading"}, status_code=503, headers={"Retry-After": "5"})
        return None

    @app.get("/health", summary="Readiness: 503 LOADING until the model is loaded, then 200 UP")
    async def health() -> JSONResponse:
        if runtime.setup_error:
            return JSONResponse({"status": "ERROR", "error": runtime.setup_error}, status_code=503)
        if not runtime.ready.is_set():
            return JSONResponse({"status": "LOADING", "plugin": backend.backend_id}, status_code=503)
        body = {"status": "UP", "model_class": type(backend).__name__, "plugin": backend.backend_id,
                "model_version": backend.model_version()}
        if backend.trainable:
            trained = runtime.trained_projects()
            body.update(trained=bool(trained), trained_projects=trained)
        return JSONResponse({**body, **backend.health()})

    @app.post("/setup", summary="Label Studio connects a project: store its config, return the model version")
    async def setup(body: SetupRequest) -> JSONResponse:
        try:
            config = parse_label_config(body.label_config)
        # Label Studio drops the body of a failed /setup ("400 Client Error: Bad Request for url")
        # and tells the person to read the backend's console log: the reason must be logged.
        except LabelConfigError as exc:
            log.warning("/setup refused project %s: %s", body.project, exc)
            return _error(400, str(exc))
        if not backend.supported_controls(config):  # a refused config is not stored
            message = unsupported_message(runtime, config)
            log.warning("/setup refused project %s: %s", body.project, message)
            return _error(400, message)
        project = runtime.remember_project(str(body.project), body.label_config, body.hostname, body.access_token)
        return JSONResponse({"model_version": runtime.model_version(project.id)})

    @app.post("/predict", response_model=PredictResponse,
              summary="Predict tasks (batch or interactive): one result per task, in order")
    async def predict(body: PredictRequest, request: Request) -> JSONResponse:
        busy = not_ready()
        if busy is not None:
            return busy
        metrics = runtime.metrics
        if runtime.inflight >= runtime.core.max_inflight:
            metrics.rejected.inc()
            return JSONResponse({"error": f"overloaded: {runtime.inflight} predictions in flight "
                                 f"(MAX_INFLIGHT={runtime.core.max_inflight}); retry later"},
                                status_code=503, headers={"Retry-After": "1"})
        try:
            project = runtime.project(None if body.project is None else str(body.project), body.label_config)
        except LabelConfigError as exc:
            return _error(400, str(exc))
        except LookupError as exc:
            return _error(400, str(exc))
        if not backend.supported_controls(project.config):
            return _error(400, unsupported_message(runtime, project.config))
        version = project.trained_version or backend.model_version()
        tasks: list[Task] = []
        bad: dict[int, str] = {}
        for i, raw in enumerate(body.tasks):
            try:
                tasks.append(Task.from_dict(raw))
            except ValueError as exc:
                tid = raw.get("id") if isinstance(raw, dict) else None
                bad[i] = f"task #{i} (id {tid!r}) is malformed: {exc}"
                log.error(bad[i])
        runtime.inflight += 1
        metrics.inflight.inc()
        try:
            results = await runtime.predict(tasks, project, body.params or {}) if tasks else []
        finally:
            runtime.inflight -= 1
            metrics.inflight.dec()
        it = iter(results)
        merged = [
            {"result": [], "score": None, "model_version": version, "error": bad[i]} if i in bad else next(it)
            for i in range(len(body.tasks))
        ]
        return Response(dumps_json({"results": merged, "model_version": version}), media_type="application/json")

    @app.post("/webhook", summary="Label Studio events: START_TRAINING and annotation events")
    async def webhook(body: WebhookRequest) -> JSONResponse:
        action = body.action
        runtime.metrics.webhooks.labels(action=action if action.isupper() and len(action) < 40 else "other").inc()
        project = body.project or {}
        if not project.get("id"):
            return JSONResponse({"status": "ignored", "reason": "no project id in the event"})
        pid = project_id_of(project.get("id"))
        if project.get("label_config"):
            try:
                runtime.remember_project(pid, project["label_config"])
            except LabelConfigError:
                pass
        params = backend.train_on_event(action, body.model_dump(exclude={"action"})) if backend.trainable else None
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
            try:
                runtime.remember_project(str(body.project), body.label_config)
            except LabelConfigError as exc:
                return _error(400, str(exc))
        job = runtime.runner.submit("train", pid, {"tasks": body.annotations} if body.annotations else {})
        runtime.metrics.jobs.labels(kind="train").inc()
        return JSONResponse({"status": "queued", "job": job.id}, status_code=201)

    @app.get("/versions", summary="Model versions: the base version and every trained one")
    async def versions() -> dict:
        return {"versions": runtime.versions(), "model_version": backend.model_version()}

    @app.get("/jobs", summary="Jobs, newest first")
    async def list_jobs(project: str | None = Query(default=None), kind: str | None = Query(default=None)) -> dict:
        jobs = runtime.jobs.list(project=project_id_of(project) if project else None, kind=kind)
        return {"jobs": [j.to_dict() for j in jobs]}

    @app.post("/jobs", status_code=201, summary="Start a job (kind: train, ...)")
    async def create_job(body: JobRequest) -> JSONResponse:
        if body.kind not in runtime.job_handlers:
            return _error(400, f"unknown job kind {body.kind!r} for {backend.backend_id}; "
                               f"known: {sorted(runtime.job_handlers) or 'none'}")
        try:
            job = runtime.runner.submit(body.kind, project_id_of(str(body.project)), body.params,
                                        exclusive=body.kind in EXCLUSIVE_KINDS)
        except JobConflict as exc:
            return _error(409, str(exc), job=exc.job.id)
        runtime.metrics.jobs.labels(kind=body.kind).inc()
        return JSONResponse(job.to_dict(), status_code=201)

    def _job_or_404(job_id: str) -> Job:
        job = runtime.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/jobs/{job_id}", summary="One job's status, progress, error and result")
    async def get_job(job_id: str) -> dict:
        return _job_or_404(job_id).to_dict()

    @app.delete("/jobs/{job_id}", summary="Cancel a job")
    async def cancel_job(job_id: str) -> dict:
        _job_or_404(job_id)
        return runtime.runner.cancel(job_id).to_dict()

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    mount_backend_routes(app, runtime)
    return app


def mount_backend_routes(app: FastAPI, runtime: Runtime) -> None:
    """Mount the endpoints the backend adds in ``Backend.add_routes``; a path under one of
    core's own first segments (``/jobs/...``) is a configuration error, not a silent shadow."""
    from fastapi import APIRouter

    router = APIRouter()
    runtime.backend.add_routes(router, runtime)
    if not router.routes:
        return
    core_roots = {_root(route.path) for route in app.routes}
    clashes = sorted(route.path for route in router.routes if _root(route.path) in core_roots)
    if clashes:
        raise ValueError(f"backend {runtime.backend.backend_id} adds {', '.join(clashes)}, under paths core "
                         f"serves ({', '.join(sorted(core_roots))}): use its own prefix, e.g. /v1/...")
    app.include_router(router)


def _root(path: str) -> str:
    return "/" + path.strip("/").split("/", 1)[0]


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several worker processes): the backend spec comes
    from ``PRELABEL_SERVE_BACKEND``."""
    from prelabel.logsetup import configure_logging
    from prelabel.plugins import load_backend_class
    from prelabel.settings import CoreSettings

    core = CoreSettings()
    configure_logging(core.log_level, core.log_format)
    spec = os.environ["PRELABEL_SERVE_BACKEND"]
    runtime = Runtime(load_backend_class(spec), core)
    return create_app(runtime)
