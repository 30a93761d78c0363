"""VideoRectangle: propagate the context's boxes through the next frames with SAM 2's video
predictor; one box sequence per object, returned under the object's own region id so Label
Studio extends the region the annotator drew instead of adding a copy."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from prelabel import ControlInfo, TaskError
from prelabel.regions import video_rectangle
from prelabel_sam2.masks import mask_box
from prelabel_sam2.model import Sam2Model
from prelabel_sam2.prompts import VideoObject


def extract_frames(path: Path, start: int, stop: int, out_dir: Path, max_pixels: int) -> tuple[int, int, int, float]:
    """Decode frames ``start..stop`` (0-based, inclusive) into ``out_dir/<i>.jpg`` (i from 0),
    the layout sam2's video predictor reads. Returns (frames written, width, height, fps)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise TaskError(f"{path.name} is not a video OpenCV can read")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        written, width, height, index = 0, 0, 0, 0
        while index <= stop:
            ok, frame = capture.read()  # read every frame: seeking is not frame-exact for many codecs
            if not ok:
                break
            if index >= start:
                height, width = frame.shape[:2]
                if width * height > max_pixels:
                    raise TaskError(f"video frames of {width}x{height} pixels are more than MEDIA_MAX_PIXELS")
                cv2.imwrite(str(out_dir / f"{index - start}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
                written += 1
            index += 1
    finally:
        capture.release()
    if written == 0:
        raise TaskError(f"the video has no frame {start + 1} (it has {index} frames)")
    return written, width, height, fps


def video_info(path: Path) -> tuple[float, int]:
    """(fps, frame count) from the container, without decoding."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise TaskError(f"{path.name} is not a video OpenCV can read")
        return float(capture.get(cv2.CAP_PROP_FPS) or 0.0), int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()


def read_frames(path: Path, start: int, stop: int, max_pixels: int) -> dict[int, np.ndarray]:
    """RGB frames ``start..stop`` (0-based, inclusive) by index; fewer past the video's end."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames: dict[int, np.ndarray] = {}
    try:
        if not capture.isOpened():
            raise TaskError(f"{path.name} is not a video OpenCV can read")
        index = 0
        while index <= stop:
            ok, frame = capture.read()  # every frame: seeking is not frame-exact for many codecs
            if not ok:
                break
            if index >= start:
                height, width = frame.shape[:2]
                if width * height > max_pixels:
                    raise TaskError(f"video frames of {width}x{height} pixels are more than MEDIA_MAX_PIXELS")
                frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    return frames


def video_frame_count(path: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()


def propagate(
    model: Sam2Model,
    control: ControlInfo,
    objects: list[VideoObject],
    video: Path,
    frames: int,
    tmp_root: Path,
    max_pixels: int,
) -> list[dict]:
    """Track each object ``frames`` frames past its latest keyframe; one region per object."""
    start = min(o.frame for o in objects) - 1
    stop = max(o.frame for o in objects) - 1 + frames
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="sam2-frames-") as tmp:
        written, width, height, fps = extract_frames(video, start, stop, Path(tmp), max_pixels)
        prompts = {}
        for obj_id, obj in enumerate(objects, start=1):
            index = obj.frame - 1 - start
            if index >= written:
                raise TaskError(f"object {obj.region_id}: frame {obj.frame} is past the end of the video")
            x, y, w, h = obj.box
            prompts[obj_id] = (
                index,
                [x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100],
            )
        tracked = model.track(Path(tmp), prompts, frames)
    total = video_frame_count(video) or start + written
    regions = []
    for obj_id, obj in enumerate(objects, start=1):
        first = prompts[obj_id][0]
        x, y, w, h = obj.box
        boxes = [(obj.frame, x * width / 100, y * height / 100, w * width / 100, h * height / 100)]
        for index, masks in tracked:
            if index <= first or index > first + frames or obj_id not in masks:
                continue
            box = mask_box(masks[obj_id])
            if box is None:
                break  # lost: the sequence ends at the last frame the object was seen
            boxes.append((start + index + 1, *box))
        frames_count = obj.frames_count or total
        duration = obj.duration or (frames_count / fps if fps > 0 else None)
        region = video_rectangle(control, obj.labels, boxes, width, height, frames_count, duration)
        earlier = [dict(item) for item in obj.keyframes if int(item["frame"]) < obj.frame]
        for item in earlier:  # Label Studio sends each keyframe's time; fill it in when it did not
            if "time" not in item and duration and frames_count:
                item["time"] = (int(item["frame"]) - 1) * duration / frames_count
        region["value"]["sequence"] = earlier + region["value"]["sequence"]
        region["id"] = obj.region_id
        regions.append(region)
    return regions
