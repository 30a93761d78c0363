"""The sam3 backend: the project's labels as concept prompts (batch), smart boxes as exemplars
and smart clicks as point prompts (interactive), VideoRectangle tracks, and the SAM events."""

from __future__ import annotations

import time
from typing import Any

from prelabel import (
    Backend,
    ControlInfo,
    CoreSettings,
    LruCache,
    ParsedConfig,
    PredictContext,
    Prediction,
    Task,
    TaskError,
    lookup_counter,
)
from prelabel_sam3.events import Sam3Events
from prelabel_sam3.masks import MASK_TAGS, OUTPUT_TAGS, mask_region
from prelabel_sam3.model import Embedding, decode_image, image_digest
from prelabel_sam3.prompts import (
    Exemplar,
    context_clicks,
    context_exemplars,
    label_prompts,
    project_concepts,
    resolve_overlaps,
)
from prelabel_sam3.settings import Sam3Settings, check_installed, check_model_dir

EXEMPLARS_KEY = "sam3.exemplars"
EXEMPLARS_KEPT = 16  # the newest smart boxes of one label on one image that refine it
EXEMPLARS_TTL = 1800.0  # seconds: boxes of an earlier labeling session stop counting


class Sam3Backend(Sam3Events, Backend):
    backend_id = "sam3"
    title = "SAM 3 (concept segmentation with the project's labels as prompts)"
    description = (
        "Segment Anything 3: every instance of each project label (its text, predicted_values or hint as "
        "the prompt) as BrushLabels, PolygonLabels or RectangleLabels; smart boxes refine a label by "
        "exemplar, smart clicks segment one object; VideoRectangle tracks each label's objects."
    )
    supports = {
        "BrushLabels": frozenset({"Image"}),
        "PolygonLabels": frozenset({"Image"}),
        "RectangleLabels": frozenset({"Image"}),
        "VideoRectangle": frozenset({"Video"}),
    }
    max_batch_size = 4
    max_concurrency = 2  # the default of SAM3_MAX_CONCURRENCY
    default_port = 9097
    version = "sam3"
    Settings = Sam3Settings

    def __init__(self, settings: Sam3Settings | None = None, core: CoreSettings | None = None):
        super().__init__(settings, core)
        self.network: Any = None
        self.embeddings = LruCache(self.settings.sam3_embedding_cache_size)
        self._init_events()

    @classmethod
    def preflight(cls, settings: Sam3Settings, core: CoreSettings) -> None:
        check_installed()
        check_model_dir(settings, core)

    def setup(self, device: str | None) -> None:
        from prelabel_sam3.model import load_network

        check_installed()
        path = check_model_dir(self.settings, self.core)
        self.network = load_network(
            path,
            device or "cpu",
            self.settings.sam3_text_cache_size,
            prompt_batch=self.settings.sam3_prompt_batch,
        )
        self.embeddings = LruCache(
            self.settings.sam3_embedding_cache_size, lookup_counter(self.metrics, self.backend_id)
        )
        self.log.info(
            "SAM 3 %s (%s) on %s, embedding cache of %d",
            self.network.name,
            self.network.kind,
            self.network.device,
            self.embeddings.capacity,
        )

    def model_version(self) -> str:
        name = self.settings.sam3_model.rstrip("/").rsplit("/", 1)[-1] or "sam3"
        return f"{self.backend_id}-{name}"

    def health(self) -> dict[str, Any]:
        if self.network is None:
            return {}
        return {
            "device": self.network.device,
            "model": self.network.name,
            "checkpoint": self.network.kind,
            "embedding_cache": self.embeddings.stats(),
            "prompt_cache": self.network.texts.stats(),
        }

    def supported_controls(self, config: ParsedConfig) -> list[ControlInfo]:
        return [
            c
            for c in config.controls
            if (c.tag in OUTPUT_TAGS and c.labels and any(o.tag == "Image" for o in c.objects))
            or (c.tag == "VideoRectangle" and any(o.tag == "Video" for o in c.objects))
        ]

    def output_controls(self, config: ParsedConfig) -> list[ControlInfo]:
        """The image controls batch pre-annotation fills: a smart RectangleLabels beside a
        mask control on the same image is the annotator's exemplar tool, not an output."""
        controls = [c for c in self.supported_controls(config) if c.tag in OUTPUT_TAGS]
        masked = {c.object.name for c in controls if c.tag in MASK_TAGS}
        return [
            c
            for c in controls
            if not (c.tag == "RectangleLabels" and c.object.name in masked and c.attr("smart", False, bool))
        ]

    # -- prediction -------------------------------------------------------------------------
    def predict(self, tasks: list[Task], ctx: PredictContext) -> list[Prediction | TaskError | None]:
        from prelabel.sam_events import dispatch_sam_event

        handled = dispatch_sam_event(self, tasks, ctx)
        if handled is not None:
            return handled
        regions = ctx.context_regions()
        out: list[Prediction | TaskError | None] = []
        for task in tasks:
            try:
                result = self._interactive(task, ctx, regions) if regions else self._batch(task, ctx)
                out.append(Prediction(result) if result else None)
            except ValueError as exc:  # a context region Label Studio would not send
                out.append(TaskError(f"task {task.id}: bad interactive context: {exc}"))
            except TaskError as exc:
                out.append(exc)
        return out

    def threshold(self, control: ControlInfo) -> float:
        found = control.score_threshold
        return self.settings.sam3_score_threshold if found is None else found

    def _batch(self, task: Task, ctx: PredictContext) -> list[dict]:
        """Every label of every output control as a prompt: one encoder pass per image and one
        batched decoder pass for all its prompts; VideoRectangle controls are tracked."""
        result: list[dict] = []
        by_object: dict[str, list[ControlInfo]] = {}
        for control in self.output_controls(ctx.config):
            by_object.setdefault(control.object.name, []).append(control)
        for controls in by_object.values():
            concepts = project_concepts(controls)
            if not concepts.texts:
                continue
            embedding = self.embedding(task, ctx, controls[0])
            floor = min(self.threshold(c) for c in controls)
            found = self.network.detect(embedding, concepts.texts, floor, self.settings.sam3_mask_threshold)
            for control in controls:
                candidates = [
                    (label, inst.score, inst.mask)
                    for text, instances in zip(concepts.texts, found, strict=True)
                    for name, label in concepts.targets[text]
                    if name == control.name
                    for inst in instances
                    if inst.score >= self.threshold(control)
                ]
                result += self._regions(control, candidates)
        videos = [c for c in self.supported_controls(ctx.config) if c.tag == "VideoRectangle"]
        if videos:
            from prelabel_sam3.video import track_concepts

            for control in videos:
                result += track_concepts(self, task, ctx, control)
        return result

    def _regions(self, control: ControlInfo, candidates: list[tuple[str, float, Any]]) -> list[dict]:
        kept = resolve_overlaps(candidates, self.settings.sam3_overlap_iou)[: self.settings.sam3_max_instances]
        tolerance = control.attr("polygon_tolerance", self.settings.sam3_polygon_tolerance, float)
        regions = (mask_region(control, label, mask, score=score, tolerance=tolerance) for label, score, mask in kept)
        return [r for r in regions if r is not None]

    # -- interactive --------------------------------------------------------------------------
    def _interactive(self, task: Task, ctx: PredictContext, regions: list[dict]) -> list[dict]:
        result: list[dict] = []
        for to_name, boxes in context_exemplars(regions).items():
            result += self.refine(task, ctx, to_name, boxes)
        for to_name, clicks in context_clicks(regions).items():
            control = self.click_control(ctx.config, to_name, clicks.names)
            if control is None:
                ctx.log.info("no BrushLabels/PolygonLabels/RectangleLabels on %r for the clicks", to_name)
                continue
            embedding = self.embedding(task, ctx, control, points=True)
            mask, score = self.network.segment_points(
                embedding, clicks.pixels(embedding.width, embedding.height), clicks.labels
            )
            label = next((m for m in map(control.map_label, clicks.names) if m), control.labels[0])
            region = mask_region(
                control,
                label,
                mask,
                score=score,
                tolerance=control.attr("polygon_tolerance", self.settings.sam3_polygon_tolerance, float),
            )
            if region is not None:
                result.append(region)
        drawn = [r for r in regions if r.get("type") == "videorectangle"]
        for control in (c for c in self.supported_controls(ctx.config) if c.tag == "VideoRectangle"):
            mine = [r for r in drawn if r.get("to_name") in control.to_name]
            if mine:
                result += self.track_drawn_boxes(task, ctx, control, mine)
        return result

    def refine(self, task: Task, ctx: PredictContext, to_name: str, boxes: list[Exemplar]) -> list[dict]:
        """A smart box: the label's concept with this box (and the label's earlier smart boxes
        on this image, positive or Alt-negative) as exemplars -> every matching instance."""
        label = boxes[-1].label
        control = self.box_control(ctx.config, to_name, label)
        if control is None:
            ctx.log.info("no output control on %r for a %r box; nothing to fill", to_name, label)
            return []
        mapped = control.map_label(label) or control.labels[0]
        exemplars = self.remember_exemplars(ctx, task, to_name, mapped, boxes)
        texts = label_prompts(control, mapped)
        embedding = self.embedding(task, ctx, control)
        found = self.network.detect(
            embedding,
            texts,
            self.threshold(control),
            self.settings.sam3_mask_threshold,
            boxes=[e.pixels(embedding.width, embedding.height) for e in exemplars],
            box_labels=[1 if e.positive else 0 for e in exemplars],
        )
        return self._regions(control, [(mapped, inst.score, inst.mask) for instances in found for inst in instances])

    def remember_exemplars(
        self, ctx: PredictContext, task: Task, to_name: str, label: str, boxes: list[Exemplar]
    ) -> list[Exemplar]:
        """This request's boxes added to the label's recent boxes on this task's image (Label
        Studio sends each smart box alone); kept in the project state, so every replica sees them."""
        key = f"{EXEMPLARS_KEY}.{task.id}.{to_name}.{label}"
        now = time.time()
        stored = ctx.state.get(key) or {}
        earlier = (
            [Exemplar.from_json(e) for e in stored.get("boxes", [])]
            if now - stored.get("at", 0) < EXEMPLARS_TTL
            else []
        )
        merged: list[Exemplar] = []
        for box in earlier + boxes:
            merged = [e for e in merged if e.box != box.box] + [box]  # the same box again: its latest sign
        merged = merged[-EXEMPLARS_KEPT:]
        ctx.state.set(key, {"at": now, "boxes": [e.to_json() for e in merged]})
        return merged

    def box_control(self, config: ParsedConfig, to_name: str, label: str) -> ControlInfo | None:
        """Where a smart box's instances go: a mask control with its label, else one without
        it, else a RectangleLabels with it (a boxes-only project)."""
        controls = [c for c in self.supported_controls(config) if c.tag in OUTPUT_TAGS and to_name in c.to_name]
        ranked = (
            [c for c in controls if c.tag in MASK_TAGS and c.map_label(label)]
            + [c for c in controls if c.tag in MASK_TAGS]
            + [c for c in controls if c.tag == "RectangleLabels" and c.map_label(label)]
            + [c for c in controls if c.tag == "RectangleLabels"]
        )
        return ranked[0] if ranked else None

    def click_control(self, config: ParsedConfig, to_name: str, labels: list[str]) -> ControlInfo | None:
        controls = [c for c in self.supported_controls(config) if c.tag in OUTPUT_TAGS and to_name in c.to_name]
        ranked = (
            [c for c in controls if c.tag in MASK_TAGS and any(c.map_label(n) for n in labels)]
            + [c for c in controls if c.tag in MASK_TAGS]
            + controls
        )
        return ranked[0] if ranked else None

    # -- images and their encodings -------------------------------------------------------------
    def image(self, task: Task, ctx: PredictContext, control: ControlInfo) -> tuple[str, bytes]:
        obj = control.object
        value = task.data.get(obj.data_key) if obj.data_key else obj.value
        if not isinstance(value, str) or not value:
            raise TaskError(f"task {task.id} has no {obj.data_key or obj.name!r} image URL in its data")
        data = ctx.media.fetch_path(value, task.id).read_bytes()
        return image_digest(data), data

    def embedding(self, task: Task, ctx: PredictContext, control: ControlInfo, points: bool = False) -> Embedding:
        """The image's encoding for concept prompts (or, ``points``, for clicks): from the
        cache when this model saw this image before."""
        digest, data = self.image(task, ctx, control)
        kind = "points" if points else "concepts"
        network = self.network

        def compute() -> Embedding:
            image = decode_image(data, self.core.media_max_pixels)
            return network.embed_for_points(image) if points else network.embed(image)

        return self.embeddings.get_or_compute((network.key, kind, digest), compute)[0]
