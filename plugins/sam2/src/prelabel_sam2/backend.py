"""The sam2 backend: interactive clicks/box -> one mask, and VideoRectangle propagation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prelabel import (
    Backend,
    ControlInfo,
    CoreSettings,
    JobContext,
    LruCache,
    PredictContext,
    Prediction,
    Task,
    TaskError,
    lookup_counter,
)
from prelabel_sam2.embedstore import EmbeddingStore, model_key
from prelabel_sam2.events import Sam2Events
from prelabel_sam2.masks import mask_region
from prelabel_sam2.model import Embedding, decode_image, image_digest
from prelabel_sam2.prompts import ImagePrompt, image_prompts, video_objects
from prelabel_sam2.settings import Sam2Settings, check_installed, check_model_files, resolve_config

OUTPUT_TAGS = ("BrushLabels", "PolygonLabels")


class Sam2Backend(Sam2Events, Backend):
    backend_id = "sam2"
    title = "SAM 2 (interactive segmentation)"
    description = (
        "Segment Anything 2: clicks (KeyPointLabels) and a box (RectangleLabels) -> a mask as "
        "BrushLabels or PolygonLabels; VideoRectangle boxes propagated through the next frames."
    )
    supports = {
        "BrushLabels": frozenset({"Image"}),
        "PolygonLabels": frozenset({"Image"}),
        "VideoRectangle": frozenset({"Video"}),
    }
    max_batch_size = 4
    max_concurrency = 2  # the default of SAM2_MAX_CONCURRENCY
    default_port = 9091
    version = "sam2"
    Settings = Sam2Settings

    def __init__(self, settings: Sam2Settings | None = None, core: CoreSettings | None = None):
        super().__init__(settings, core)
        self.model: Any = None
        self.embeddings = LruCache(self.settings.sam2_embedding_cache_size)
        self.store: EmbeddingStore | None = None  # the on-disk cache the embed job fills
        self.store_key: str | None = None  # this model's directory in it
        self._init_events()

    @classmethod
    def preflight(cls, settings: Sam2Settings, core: CoreSettings) -> None:
        check_installed()
        check_model_files(settings, core)

    def setup(self, device: str | None) -> None:
        from prelabel_sam2.model import load_model

        check_installed()
        files = check_model_files(self.settings, self.core)
        self.model = load_model(files, device or "cpu", self.settings.sam2_image_size)
        self.embeddings = LruCache(
            self.settings.sam2_embedding_cache_size, lookup_counter(self.metrics, self.backend_id)
        )
        if self.settings.sam2_embedding_disk_mb > 0:
            self.store = EmbeddingStore(
                self.settings.embedding_root(self.core, self.backend_id),
                self.settings.sam2_embedding_disk_mb * 1024 * 1024,
                lookup_counter(self.metrics, self.backend_id, "embedding_disk"),
            )
            self.store_key = model_key(self.model_version(), self.model)
        self.log.info(
            "SAM 2 %s on %s, embedding cache of %d%s",
            self.model.name,
            self.model.device,
            self.embeddings.capacity,
            f", on disk in {self.store.root}" if self.store else "",
        )

    def job_handlers(self) -> dict[str, Callable[[JobContext], dict]]:
        from prelabel_sam2.embedjob import run_embed_job

        return {"embed": lambda job: run_embed_job(self, job)}

    def model_version(self) -> str:
        config = Path(resolve_config(self.settings.model_config_name)[0]).stem
        size = f"-{self.settings.sam2_image_size}" if self.settings.sam2_image_size else ""
        return f"{self.backend_id}-{config}{size}"

    def health(self) -> dict[str, Any]:
        if self.model is None:
            return {}
        info = {"device": self.model.device, "model": self.model.name, "embedding_cache": self.embeddings.stats()}
        if self.store is not None:
            info["embedding_disk"] = {**self.store.stats(), "model_key": self.store_key}
        return info

    # -- prediction -------------------------------------------------------------------------
    def predict(self, tasks: list[Task], ctx: PredictContext) -> list[Prediction | TaskError | None]:
        from prelabel.sam_events import dispatch_sam_event

        handled = dispatch_sam_event(self, tasks, ctx)  # Label Studio's SAM tool: params.context.event
        if handled is not None:
            return handled
        regions = ctx.context_regions()
        if not regions:
            return [None] * len(tasks)  # SAM 2 answers clicks and boxes; nothing to do without them
        controls = self.supported_controls(ctx.config)
        out: list[Prediction | TaskError | None] = []
        for task in tasks:
            try:
                out.append(self._predict_task(task, ctx, controls, regions))
            except ValueError as exc:  # a context region Label Studio would not send
                out.append(TaskError(f"task {task.id}: bad interactive context: {exc}"))
            except TaskError as exc:
                out.append(exc)
        return out

    def _predict_task(
        self, task: Task, ctx: PredictContext, controls: list[ControlInfo], regions: list[dict]
    ) -> Prediction | None:
        result: list[dict] = []
        scores: list[float] = []
        prompts = image_prompts(regions)
        if not prompts and any(r.get("type") == "keypointlabels" for r in regions):
            ctx.log.info(
                "task %s: only negative (or Background) clicks, nothing to segment: the labeling UI sends "
                "clicks of one label at a time, so mark negatives with Alt+click on the object's label",
                task.id,
            )
        for to_name, prompt in prompts.items():
            control = output_control(controls, to_name, prompt.labels)
            if control is None:
                ctx.log.info("no BrushLabels/PolygonLabels on %r for the clicks; nothing to fill", to_name)
                continue
            region = self.segment(task, ctx, control, prompt)
            if region is not None:
                result.append(region)
                scores.append(region["score"])
        objects = video_objects(regions)
        for control in (c for c in controls if c.tag == "VideoRectangle"):
            mine = [o for o in objects if o.to_name in control.to_name]
            if mine:
                result += self.track(task, ctx, control, mine)
        if not result:
            return None
        return Prediction(result, score=min(scores) if scores else None)

    def segment(self, task: Task, ctx: PredictContext, control: ControlInfo, prompt: ImagePrompt) -> dict | None:
        """One mask for the prompt, as the region ``control`` takes; None when it is empty."""
        embedding = self.embedding(task, ctx, control)
        points, point_labels, box = prompt.pixels(embedding.width, embedding.height)
        mask, score = self.model.segment(embedding, points, point_labels, box, multimask=self.settings.sam2_multimask)
        label = choose_label(control, prompt.labels)
        tolerance = control.attr("polygon_tolerance", self.settings.sam2_polygon_tolerance, float)
        return mask_region(control, [label] if label else [], mask, score=score, tolerance=tolerance)

    def embedding(self, task: Task, ctx: PredictContext, control: ControlInfo) -> Any:
        """The task image's embedding: from memory when this process saw the image, else from
        the disk cache (the embed job or another replica wrote it), else encoded now."""
        obj = control.object
        value = task.data.get(obj.data_key) if obj.data_key else obj.value
        data = ctx.media.fetch_path(value, task.id).read_bytes()
        digest = image_digest(data)
        key = (self.model.key, digest)
        embedding, _ = self.embeddings.get_or_compute(key, lambda: self.load_or_embed(digest, data))
        return embedding

    def load_or_embed(self, digest: str, data: bytes) -> Embedding:
        """The embedding from the disk cache, or encoded and written there for the next process."""
        if self.store is not None:
            found = self.store.get(self.store_key, digest, self.model.device)
            if found is not None:
                return found
        embedding = self.model.embed(decode_image(data, self.core.media_max_pixels))
        if self.store is not None:
            try:
                self.store.put(self.store_key, digest, embedding)
            except OSError as exc:  # a full or read-only volume costs the next click, not this one
                self.log.warning("could not write the embedding to %s: %s", self.store.root, exc)
        return embedding

    def track(self, task: Task, ctx: PredictContext, control: ControlInfo, objects: list) -> list[dict]:
        from prelabel_sam2.video import propagate

        obj = control.object
        value = task.data.get(obj.data_key) if obj.data_key else obj.value
        path = ctx.media.fetch_path(value, task.id)
        frames = control.attr("max_frames_to_track", self.settings.max_frames_to_track, int)
        return propagate(
            self.model,
            control,
            objects,
            path,
            max(1, frames),
            self.core.prelabel_home / "tmp",
            self.core.media_max_pixels,
        )


def output_control(controls: list[ControlInfo], to_name: str, labels: list[str]) -> ControlInfo | None:
    """The BrushLabels/PolygonLabels on ``to_name`` that has the clicked label, else the first."""
    candidates = [c for c in controls if c.tag in OUTPUT_TAGS and to_name in c.to_name]
    for control in candidates:
        if any(control.map_label(label) for label in labels):
            return control
    return candidates[0] if candidates else None


def choose_label(control: ControlInfo, labels: list[str]) -> str | None:
    """The label selected with the clicks (mapped to the control's labels, ``predicted_values``
    included); a control with other labels gets its first one, so the mask is never unlabeled."""
    for label in labels:
        mapped = control.map_label(label)
        if mapped:
            return mapped
    return control.labels[0] if control.labels else None
