"""The yolo backend: which controls it fills, how a control picks its model, batched prediction."""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prelabel import (
    Backend,
    ControlInfo,
    JobContext,
    MediaError,
    PredictContext,
    Prediction,
    Task,
    TaskError,
)
from prelabel_yolo import convert
from prelabel_yolo.models import (
    CACHE,
    DEFAULT_WEIGHTS,
    TRAINED_INFO,
    LoadedModel,
    ModelPathError,
    resolve_model_path,
    use_cpu_threads,
)
from prelabel_yolo.settings import YoloSettings

# output kind -> the ultralytics task of its default weights
KIND_TASK = {
    "boxes": "detect",
    "obb": "obb",
    "polygons": "segment",
    "brush": "segment",
    "keypoints": "pose",
    "choices": "classify",
    "video": "detect",
}
TRACKABLE = ("detect", "segment", "pose")
DECODE_THREADS = 4  # images of one call fetched and decoded at once, at most (each holds a decoded image)


def output_kind(control: ControlInfo) -> str:
    if control.tag == "RectangleLabels":
        return "obb" if control.attr("model_obb", False, bool) else "boxes"
    return {
        "PolygonLabels": "polygons",
        "BrushLabels": "brush",
        "KeyPointLabels": "keypoints",
        "Choices": "choices",
        "VideoRectangle": "video",
    }[control.tag]


@dataclass
class Plan:
    """How one control of a request is predicted: the model, the output kind, the threshold."""

    control: ControlInfo
    kind: str
    loaded: LoadedModel
    threshold: float
    iou: float | None


class YoloBackend(Backend):
    backend_id = "yolo"
    title = "Ultralytics YOLO"
    description = (
        "Detection, rotated boxes, segmentation (polygons or masks), classification, pose and "
        "video tracking with Ultralytics YOLO; trains detection/segmentation from annotations."
    )
    supports = {
        "RectangleLabels": frozenset({"Image"}),
        "PolygonLabels": frozenset({"Image"}),
        "BrushLabels": frozenset({"Image"}),
        "KeyPointLabels": frozenset({"Image"}),
        "Choices": frozenset({"Image"}),
        "VideoRectangle": frozenset({"Video"}),
    }
    max_batch_size = 8  # the default of YOLO_MAX_BATCH_SIZE: images per model call
    trainable = True
    default_port = 9093
    version = "base"
    Settings = YoloSettings

    def __init__(self, settings: YoloSettings | None = None, core: Any = None):
        super().__init__(settings, core)
        self.model_root = Path(self.settings.model_root or self.core.prelabel_home / "weights")
        self.device: str | None = None  # resolved by core, given to setup
        self.half: dict[str, Any] = {}
        self.cpu_threads: int | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def setup(self, device: str | None) -> None:
        # ultralytics reads its settings directory when first imported; keep it out of $HOME
        os.environ.setdefault("YOLO_CONFIG_DIR", str(self.core.prelabel_home / "ultralytics"))
        import torchvision  # noqa: F401  (seconds to import: pay it while /health says LOADING)
        import ultralytics  # noqa: F401  (fail at start-up, not at the first request)

        from prelabel_yolo.models import half_precision_args

        self.model_root.mkdir(parents=True, exist_ok=True)
        self.device = device or "cpu"
        self.half = half_precision_args() if self.settings.half and self.device.startswith("cuda") else {}
        CACHE.resize(self.settings.yolo_cache_models)
        if self.device == "cpu":
            self.cpu_threads = self.settings.yolo_cpu_threads or os.cpu_count() or 1
        self.log.info(
            "yolo on %s (half precision: %s, CPU threads: %s), MODEL_ROOT=%s",
            self.device,
            bool(self.half),
            self.cpu_threads,
            self.model_root,
        )

    def health(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "cpu_threads": self.cpu_threads,
            "model_root": str(self.model_root),
            "models_loaded": CACHE.loaded(),
        }

    # -- choosing a model -------------------------------------------------------------------
    def weights_for(self, control: ControlInfo, model_dir: Path | None = None) -> Path:
        """The project's trained weights for the control they were trained for, else the
        control's ``model_path`` under MODEL_ROOT, else the default weights of its kind."""
        if model_dir is not None and (model_dir / TRAINED_INFO).is_file():
            info = json.loads((model_dir / TRAINED_INFO).read_text())
            if info.get("control") == control.name:
                return model_dir / info["weights"]
        kind = output_kind(control)
        value = control.attr("model_path")
        try:
            path = (
                resolve_model_path(value, self.model_root)
                if value is not None
                else (self.model_root / DEFAULT_WEIGHTS[KIND_TASK[kind]])
            )
        except ModelPathError as exc:
            raise ModelPathError(f"{control.tag} {control.name!r}: {exc}") from None
        if not path.is_file():
            from prelabel_yolo.models import downloadable

            if not (self.settings.yolo_download and downloadable(path)):
                named = f"model_path={value!r} names" if value is not None else f"the default weights {path.name} are"
                off = " (YOLO_DOWNLOAD is off)" if downloadable(path) else ""
                raise ModelPathError(
                    f"{control.tag} {control.name!r}: {named} not a file in MODEL_ROOT "
                    f"({self.model_root}); put the weights there{off}"
                )
        return path

    def plan(self, control: ControlInfo, model_dir: Path | None) -> Plan:
        kind = output_kind(control)
        path = self.weights_for(control, model_dir)
        try:
            loaded = CACHE.get(path, self.device)
        except Exception as exc:
            raise TaskError(
                f"{control.name}: could not load YOLO weights {path.name}: {exc} (a default name is "
                f"downloaded into MODEL_ROOT on first use; offline, put the file there)"
            ) from exc
        tasks = convert.CONVERTERS[kind][1] if kind != "video" else TRACKABLE
        if loaded.task not in tasks:
            hint = ' (model_obb="true" needs an OBB model, e.g. yolo11n-obb.pt)' if kind == "obb" else ""
            raise TaskError(
                f"{control.name}: {path.name} is a {loaded.task} model; {control.tag} needs a "
                f"{' or '.join(tasks)} model{hint}"
            )
        threshold = control.score_threshold
        if threshold is None:
            threshold = control.attr("score_threshold", self.settings.yolo_score_threshold, float)
        iou = control.attr("model_iou", None, float) or control.attr("iou", None, float)
        return Plan(control, kind, loaded, threshold, iou)

    # -- prediction -------------------------------------------------------------------------
    def predict_args(self, plan: Plan) -> dict[str, Any]:
        args: dict[str, Any] = {
            "imgsz": self.settings.yolo_imgsz,
            "device": self.device,
            "max_det": self.settings.yolo_max_det,
        }
        if self.half:
            args.update(self.half)
        if plan.iou is not None:
            args["iou"] = plan.iou
        return args

    def predict(self, tasks: list[Task], ctx: PredictContext) -> list[Prediction | TaskError]:
        controls = self.supported_controls(ctx.config)
        outputs: list[list[dict] | TaskError] = [[] for _ in tasks]
        images: dict[tuple[int, str], Any] = {}
        for control in controls:
            try:
                plan = self.plan(control, ctx.model_dir)
            except TaskError as exc:
                ctx.log.error("%s", exc)
                outputs = [out if isinstance(out, TaskError) else exc for out in outputs]
                continue
            if plan.kind == "video":
                self._predict_videos(plan, tasks, ctx, outputs)
            else:
                self._predict_images(plan, tasks, ctx, images, outputs)
        return [out if isinstance(out, TaskError) else Prediction(out) for out in outputs]

    def _image(self, images: dict, index: int, task: Task, control: ControlInfo, ctx: PredictContext) -> Any:
        """A task's image as a BGR array (EXIF orientation applied), decoded once per request."""
        key = (index, control.object.data_key or control.object.value)
        if key not in images:
            images[key] = self._decode(task, key[1], control, ctx)
        found = images[key]
        if isinstance(found, TaskError):
            raise found
        return found

    @staticmethod
    def _decode(task: Task, data_key: str, control: ControlInfo, ctx: PredictContext) -> Any:
        """The image array, or the TaskError that says why there is none."""
        try:  # core's decoder: the EXIF orientation applied, the size checked before decoding
            return ctx.media.image_array(task.data.get(data_key, control.object.value), task.id, channels="BGR")
        except MediaError as exc:
            return TaskError(f"task {task.id}: {exc}")

    def _decode_ahead(
        self, images: dict, tasks: list[Task], outputs: list, control: ControlInfo, ctx: PredictContext
    ) -> None:
        """Fetch and decode the images of several tasks on several threads at once (downloads
        wait in parallel; Pillow releases the GIL while it decodes). One after another, a
        640x480 JPEG's 5 ms made decoding a third of a batched call's time on a CPU."""
        data_key = control.object.data_key or control.object.value
        todo = [i for i in range(len(tasks)) if not isinstance(outputs[i], TaskError) and (i, data_key) not in images]
        workers = min(len(todo), DECODE_THREADS)  # downloads overlap even on one core
        if workers < 2:
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="prelabel-yolo-decode") as pool:
            found = pool.map(lambda i: self._decode(tasks[i], data_key, control, ctx), todo)
            for i, image in zip(todo, found, strict=True):
                images[(i, data_key)] = image

    def _predict_images(self, plan: Plan, tasks: list[Task], ctx: PredictContext, images: dict, outputs: list) -> None:
        loaded = plan.loaded
        args = self.predict_args(plan)
        args.update(conf=plan.threshold, retina_masks=plan.kind == "brush")  # masks at the image's own size
        classes = convert.mapped_classes(plan.kind, plan.control, loaded.names)
        if classes is not None and not classes:
            ctx.log.warning(
                "%s: none of %s's classes maps to the labels %s; add predicted_values to a <Label> or "
                'model_skip="true" to the control (model classes: %s)',
                plan.control.name,
                loaded.path.name,
                list(plan.control.labels),
                list(loaded.names.values())[:50],
            )
            return
        if classes is not None:
            args["classes"] = classes
        self._decode_ahead(images, tasks, outputs, plan.control, ctx)
        ready: list[tuple[int, Any]] = []
        for i, task in enumerate(tasks):
            if not isinstance(outputs[i], TaskError):
                try:
                    ready.append((i, self._image(images, i, task, plan.control, ctx)))
                except TaskError as exc:
                    outputs[i] = exc
        if not ready:
            return
        converter = convert.CONVERTERS[plan.kind][0]
        # One model call per image size: ultralytics letterboxes a batch of differently sized
        # images to one square imgsz x imgsz (the tight, rect padding only for a single image
        # or a same-size batch), so a task's boxes would depend on the other tasks of its
        # request (bus.jpg with zidane.jpg lost a person and its boxes moved by up to 90 px).
        by_size: dict[tuple[int, ...], list[tuple[int, Any]]] = {}
        for i, image in ready:
            by_size.setdefault(tuple(image.shape[:2]), []).append((i, image))
        with loaded.lock, use_cpu_threads(self.cpu_threads):
            for group in by_size.values():
                loaded.calls += 1
                results = loaded.model.predict([image for _, image in group], verbose=False, **args)
                for (i, _), result in zip(group, results, strict=True):
                    outputs[i].extend(converter(plan.control, result, loaded.names, plan.threshold, config=ctx.config))

    def _predict_videos(self, plan: Plan, tasks: list[Task], ctx: PredictContext, outputs: list) -> None:
        from prelabel_yolo import video

        control = plan.control
        args = self.predict_args(plan)
        conf = control.attr("model_conf", None, float) or control.attr("conf", None, float)
        args["conf"] = conf if conf is not None else (control.score_threshold or 0.25)
        args["classes"] = None  # set per task from the <Labels> control
        tmp_root = self.core.prelabel_home / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        for i, task in enumerate(tasks):
            if isinstance(outputs[i], TaskError):
                continue
            try:
                labels = video.labels_control(ctx.config, control)
                args["classes"] = [c for c, name in plan.loaded.names.items() if labels.map_label(name)]
                if not args["classes"]:
                    raise TaskError(
                        f"{control.name}: none of {plan.loaded.path.name}'s classes maps to the labels "
                        f"of {labels.name} {list(labels.labels)}; add predicted_values to a <Label>"
                    )
                value = task.data.get(control.object.data_key or "", control.object.value)
                with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
                    tracker = video.tracker_config(control, self.model_root, Path(tmp))
                    path = video.video_file(ctx.media.fetch_path(value, task.id), Path(tmp))
                    outputs[i].extend(
                        video.track(plan.loaded, control, labels, path, tracker, cpu_threads=self.cpu_threads, **args)
                    )
            except TaskError as exc:
                outputs[i] = exc

    # -- training ---------------------------------------------------------------------------
    def fit(self, job: JobContext) -> dict[str, Any]:
        from prelabel_yolo.training import train

        return train(self, job)
