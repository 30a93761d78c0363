"""The ``embed`` job: encode every image of a project ahead of the annotators' clicks.

``POST /jobs {"kind": "embed", "project": <id>}`` pages through the project's tasks in Label
Studio (or takes ``params.tasks``, a list of ``{"id", "data"}``), fetches each image the
project's mask controls point at, and writes its embedding to the on-disk cache
(:mod:`prelabel_sam2.embedstore`). The first click on any task then loads the embedding from
disk instead of running the image encoder. Images already in the cache for this model are
skipped, so a second run only encodes new tasks; a task whose image cannot be fetched or
decoded is counted and listed, never fatal; the job cancels between batches.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prelabel import JobContext, Task
from prelabel_sam2.model import decode_image, image_digest

if TYPE_CHECKING:
    from prelabel_sam2.backend import Sam2Backend

PAGE_SIZE = 100
MAX_LISTED_FAILURES = 100
READY_TIMEOUT_SECONDS = 3600.0


def project_tasks(ctx: JobContext) -> Iterator[Task]:
    """``params.tasks`` when given, else every task of the project in Label Studio."""
    if ctx.params.get("tasks") is not None:
        if not isinstance(ctx.params["tasks"], list):
            raise ValueError('params.tasks must be a list of tasks ({"id": ..., "data": {...}})')
        for raw in ctx.params["tasks"]:
            yield Task.from_dict(raw)
        return
    client = ctx.runtime.label_studio(ctx.project)
    for raw in client.tasks.list(project=int(ctx.project), page_size=PAGE_SIZE, fields="all", include="id,data"):
        yield Task(raw.id, dict(raw.data or {}))


def task_count(ctx: JobContext) -> int:
    """How many tasks the job will see (for progress); 0 when Label Studio does not say."""
    if ctx.params.get("tasks") is not None:
        return len(ctx.params["tasks"]) if isinstance(ctx.params["tasks"], list) else 0
    info = ctx.runtime.label_studio(ctx.project).projects.get(id=int(ctx.project))
    return int(getattr(info, "task_number", 0) or 0)


def image_keys(backend: Sam2Backend, ctx: JobContext) -> list[tuple[str, str | None]]:
    """(data key, fixed value) of each Image the project's BrushLabels/PolygonLabels fill."""
    config = ctx.config
    if config is None:
        config = ctx.runtime.fetch_config(ctx.project)  # no /setup yet: ask Label Studio
    keys: list[tuple[str, str | None]] = []
    for control in backend.supported_controls(config):
        obj = control.object
        if obj.tag == "Image" and (obj.data_key, obj.value) not in keys:
            keys.append((obj.data_key, obj.value))
    if not keys:
        raise ValueError(
            f"the project has no BrushLabels/PolygonLabels on an Image to embed images for ({config.describe()})"
        )
    return keys


def run_embed_job(backend: Sam2Backend, ctx: JobContext) -> dict[str, Any]:
    """Params: ``batch_size`` (images per encoder pass, default the backend's max_batch_size),
    ``tasks`` (optional list of tasks instead of the project's)."""
    runtime = ctx.runtime
    if not runtime.ready.wait(READY_TIMEOUT_SECONDS) or backend.model is None:
        raise RuntimeError(f"the model is not loaded: {runtime.setup_error or 'still loading'}")
    store = backend.store
    if store is None:
        raise ValueError("the on-disk embedding cache is off (SAM2_EMBEDDING_DISK_MB=0): set it to a size in MB")
    batch_size = max(1, int(ctx.params.get("batch_size") or backend.max_batch_size))
    keys = image_keys(backend, ctx)
    total = task_count(ctx)
    media = ctx.media
    counts = {"tasks": 0, "images": 0, "embedded": 0, "already_cached": 0, "duplicates": 0, "failed": 0}
    failures: list[dict[str, Any]] = []
    seen: set[str] = set()
    encode_seconds = 0.0
    started = time.perf_counter()

    def fail(task: Task, exc: Exception) -> None:
        counts["failed"] += 1
        if len(failures) < MAX_LISTED_FAILURES:
            failures.append({"task": task.id, "error": f"{type(exc).__name__}: {exc}"})

    def fetched() -> Iterator[tuple[Task, bytes | Exception]]:
        """Each task's image bytes (downloads run ahead of the encoder in a thread)."""
        for task in project_tasks(ctx):
            counts["tasks"] += 1
            for data_key, fixed in keys:
                value = task.data.get(data_key) if data_key else fixed
                if not isinstance(value, str) or not value:
                    continue
                try:
                    yield task, media.fetch(value, task.id)
                except Exception as exc:  # one unreachable image never stops the job
                    yield task, exc

    def flush(batch: list[tuple[Task, str, Any]]) -> None:
        nonlocal encode_seconds
        begun = time.perf_counter()
        embeddings = backend.model.embed_batch([image for _, _, image in batch])
        for (_, digest, _), embedding in zip(batch, embeddings, strict=True):
            store.put(backend.store_key, digest, embedding)
            counts["embedded"] += 1
        encode_seconds += time.perf_counter() - begun

    ctx.progress(0.0, f"embedding images for model {backend.store_key}")
    batch: list[tuple[Task, str, Any]] = []
    for task, data in ctx.prefetch(fetched(), depth=2 * batch_size):
        if isinstance(data, Exception):
            fail(task, data)
            continue
        counts["images"] += 1
        digest = image_digest(data)
        if digest in seen:
            counts["duplicates"] += 1
            continue
        seen.add(digest)
        if (backend.store_key, digest) in store:
            counts["already_cached"] += 1
            continue
        try:
            batch.append((task, digest, decode_image(data, backend.core.media_max_pixels)))
        except Exception as exc:
            fail(task, exc)
            continue
        if len(batch) >= batch_size:
            flush(batch)
            batch = []
            # raises JobCancelled when asked to stop: every embedding written so far stays usable
            ctx.progress(counts["tasks"] / max(total, counts["tasks"], 1), _message(counts))
    if batch:
        flush(batch)
    elapsed = time.perf_counter() - started
    ctx.progress(1.0, _message(counts))
    return {
        **counts,
        "model_key": backend.store_key,
        "failures": failures,
        "seconds": round(elapsed, 3),
        "images_per_second": round(counts["embedded"] / elapsed, 3) if elapsed else None,
        "encoder_images_per_second": round(counts["embedded"] / encode_seconds, 3) if encode_seconds else None,
    }


def _message(counts: dict[str, int]) -> str:
    return (
        f"{counts['tasks']} tasks, {counts['embedded']} images embedded, {counts['already_cached']} already "
        f"cached, {counts['failed']} failed"
    )
