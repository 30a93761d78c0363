"""VideoRectangle: track objects through a video with BoT-SORT or ByteTrack, one Label Studio
sequence per track id, labelled from the ``<Labels>`` control on the same video."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from prelabel import ControlInfo, ParsedConfig, TaskError
from prelabel.regions import video_rectangle
from prelabel_yolo.models import LoadedModel, resolve_model_path, use_cpu_threads

TRACKERS = ("botsort", "bytetrack")
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".asf", ".gif"}


def labels_control(config: ParsedConfig, control: ControlInfo) -> ControlInfo:
    """The ``<Labels>`` control on the same video: VideoRectangle itself carries no labels."""
    for other in config.controls:
        if other.tag == "Labels" and set(other.to_name) & set(control.to_name):
            return other
    raise TaskError(
        f'VideoRectangle {control.name!r} needs a <Labels toName="{control.to_name[0]}"> control '
        "listing the labels to track"
    )


def _typed(current: Any, raw: str) -> Any:
    if isinstance(current, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    return raw


def tracker_config(control: ControlInfo, model_root: Path, tmpdir: Path) -> str:
    """The tracker yaml for ``model_tracker`` (or upstream's ``tracker``): botsort, bytetrack
    or a yaml in MODEL_ROOT; ``<tracker>_<param>`` attributes override its parameters."""
    import yaml
    from ultralytics.utils.checks import check_yaml

    name = (control.attr("model_tracker") or control.attr("tracker") or "botsort").strip()
    if name.lower() in TRACKERS:
        stem, base = name.lower(), Path(check_yaml(f"{name.lower()}.yaml"))
    else:
        base = resolve_model_path(name if name.endswith((".yaml", ".yml")) else f"{name}.yaml", model_root)
        if not base.is_file():
            raise TaskError(f"model_tracker={name!r}: use botsort, bytetrack, or put {base.name} in MODEL_ROOT")
        stem = base.stem
    prefix = f"{stem}_"
    overrides = {k[len(prefix) :]: v for k, v in control.attrs.items() if k.startswith(prefix)}
    if not overrides:
        return str(base)
    cfg = yaml.safe_load(base.read_text()) or {}
    for key, raw in overrides.items():
        if key not in cfg:
            raise TaskError(f"{prefix}{key}: the {stem} tracker has no parameter {key!r} (it has {sorted(cfg)})")
        try:
            cfg[key] = _typed(cfg[key], raw)
        except ValueError as exc:
            raise TaskError(f"{prefix}{key}={raw!r}: expected a {type(cfg[key]).__name__}") from exc
    path = tmpdir / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def video_file(path: Path, tmpdir: Path) -> Path:
    """``path``, or a copy with a video suffix: ultralytics picks its reader by the suffix."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path
    target = tmpdir / "video.mp4"
    shutil.copyfile(path, target)
    return target


def _video_info(path: Path) -> tuple[int, float]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise TaskError(f"{path.name} is not a video OpenCV can read")
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()


def track(
    loaded: LoadedModel,
    control: ControlInfo,
    labels: ControlInfo,
    path: Path,
    tracker: str,
    cpu_threads: int | None = None,
    **predict_args: Any,
) -> list[dict]:
    """Run the tracker over every frame; one VideoRectangle region per track id, labelled by
    the label its boxes had most often, scored by its best box."""
    frames_declared, fps = _video_info(path)
    names = loaded.names
    tracks: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    votes: dict[int, Counter] = defaultdict(Counter)
    best: dict[int, float] = defaultdict(float)
    frames, width, height = 0, 0, 0
    with loaded.lock, use_cpu_threads(cpu_threads):
        loaded.calls += 1
        stream = loaded.model.track(
            source=str(path), stream=True, persist=False, tracker=tracker, verbose=False, **predict_args
        )
        for frames, result in enumerate(stream, start=1):
            height, width = result.orig_shape
            data = result.boxes
            if data is None or data.id is None:
                continue
            for tid, (x1, y1, x2, y2), score, cls in zip(
                data.id.int().tolist(), data.xyxy.tolist(), data.conf.tolist(), data.cls.int().tolist(), strict=True
            ):
                label = labels.map_label(names[cls])
                if not label:
                    continue
                tracks[tid].append((frames, x1, y1, x2 - x1, y2 - y1))
                votes[tid][label] += 1
                best[tid] = max(best[tid], float(score))
    frames_count = frames or frames_declared
    duration = frames_count / fps if fps > 0 else None
    return [
        video_rectangle(
            control, votes[tid].most_common(1)[0][0], seq, width, height, frames_count, duration, score=best[tid]
        )
        for tid, seq in sorted(tracks.items())
    ]
