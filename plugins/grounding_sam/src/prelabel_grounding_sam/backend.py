"""The grounding_sam backend: text prompt -> Grounding DINO boxes -> SAM 2 masks, every region
labelled with one of the project's labels."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from prelabel_sam2 import (
    check_installed,
    check_model_files,
    decode_image,
    image_digest,
    mask_region,
)

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
from prelabel.regions import rectangle
from prelabel_grounding_sam.phrases import Phrase, label_phrases, prompt_phrases
from prelabel_grounding_sam.settings import GroundingSamSettings, dino_source

OUTPUT_TAGS = ("RectangleLabels", "BrushLabels", "PolygonLabels")
MASK_TAGS = ("BrushLabels", "PolygonLabels")
PROMPT_KEY = "grounding_sam.prompt"


class GroundingSamBackend(Backend):
    backend_id = "grounding_sam"
    title = "Grounding DINO + SAM 2 (text-prompted detection and segmentation)"
    description = (
        "Boxes (RectangleLabels) and masks (BrushLabels/PolygonLabels) for the project's labels, or for "
        "a TextArea prompt, from Grounding DINO and SAM 2; every region carries a project label."
    )
    supports = {tag: frozenset({"Image"}) for tag in OUTPUT_TAGS}
    max_batch_size = 4  # the default of GROUNDING_MAX_BATCH_SIZE: images per predict call
    default_port = 9092
    version = "gdino"
    Settings = GroundingSamSettings

    def __init__(self, settings: GroundingSamSettings | None = None, core: CoreSettings | None = None):
        super().__init__(settings, core)
        self.detector: Any = None
        self.sam: Any = None
        self.images_per_pass = 1
        self.embeddings = LruCache(self.settings.sam2_embedding_cache_size)
        self.timings = {"images": 0, "detect_seconds": 0.0, "segment_seconds": 0.0, "detector_calls": 0}

    @classmethod
    def preflight(cls, settings: GroundingSamSettings, core: CoreSettings) -> None:
        dino_source(settings, core)
        if settings.use_sam:
            check_installed()
            check_model_files(settings, core)

    def setup(self, device: str | None) -> None:
        import transformers  # noqa: F401  (fail at start-up, not at the first request)
        from prelabel_sam2 import load_model

        from prelabel_grounding_sam.detector import load_detector

        device = device or "cpu"
        source = dino_source(self.settings, self.core)
        self.detector = load_detector(source, device)
        # on a CPU a pass over 4 images took 1.6x as long as 4 passes of one (bench/grounding_sam.py)
        self.images_per_pass = self.settings.grounding_images_per_pass or (1 if device == "cpu" else 1 << 30)
        if self.settings.use_sam:
            check_installed()
            self.sam = load_model(check_model_files(self.settings, self.core), device, self.settings.sam2_image_size)
            self.embeddings = LruCache(
                self.settings.sam2_embedding_cache_size, lookup_counter(self.metrics, self.backend_id)
            )
        self.log.info("Grounding DINO %s%s on %s", source, f" + SAM 2 {self.sam.name}" if self.sam else "", device)

    def model_version(self) -> str:
        name = self.settings.grounding_dino_model.rstrip("/").rsplit("/", 1)[-1]
        return f"{self.backend_id}-{name}{'-sam2' if self.settings.use_sam else ''}"

    def health(self) -> dict[str, Any]:
        if self.detector is None:
            return {}
        info = {"device": self.detector.device, "grounding_dino": self.detector.source, "timings": dict(self.timings)}
        if self.sam is not None:
            info.update(sam2=self.sam.name, embedding_cache=self.embeddings.stats())
        return info

    def supported_controls(self, config: ParsedConfig) -> list[ControlInfo]:
        return [
            c for c in config.controls if c.tag in OUTPUT_TAGS and c.labels and any(o.tag == "Image" for o in c.objects)
        ]

    # -- prompts --------------------------------------------------------------------------
    def phrases(self, ctx: PredictContext, controls: list[ControlInfo]) -> list[Phrase]:
        """A TextArea prompt of the interactive context (remembered for the project, so the
        next Retrieve predictions uses it too; an empty one forgets it), else the remembered
        prompt, else the project's labels and their predicted_values/hint phrases."""
        regions = ctx.context_regions("textarea")
        if regions:
            typed = "\n".join(
                text
                for region in regions
                for text in (region.get("value") or {}).get("text") or []
                if isinstance(text, str)
            ).strip()
            if typed:
                ctx.state.set(PROMPT_KEY, typed)
            else:
                ctx.state.delete(PROMPT_KEY)
            prompt = typed
        else:
            prompt = ctx.state.get(PROMPT_KEY) or ""
        return (prompt_phrases(prompt, controls) if prompt else []) or label_phrases(controls)

    # -- prediction -------------------------------------------------------------------------
    def predict(self, tasks: list[Task], ctx: PredictContext) -> list[Prediction | TaskError]:
        controls = self.supported_controls(ctx.config)
        phrases = self.phrases(ctx, controls)
        by_object: dict[str, list[ControlInfo]] = {}
        for control in controls:
            by_object.setdefault(control.object.name, []).append(control)
        outputs: list[list[dict] | TaskError] = [[] for _ in tasks]
        for object_controls in by_object.values():
            self._predict_object(tasks, ctx, object_controls, phrases, outputs)
        return [out if isinstance(out, TaskError) else Prediction(out) for out in outputs]

    def _thresholds(self, control: ControlInfo) -> tuple[float, float]:
        box = control.attr("box_threshold", None, float)
        if box is None:
            box = control.score_threshold if control.score_threshold is not None else self.settings.box_threshold
        return box, control.attr("text_threshold", self.settings.text_threshold, float)

    def _predict_object(
        self, tasks: list[Task], ctx: PredictContext, controls: list[ControlInfo], phrases: list[Phrase], outputs: list
    ) -> None:
        obj = controls[0].object
        images: list[tuple[int, bytes, np.ndarray]] = []
        for i, task in enumerate(tasks):
            if isinstance(outputs[i], TaskError):
                continue
            try:
                value = task.data.get(obj.data_key) if obj.data_key else obj.value
                data = ctx.media.fetch_path(value, task.id).read_bytes()
                images.append((i, data, decode_image(data, self.core.media_max_pixels)))
            except TaskError as exc:
                outputs[i] = exc
        if not images:
            return
        thresholds = {c.name: self._thresholds(c) for c in controls}
        started = time.perf_counter()
        step = self.images_per_pass
        detections = [
            dets
            for start in range(0, len(images), step)
            for dets in self.detector.detect(
                [img for _, _, img in images[start : start + step]],
                phrases,
                min(b for b, _ in thresholds.values()),
                min(t for _, t in thresholds.values()),
                self.settings.grounding_nms_iou,
                self.settings.grounding_max_detections,
            )
        ]
        detected = time.perf_counter()
        masks = self._masks(images, detections) if any(c.tag in MASK_TAGS for c in controls) else {}
        self.timings["images"] += len(images)
        self.timings["detect_seconds"] += detected - started
        self.timings["segment_seconds"] += time.perf_counter() - detected
        self.timings["detector_calls"] = self.detector.calls
        for (i, _, image), dets in zip(images, detections, strict=True):
            height, width = image.shape[:2]
            for control in controls:
                box_min, text_min = thresholds[control.name]
                for k, det in enumerate(dets):
                    label = control.map_label(det.label)
                    if not label or det.score <= box_min or det.phrase_score <= text_min:
                        continue
                    x1, y1, x2, y2 = det.box
                    if control.tag == "RectangleLabels":
                        region = rectangle(control, label, x1, y1, x2 - x1, y2 - y1, width, height, score=det.score)
                    else:
                        mask = masks.get((i, k))
                        if mask is None:  # USE_SAM=false: the box itself as the shape
                            mask = np.zeros((height, width), bool)
                            mask[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))] = True
                        region = mask_region(
                            control,
                            label,
                            mask,
                            score=det.score,
                            tolerance=control.attr("polygon_tolerance", self.settings.sam2_polygon_tolerance, float),
                        )
                    if region is not None:
                        outputs[i].append(region)

    def _masks(self, images: list[tuple[int, bytes, np.ndarray]], detections: list) -> dict[tuple[int, int], Any]:
        """SAM 2 masks for every detected box, keyed by (task index, detection index). Images
        not in the embedding cache are encoded together, ``images_per_pass`` per pass."""
        if self.sam is None:
            return {}
        todo = [(n, item) for n, item in enumerate(images) if detections[n]]
        keys = {n: (self.sam.key, image_digest(data)) for n, (_, data, _) in todo}
        missing = [n for n, _ in todo if keys[n] not in self.embeddings]
        fresh: dict[int, Any] = {}
        step = self.images_per_pass
        if len(missing) > 1:  # the images the cache lacks, encoded up front
            for start in range(0, len(missing), step):
                part = missing[start : start + step]
                for n, embedding in zip(part, self.sam.embed_batch([images[n][2] for n in part]), strict=True):
                    self.embeddings.put(keys[n], embedding)
                    fresh[n] = embedding
        masks: dict[tuple[int, int], Any] = {}
        for n, (i, _, image) in todo:
            embedding = fresh.get(n)
            if embedding is None:
                embedding, _ = self.embeddings.get_or_compute(keys[n], lambda image=image: self.sam.embed(image))
            boxes = np.array([d.box for d in detections[n]], dtype=np.float32)
            found, _ = self.sam.segment_boxes(embedding, boxes)
            for k, mask in enumerate(found):
                masks[(i, k)] = mask
        return masks
