"""The sam3 backend's answers to Label Studio's SAM events (``prelabel.sam_events`` parses,
dispatches and shapes them; this is the model side).

Clicks and boxes go to the SAM 3 point tracker, on the image or on one video frame; encodings
are the backend's embedding cache (``prewarm`` fills it). ``track`` follows the prompted object
from frame to frame: each frame is segmented with the previous frame's mask box and centre as
its prompt, until the object is lost or ``max_frames`` are done.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from prelabel import ParsedConfig, PredictContext, TaskError
from prelabel.sam_events import SamRequest, TrackPlan, TrackSessions, bitmask_value, capabilities_value
from prelabel_sam3.masks import mask_box
from prelabel_sam3.model import Embedding, decode_image, image_digest

PREWARM_MAX_WINDOW = 20  # frames one prewarm may encode (upstream's MAX_PREWARM_WINDOW)


def video_info(path: Path) -> tuple[float, int, int, int]:
    """(fps, frame count, width, height) from the container, without decoding."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise TaskError(f"{path.name} is not a video OpenCV can read")
        return (
            float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
            int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        capture.release()


def read_frame_range(path: Path, start: int, stop: int, max_pixels: int) -> dict[int, np.ndarray]:
    """RGB frames ``start..stop`` (0-based, inclusive) by index."""
    from prelabel_sam3.video import read_frames

    frames, _, _ = read_frames(path, start, stop - start + 1, max_pixels)
    return {start + i: f for i, f in enumerate(frames)}


class Sam3Events:
    """Mixed into Sam3Backend: the :class:`prelabel.sam_events.SamEventBackend` methods."""

    sam_sessions: TrackSessions

    def _init_events(self) -> None:
        self.sam_sessions = TrackSessions(capacity=1)
        self._task_media: OrderedDict[Any, set[str]] = OrderedDict()  # task id -> digests encoded for it
        self._task_lock = threading.Lock()

    def _note(self, task_id: Any, digest: str) -> None:
        with self._task_lock:
            self._task_media.setdefault(task_id, set()).add(digest)
            self._task_media.move_to_end(task_id)
            while len(self._task_media) > 256:
                self._task_media.popitem(last=False)

    # -- media ----------------------------------------------------------------------------------
    def _source(self, request: SamRequest, ctx: PredictContext) -> tuple[Path, str]:
        obj = request.control.object
        value = request.task.data.get(obj.data_key) if obj.data_key else obj.value
        if not isinstance(value, str) or not value:
            raise TaskError(f"task {request.task.id} has no {obj.data_key or obj.name!r} URL in its data")
        path = ctx.media.fetch_path(value, request.task.id)
        digest = image_digest(path.read_bytes())
        self._note(request.task.id, digest)
        return path, digest

    def _frame_embedding(self, path: Path, digest: str, index: int, frame: np.ndarray | None = None) -> Embedding:
        max_pixels = self.settings.sam3_video_max_pixels

        def compute() -> Embedding:
            image = frame if frame is not None else read_frame_range(path, index, index, max_pixels)[index]
            return self.network.embed_for_points(image)

        return self.embeddings.get_or_compute((self.network.key, "points", digest, index), compute)[0]

    def _image_embedding(self, path: Path, digest: str) -> Embedding:
        def compute() -> Embedding:
            return self.network.embed_for_points(decode_image(path.read_bytes(), self.core.media_max_pixels))

        return self.embeddings.get_or_compute((self.network.key, "points", digest), compute)[0]

    # -- the events -----------------------------------------------------------------------------
    def sam_capabilities(self, config: ParsedConfig) -> dict[str, Any]:
        track = self.network is not None and self.network.tracker is not None
        return capabilities_value(
            self.supported_controls(config),
            ["point", "box", "text"],
            {"name": "SAM3", "version": self.model_version()},
            track=track,
        )

    def sam_prewarm(self, request: SamRequest, ctx: PredictContext) -> dict[str, Any]:
        path, digest = self._source(request, ctx)
        if not request.is_video:
            self._image_embedding(path, digest)
            return {"status": "ok", "cached": [0], "pending": []}
        window = request.bounded_int("window", PREWARM_MAX_WINDOW, PREWARM_MAX_WINDOW)
        fps, count, _, _ = video_info(path)
        frame = request.frame_index(fps, count)
        if request.direction == "backward":
            start, stop = max(0, frame - window), frame
        else:
            start, stop = frame, min(count - 1, frame + window) if count else frame + window
        missing = [i for i in range(start, stop + 1) if (self.network.key, "points", digest, i) not in self.embeddings]
        frames = (
            read_frame_range(path, min(missing), max(missing), self.settings.sam3_video_max_pixels) if missing else {}
        )
        for index in missing:
            if index in frames:
                self._frame_embedding(path, digest, index, frames[index])
        cached = [i for i in range(start, stop + 1) if (self.network.key, "points", digest, i) in self.embeddings]
        return {"status": "ok", "cached": cached, "pending": [], "frame_count": count}

    def sam_predict(self, request: SamRequest, ctx: PredictContext) -> dict[str, Any] | None:
        prompts = request.prompts()
        if prompts.empty:
            return None
        path, digest = self._source(request, ctx)
        if request.is_video:
            fps, count, _, _ = video_info(path)
            embedding = self._frame_embedding(path, digest, request.frame_index(fps, count))
        else:
            embedding = self._image_embedding(path, digest)
        w, h = embedding.width, embedding.height
        mask, _ = self.network.segment_points(
            embedding, prompts.pixel_points(w, h), prompts.labels, box=prompts.pixel_box(w, h)
        )
        return bitmask_value(mask)

    def sam_track(self, request: SamRequest, ctx: PredictContext) -> TrackPlan:
        prompts = request.prompts()
        if prompts.empty:
            raise ValueError("track needs a click or a box in context.result")
        path, digest = self._source(request, ctx)
        fps, count, _, _ = video_info(path)
        start = request.frame_index(fps, count)
        frames = request.max_frames(fps, self.settings.sam3_track_max_frames)
        ranges = []
        if request.direction in ("forward", "both"):
            ranges.append(range(start, min(count - 1, start + frames) + 1 if count else start + frames + 1))
        if request.direction in ("backward", "both"):
            ranges.append(range(start, max(0, start - frames) - 1, -1))
        total = sum(len(r) for r in ranges) - (1 if request.direction == "both" else 0)

        def produce(cancelled: Callable[[], bool]) -> Iterator[dict[str, Any]]:
            for k, indices in enumerate(ranges):
                for index, mask in self._follow(path, digest, list(indices), prompts, cancelled, skip_first=k > 0):
                    yield {"frame": index, "time_ms": index * 1000.0 / fps if fps else 0.0, **bitmask_value(mask)}

        return TrackPlan(total, fps, count * 1000.0 / fps if fps else 0.0, produce)

    def _follow(
        self,
        path: Path,
        digest: str,
        indices: list[int],
        prompts: Any,
        cancelled: Callable[[], bool],
        skip_first: bool = False,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(frame index, mask): ``indices[0]`` segmented with the prompts, then each next frame
        with the last mask's box and centre; stop when the object is lost."""
        if not indices:
            return
        lo, hi = min(indices), max(indices)
        frames = read_frame_range(path, lo, hi, self.settings.sam3_video_max_pixels)
        box = points = labels = None
        for n, index in enumerate(indices):
            if cancelled() or index not in frames:
                return
            embedding = self._frame_embedding(path, digest, index, frames.pop(index))
            w, h = embedding.width, embedding.height
            if n == 0:
                points, labels, box = prompts.pixel_points(w, h), prompts.labels, prompts.pixel_box(w, h)
            mask, _ = self.network.segment_points(embedding, points, labels, box=box)
            found = mask_box(mask)
            if found is None:
                return  # lost: the track ends at the last frame it was seen
            x, y, bw, bh = found
            box, points, labels = (x, y, x + bw, y + bh), [(x + bw / 2, y + bh / 2)], [1]
            if n == 0 and skip_first:
                continue  # the prompt frame is sent once, by the forward pass
            yield index, mask

    def track_drawn_boxes(self, task: Any, ctx: PredictContext, control: Any, regions: list[dict]) -> list[dict]:
        """The open-source path: each VideoRectangle of the interactive context followed from
        its latest keyframe for ``max_frames_to_track`` frames, returned under its own id (so
        Label Studio extends the region drawn), its earlier keyframes kept."""
        from prelabel.regions import video_rectangle
        from prelabel.sam_events import Prompts

        obj = control.object
        value = task.data.get(obj.data_key) if obj.data_key else obj.value
        if not isinstance(value, str) or not value:
            raise TaskError(f"task {task.id} has no {obj.data_key or obj.name!r} video URL in its data")
        path = ctx.media.fetch_path(value, task.id)
        digest = image_digest(path.read_bytes())
        self._note(task.id, digest)
        fps, count, _, _ = video_info(path)
        frames = max(1, control.attr("max_frames_to_track", self.settings.max_frames_to_track, int))
        out = []
        for region in regions:
            v = region.get("value") or {}
            sequence = sorted(
                (k for k in v.get("sequence") or [] if isinstance(k, dict) and "frame" in k),
                key=lambda k: int(k["frame"]),
            )
            if not sequence:
                continue
            last = sequence[-1]
            start = int(last["frame"]) - 1
            if count and start >= count:
                raise TaskError(f"region {region.get('id')}: frame {start + 1} is past the end of the video")
            box = tuple(float(last[k]) for k in ("x", "y", "width", "height"))
            stop = min(count - 1, start + frames) if count else start + frames
            width = height = 0
            boxes = []
            for index, mask in self._follow(
                path, digest, list(range(start, stop + 1)), Prompts(box=box), lambda: False
            ):
                height, width = mask.shape[:2]
                if index == start:
                    continue  # the drawn keyframe is kept as drawn
                x, y, w, h = mask_box(mask)
                boxes.append((index + 1, x, y, w, h))
            frames_count = int(v.get("framesCount") or count or stop + 1)
            duration = v.get("duration") or (frames_count / fps if fps else None)
            if width:
                x, y, w, h = box
                drawn = (start + 1, x * width / 100, y * height / 100, w * width / 100, h * height / 100)
                tracked = video_rectangle(
                    control, v.get("labels") or [], [drawn, *boxes], width, height, frames_count, duration
                )
                earlier = [dict(k) for k in sequence[:-1]]
                for item in earlier:  # Label Studio validates each keyframe's time: fill in a missing one
                    if "time" not in item and duration and frames_count:
                        item["time"] = (int(item["frame"]) - 1) * duration / frames_count
                tracked["value"]["sequence"] = earlier + tracked["value"]["sequence"]
                tracked["id"] = str(region.get("id") or tracked["id"])
                out.append(tracked)
        return out

    def sam_release(self, task_id: Any) -> None:
        with self._task_lock:
            digests = self._task_media.pop(task_id, set())
        self.embeddings.discard(lambda key: len(key) > 2 and key[2] in digests)
