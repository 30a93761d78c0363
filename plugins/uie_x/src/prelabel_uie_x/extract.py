"""POST /v1/extract: UIE outside Label Studio (seed 004's "API service").

One text, or one document image given as a URL, a path under UIE_ALLOWED_ROOT, or base64,
plus a Taskflow schema; the answer is Taskflow's extraction as JSON (documents add the OCR
text the offsets index, and pixel boxes per span). With ``project``, the project's trained
version answers, and Label Studio URLs use that project's credentials.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prelabel import MediaError, PathEscapeError, resolve_under
from prelabel_uie_x.ocr import content
from prelabel_uie_x.results import flatten

Schema = str | list[str | dict[str, Any]] | dict[str, Any]


class ExtractRequest(BaseModel):
    """Exactly one of text, image, path, image_base64."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    extraction_schema: Schema = Field(
        alias="schema",
        description='What to extract, as Taskflow takes it: ["Person", "Date"], or '
        '{"Person": ["Employer"]} for relations.',
    )
    text: str | None = Field(None, description="A text to extract from.")
    image: str | None = Field(None, description="A document image URL: http(s), data:, or a Label Studio path.")
    path: str | None = Field(None, description="A document image path relative to UIE_ALLOWED_ROOT.")
    image_base64: str | None = Field(None, description="A document image, base64-encoded.")
    project: str | int | None = Field(None, description="Use this project's trained version and credentials.")
    include_ocr: bool = Field(False, description="Documents: add the OCR lines (box, text, score).")

    @model_validator(mode="after")
    def _one_input(self) -> ExtractRequest:
        given = [k for k in ("text", "image", "path", "image_base64") if getattr(self, k) not in (None, "")]
        if len(given) != 1:
            raise ValueError(f"send exactly one of text, image, path, image_base64 (got {given or 'none'})")
        if not self.extraction_schema:
            raise ValueError('schema is empty: name what to extract, e.g. ["Person", "Date"]')
        return self


class InputProblem(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _image_source(body: ExtractRequest, backend: Any, ctx: Any, project: Any) -> Any:
    """Bytes or a local file for the request's image."""
    core = ctx.core
    if body.image_base64 is not None:
        raw = body.image_base64.split(",", 1)[1] if body.image_base64.startswith("data:") else body.image_base64
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputProblem(400, f"image_base64 is not valid base64: {exc}") from exc
    if body.path is not None:
        root = ctx.settings.uie_allowed_root
        if root is None:
            raise InputProblem(
                403,
                "local paths are switched off: set UIE_ALLOWED_ROOT to the directory /v1/extract may read images from",
            )
        try:
            path = resolve_under(root, body.path, "path")
        except PathEscapeError as exc:
            raise InputProblem(400, str(exc)) from exc
        if not path.is_file():
            raise InputProblem(404, f"no file {body.path!r} under UIE_ALLOWED_ROOT")
        if path.stat().st_size > core.media_max_bytes:
            raise InputProblem(413, f"{body.path} is larger than MEDIA_MAX_BYTES={core.media_max_bytes}")
        return path
    # the Label Studio token goes only to Label Studio: core's fetcher enforces it
    fetcher = ctx.media(project)
    try:
        return fetcher.fetch_path(body.image)
    except MediaError as exc:
        raise InputProblem(400, f"the image could not be fetched: {exc}") from exc


def run_extract(body: ExtractRequest, backend: Any, ctx: Any) -> dict[str, Any]:
    project, model_dir, version = None, None, backend.model_version()
    if body.project is not None:
        try:
            project = ctx.project(str(body.project))
        except LookupError:
            project = None  # no config stored: the base model answers
        if project is not None and project.trained_dir is not None:
            model_dir, version = project.trained_dir, project.trained_version
    engine = backend.engine(model_dir)
    if body.text is not None:
        return {"model_version": version, "result": flatten(engine.extract([body.text], body.extraction_schema)[0])}
    source = _image_source(body, backend, ctx, project)
    try:
        image = ctx.media(project).open_image(source)
    except MediaError as exc:
        raise InputProblem(422, str(exc)) from exc
    segments, doc = backend.read_document(image)
    found = engine.extract([doc], body.extraction_schema)[0] if doc is not None else {}
    answer: dict[str, Any] = {
        "model_version": version,
        "result": flatten(found),
        "text": content(segments),
        "image_size": [image.width, image.height],
    }
    if body.include_ocr:
        answer["ocr"] = [{"box": seg.box, "text": seg.text, "score": round(seg.score, 4)} for seg in segments]
    return answer


def add_extract_route(router: APIRouter, backend: Any, ctx: Any) -> None:
    """``ctx`` is core's RouteContext; core answers 503 for the route until the model is ready."""

    @router.post("/v1/extract", summary="Extract from a text or a document image with a schema (no Label Studio)")
    async def extract(body: ExtractRequest) -> JSONResponse:
        try:
            answer = await anyio.to_thread.run_sync(run_extract, body, backend, ctx)
        except InputProblem as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except (TypeError, ValueError) as exc:  # Taskflow's own schema checks
            return JSONResponse({"error": f"could not extract: {exc}"}, status_code=400)
        return JSONResponse(answer)
