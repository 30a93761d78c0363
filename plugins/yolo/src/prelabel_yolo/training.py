"""Training: the project's RectangleLabels/PolygonLabels annotations -> a YOLO dataset ->
ultralytics training -> mAP50 on a held-out split -> weights in the job's workdir.

Core promotes the workdir to a new model version only when this returns, so a failed or
cancelled run leaves the served model as it was.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prelabel import ControlInfo, JobContext, ParsedConfig, exif_orientation
from prelabel_yolo.models import TRAINED_INFO

if TYPE_CHECKING:
    from prelabel_yolo.backend import YoloBackend

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
TRAIN_TASK = {"RectangleLabels": "detect", "PolygonLabels": "segment"}


def trainable_control(config: ParsedConfig) -> ControlInfo:
    """The control a training run learns: the first RectangleLabels (axis-aligned) on an
    Image, else the first PolygonLabels on an Image."""
    for tag in ("RectangleLabels", "PolygonLabels"):
        for control in config.controls:
            if (
                control.tag == tag
                and any(o.tag == "Image" for o in control.objects)
                and not control.attr("model_obb", False, bool)
                and not control.attr("model_skip", False, bool)
            ):
                return control
    raise ValueError(f"training needs RectangleLabels or PolygonLabels on an Image; the config has {config.describe()}")


def _clamp(v: float) -> float:
    return min(1.0, max(0.0, v))


def label_rows(control: ControlInfo, result: list[dict]) -> list[str]:
    """YOLO label lines (class index, normalized coordinates) for one annotation's regions."""
    rows = []
    for region in result:
        value = region.get("value") or {}
        if region.get("from_name") != control.name:
            continue
        labels = [lab for lab in value.get(control.value_key) or [] if lab in control.label_set]
        if not labels:
            continue
        cls = control.labels.index(labels[0])
        if control.tag == "RectangleLabels":
            x, y, w, h = (float(value[k]) / 100 for k in ("x", "y", "width", "height"))
            angle = math.radians(float(value.get("rotation") or 0))
            # Label Studio rotates about the top-left corner; train on the rotated box's extent
            cos, sin = math.cos(angle), math.sin(angle)
            corners = [
                (x + dx * cos - dy * sin, y + dx * sin + dy * cos) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))
            ]
            x1, x2 = _clamp(min(c[0] for c in corners)), _clamp(max(c[0] for c in corners))
            y1, y2 = _clamp(min(c[1] for c in corners)), _clamp(max(c[1] for c in corners))
            if x2 > x1 and y2 > y1:
                rows.append(f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
        else:
            points = value.get("points") or []
            if len(points) >= 3:
                rows.append(f"{cls} " + " ".join(f"{_clamp(px / 100):.6f} {_clamp(py / 100):.6f}" for px, py in points))
    return rows


def export_dataset(job: JobContext, control: ControlInfo, root: Path, val_split: float, seed: int) -> dict[str, Any]:
    """Write ``root/images``, ``root/labels`` and ``root/data.yaml``; images come through core's
    media fetcher (Label Studio uploads, cloud storage, local files). An image with an EXIF
    orientation is written as displayed, since the annotations are in displayed percent."""
    import cv2

    key = control.object.data_key
    examples: list[tuple[Path, list[str]]] = []
    skipped = 0
    tasks = job.annotations()
    for n, (task, anns) in enumerate(tasks, start=1):
        rows = next((r for ann in anns if (r := label_rows(control, ann["result"]))), None)
        if rows:
            try:
                examples.append((job.media.fetch_path((task.get("data") or {}).get(key), task.get("id")), rows))
            except Exception as exc:  # one unreachable image does not fail the run
                job.log.warning("task %s: image skipped: %s", task.get("id"), exc)
                skipped += 1
        if n % 20 == 0:
            job.progress(0.1 * n / len(tasks), f"exported {n}/{len(tasks)} tasks")
    random.Random(seed).shuffle(examples)
    n_val = max(1, round(len(examples) * val_split)) if examples else 0
    splits = {"val": examples[:n_val], "train": examples[n_val:]}
    for split, items in splits.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i, (src, rows) in enumerate(items):
            if src.suffix.lower() in IMAGE_SUFFIXES and exif_orientation(src) == 1:  # as displayed: copy it
                shutil.copyfile(src, root / "images" / split / f"{i:06d}{src.suffix.lower()}")
            else:  # a suffix ultralytics would not pick, or an EXIF orientation: the pixels as displayed
                image = job.media.image_array(src, channels="BGR")
                cv2.imwrite(str(root / "images" / split / f"{i:06d}.png"), image)
            (root / "labels" / split / f"{i:06d}.txt").write_text("\n".join(rows) + "\n")
    names = dict(enumerate(control.labels))
    (root / "data.yaml").write_text(
        json.dumps({"path": str(root), "train": "images/train", "val": "images/val", "names": names})
    )  # JSON is valid YAML
    return {
        "train_images": len(splits["train"]),
        "val_images": len(splits["val"]),
        "skipped_images": skipped,
        "regions": sum(len(rows) for _, rows in examples),
    }


def train(backend: YoloBackend, job: JobContext) -> dict[str, Any]:
    """The training job: export, train, evaluate, and leave the weights in ``job.workdir``."""
    from ultralytics import YOLO

    settings = backend.settings
    config = job.config
    if config is None:
        raise ValueError("no label config is stored for this project: connect the backend in Label Studio first")
    control = trainable_control(config)
    task = TRAIN_TASK[control.tag]
    base = backend.weights_for(control)  # fine-tune what the control serves before training
    job.progress(0.01, "exporting annotations")
    tmp_root = backend.core.prelabel_home / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="yolo-train-") as tmp:
        root = Path(tmp)
        counts = export_dataset(job, control, root / "dataset", settings.yolo_val_split, settings.yolo_seed)
        total = counts["train_images"] + counts["val_images"]
        if total < settings.yolo_min_images or counts["train_images"] < 1:
            raise ValueError(
                f"{total} annotated images with {control.tag} regions; need at least "
                f"{settings.yolo_min_images} to train (YOLO_MIN_IMAGES)"
            )
        model = YOLO(str(base))
        if model.task != task:
            raise ValueError(
                f"{control.name}: {base.name} is a {model.task} model; {control.tag} trains a {task} model"
            )
        epochs = settings.yolo_epochs

        def on_epoch_end(trainer: Any) -> None:
            done = trainer.epoch + 1
            if done > epochs:  # ultralytics calls it once more after validating the best weights
                job.progress(0.95, "validated the best weights on the held-out images")
            else:
                job.progress(0.1 + 0.8 * done / epochs, f"epoch {done}/{epochs}")

        model.add_callback("on_fit_epoch_end", on_epoch_end)
        job.progress(0.1, f"training {base.name} on {counts['train_images']} images")
        metrics = model.train(
            data=str(root / "dataset" / "data.yaml"),
            epochs=epochs,
            imgsz=settings.yolo_imgsz,
            batch=settings.yolo_train_batch,
            device=backend.device,
            workers=0,
            seed=settings.yolo_seed,
            project=str(root / "runs"),
            name="train",
            exist_ok=True,
            plots=False,
            verbose=False,
            val=True,
            amp=backend.device.startswith("cuda"),
        )
        job.check_cancelled()
        trainer = model.trainer
        weights = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
        # train() ends by validating the best weights on the held-out split and returns those metrics
        if metrics is None:  # older ultralytics returned nothing: evaluate explicitly
            metrics = YOLO(str(weights)).val(
                data=str(root / "dataset" / "data.yaml"),
                split="val",
                imgsz=settings.yolo_imgsz,
                device=backend.device,
                workers=0,
                plots=False,
                verbose=False,
            )
        suffix = "(M)" if task == "segment" else "(B)"
        scores = metrics.results_dict if hasattr(metrics, "results_dict") else dict(metrics)
        shutil.copyfile(weights, job.workdir / "model.pt")
        history = Path(trainer.save_dir) / "results.csv"
        if history.is_file():
            shutil.copyfile(history, job.workdir / "results.csv")
    result = {
        "control": control.name,
        "task": task,
        "base_weights": base.name,
        "epochs": epochs,
        "imgsz": settings.yolo_imgsz,
        **counts,
        "map50": float(scores.get(f"metrics/mAP50{suffix}", 0.0)),
        "map50_95": float(scores.get(f"metrics/mAP50-95{suffix}", 0.0)),
    }
    info = {**result, "weights": "model.pt", "labels": list(control.labels)}
    (job.workdir / TRAINED_INFO).write_text(json.dumps(info, indent=2))
    job.progress(0.98, f"mAP50 {result['map50']:.3f} on {counts['val_images']} validation images")
    return result
