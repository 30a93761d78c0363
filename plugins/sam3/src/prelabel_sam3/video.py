"""VideoRectangle: SAM 3's video model finds each label's concept in the first frame and
tracks every object through the next frames; one box sequence (masklet) per object id.

Memory is bounded by decoding at most ``max_frames_to_track + 1`` frames of at most
``SAM3_VIDEO_MAX_PIXELS`` each, keeping frames and state on the CPU between frames, and
tracking at most ``SAM3_VIDEO_MAX_OBJECTS`` objects; one video is tracked at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prelabel import ControlInfo, PredictContext, Task, TaskError
from prelabel.regions import video_rectangle
from prelabel_sam3.masks import mask_box
from prelabel_sam3.prompts import Concepts, label_prompts, resolve_overlaps

if TYPE_CHECKING:
    from prelabel_sam3.backend import Sam3Backend

_VIDEO_LOCK = threading.Lock()


def read_frames(path: Path, start: int, count: int, max_pixels: int) -> tuple[list[np.ndarray], float, int]:
    """RGB frames ``start .. start+count-1`` (0-based), the video's fps and its frame count."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise TaskError(f"{path.name} is not a video OpenCV can read")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames: list[np.ndarray] = []
        index = 0
        while len(frames) < count:
            ok, frame = capture.read()  # every frame: seeking is not frame-exact for many codecs
            if not ok:
                break
            if index >= start:
                height, width = frame.shape[:2]
                if width * height > max_pixels:
                    raise TaskError(
                        f"video frames of {width}x{height} pixels are more than SAM3_VIDEO_MAX_PIXELS ({max_pixels})"
                    )
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise TaskError(f"the video has no frame {start + 1}")
    return frames, fps, total or index


def video_concepts(ctx: PredictContext, control: ControlInfo) -> tuple[Concepts, list[ControlInfo]]:
    """The labels a VideoRectangle takes (its own, or those of a ``Labels`` on the same video)
    as prompts."""
    video = control.object.name
    sources = (
        [control]
        if control.labels
        else [c for c in ctx.config.controls if c.tag == "Labels" and video in c.to_name and c.labels]
    )
    concepts = Concepts()
    for source in sources:
        for label in source.labels:
            for text in label_prompts(source, label):
                concepts.add(text, control.name, label)
    return concepts, sources


def track_concepts(backend: Sam3Backend, task: Task, ctx: PredictContext, control: ControlInfo) -> list[dict]:
    """Each label's objects in the video's first frames, tracked: one VideoRectangle each."""
    network = backend.network
    if network.video is None:
        raise TaskError(
            f"{network.path} is a detector-only SAM 3 checkpoint: video needs the full facebook/sam3 "
            "checkpoint (sam3_video)"
        )
    concepts, _ = video_concepts(ctx, control)
    if not concepts.texts:
        return []
    obj = control.object
    value = task.data.get(obj.data_key) if obj.data_key else obj.value
    if not isinstance(value, str) or not value:
        raise TaskError(f"task {task.id} has no {obj.data_key or obj.name!r} video URL in its data")
    path = ctx.media.fetch_path(value, task.id)
    frames_to_track = max(1, control.attr("max_frames_to_track", backend.settings.max_frames_to_track, int))
    frames, fps, total = read_frames(path, 0, frames_to_track + 1, backend.settings.sam3_video_max_pixels)
    height, width = frames[0].shape[:2]
    threshold = backend.threshold(control)
    with _VIDEO_LOCK:
        tracks = network.track_texts(frames, concepts.texts, backend.settings.sam3_video_max_objects)
    # tracks: object id -> {"text", "score", "boxes": {frame index: mask}}
    first_masks = []
    for obj_id, track in tracks.items():
        if track["score"] < threshold or not track["masks"]:
            continue
        first = min(track["masks"])
        label = concepts.targets[track["text"]][0][1]
        first_masks.append((f"{label}\x00{obj_id}", track["score"], track["masks"][first]))
    kept = resolve_overlaps(first_masks, backend.settings.sam3_overlap_iou)[: backend.settings.sam3_max_instances]
    duration = total / fps if fps > 0 else None
    regions = []
    for key, score, _ in kept:
        label, obj_id = key.split("\x00")
        boxes = []
        for index, mask in sorted(tracks[int(obj_id)]["masks"].items()):
            box = mask_box(mask)
            if box is None:
                break  # lost: the sequence ends at the last frame the object was seen
            boxes.append((index + 1, *box))
        if boxes:
            regions.append(video_rectangle(control, [label], boxes, width, height, total, duration, score=score))
    return regions


def track_frames(
    network: Any, frames: list[np.ndarray], texts: list[str], max_objects: int
) -> dict[int, dict[str, Any]]:
    """The video model on ``frames`` with ``texts`` as prompts: object id -> its prompt text,
    best score and mask per frame index (the frames' own size)."""
    import torch

    video, processor = network.video, network.video_processor
    keep = video.max_num_objects
    video.max_num_objects = max_objects
    try:
        with torch.inference_mode():
            session = processor.init_video_session(
                video=frames, inference_device=network.device, processing_device="cpu", video_storage_device="cpu"
            )
            processor.add_text_prompt(session, list(texts))
            tracks: dict[int, dict[str, Any]] = {}
            for output in video.propagate_in_video_iterator(
                inference_session=session, max_frame_num_to_track=len(frames) - 1
            ):
                found = processor.postprocess_outputs(session, output)
                text_of = {i: t for t, ids in found["prompt_to_obj_ids"].items() for i in ids}
                for k, obj_id in enumerate(found["object_ids"].tolist()):
                    track = tracks.setdefault(
                        int(obj_id), {"text": text_of.get(int(obj_id)), "score": 0.0, "masks": {}}
                    )
                    track["score"] = max(track["score"], float(found["scores"][k]))
                    track["masks"][int(output.frame_idx)] = found["masks"][k].cpu().numpy().astype(bool)
    finally:
        video.max_num_objects = keep
    return {i: t for i, t in tracks.items() if t["text"] in texts}
