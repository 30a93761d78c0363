"""The sam2 backend's answers to Label Studio's SAM events (``prelabel.sam_events`` parses,
dispatches and shapes them; this is the model side).

- ``predict``: clicks and a box -> one mask on the image or on one video frame. An image's
  encoding comes from the backend's embedding cache, else from the on-disk cache the ``embed``
  job fills, as a click's does; a video frame's from the in-memory cache only.
- ``prewarm``: encodes the image (memory and disk, as a first click would) or a window of
  frames (memory only, at most the cache's capacity: frames are a session's, ``release``
  drops them).
- ``track``: SAM 2's video propagation (its memory of earlier frames, not frame-by-frame
  prompting) from the prompt frame, forward, backward or both on one inference state; each
  direction ends where the object is lost.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from prelabel import ParsedConfig, PredictContext, TaskError
from prelabel.sam_events import Prompts, SamRequest, TrackPlan, TrackSessions, bitmask_value, capabilities_value
from prelabel_sam2.model import Embedding, image_digest

PREWARM_MAX_WINDOW = 20  # frames past the current one a prewarm may encode (upstream's MAX_PREWARM_WINDOW)
ENCODE_BATCH = 4  # frames per encoder pass when prewarming


def prompt_arrays(prompts: Prompts, width: int, height: int) -> tuple[Any, Any, Any]:
    """(points N x 2, labels N, box x1 y1 x2 y2) in pixels for SAM 2; None where absent."""
    points = labels = box = None
    if prompts.points:
        points = np.asarray(prompts.pixel_points(width, height), dtype=np.float32)
        labels = np.asarray(prompts.labels, dtype=np.int32)
    if prompts.box is not None:
        box = np.asarray(prompts.pixel_box(width, height), dtype=np.float32)
    return points, labels, box


def nothing_to_segment(prompts: Prompts) -> bool:
    """No box and no positive click: negative clicks alone say only where the object is not."""
    return prompts.box is None and 1 not in prompts.labels


class Sam2Events:
    """Mixed into Sam2Backend: the :class:`prelabel.sam_events.SamEventBackend` methods."""

    sam_sessions: TrackSessions

    def _init_events(self) -> None:
        self.sam_sessions = TrackSessions(capacity=1)  # one propagation at a time per process
        self._task_media: OrderedDict[Any, set[str]] = OrderedDict()  # task id -> digests encoded for it
        self._task_lock = threading.Lock()

    def _note(self, task_id: Any, digest: str) -> None:
        with self._task_lock:
            self._task_media.setdefault(task_id, set()).add(digest)
            self._task_media.move_to_end(task_id)
            while len(self._task_media) > 256:
                self._task_media.popitem(last=False)

    # -- media and encodings --------------------------------------------------------------------
    def _source(self, request: SamRequest, ctx: PredictContext) -> tuple[Path, bytes, str]:
        obj = request.control.object
        value = request.task.data.get(obj.data_key) if obj.data_key else obj.value
        if not isinstance(value, str) or not value:
            raise TaskError(f"task {request.task.id} has no {obj.data_key or obj.name!r} URL in its data")
        path = ctx.media.fetch_path(value, request.task.id)
        data = path.read_bytes()
        digest = image_digest(data)
        self._note(request.task.id, digest)
        return path, data, digest

    def _frame_key(self, digest: str, index: int) -> tuple:
        return (self.model.key, digest, "frame", index)

    def _image_embedding(self, data: bytes, digest: str) -> Embedding:
        key = (self.model.key, digest)  # the key a click's embedding has: prewarm serves the clicks
        return self.embeddings.get_or_compute(key, lambda: self.load_or_embed(digest, data))[0]

    def _frame_embedding(self, path: Path, digest: str, index: int) -> Embedding:
        from prelabel_sam2.video import read_frames

        def compute() -> Embedding:
            frames = read_frames(path, index, index, self.core.media_max_pixels)
            if index not in frames:
                raise TaskError(f"the video has no frame {index + 1}")
            return self.model.embed(frames[index])

        return self.embeddings.get_or_compute(self._frame_key(digest, index), compute)[0]

    # -- the events -----------------------------------------------------------------------------
    def sam_capabilities(self, config: ParsedConfig) -> dict[str, Any]:
        return capabilities_value(
            self.supported_controls(config),
            ["point", "box"],
            {"name": "SAM2", "version": self.model_version()},
            track=True,
        )

    def sam_prewarm(self, request: SamRequest, ctx: PredictContext) -> dict[str, Any]:
        from prelabel_sam2.video import read_frames, video_info

        path, data, digest = self._source(request, ctx)
        if not request.is_video:
            self._image_embedding(data, digest)
            kept = (self.model.key, digest) in self.embeddings or (
                self.store is not None and (self.store_key, digest) in self.store
            )
            return {"status": "ok", "cached": [0] if kept else [], "pending": []}
        # a window larger than the cache would evict its own first frames
        most = max(0, min(PREWARM_MAX_WINDOW, self.embeddings.capacity - 1))
        window = request.bounded_int("window", most, most)
        fps, count = video_info(path)
        frame = request.frame_index(fps, count)
        if request.direction == "backward":
            start, stop = max(0, frame - window), frame
        else:
            start, stop = frame, min(count - 1, frame + window) if count else frame + window
        missing = [i for i in range(start, stop + 1) if self._frame_key(digest, i) not in self.embeddings]
        if missing and self.embeddings.capacity > 0:
            frames = read_frames(path, min(missing), max(missing), self.core.media_max_pixels)
            todo = [i for i in missing if i in frames]
            for n in range(0, len(todo), ENCODE_BATCH):
                chunk = todo[n : n + ENCODE_BATCH]
                for index, embedding in zip(chunk, self.model.embed_batch([frames[i] for i in chunk]), strict=True):
                    self.embeddings.put(self._frame_key(digest, index), embedding)
        cached = [i for i in range(start, stop + 1) if self._frame_key(digest, i) in self.embeddings]
        return {"status": "ok", "cached": cached, "pending": [], "frame_count": count}

    def sam_predict(self, request: SamRequest, ctx: PredictContext) -> dict[str, Any] | None:
        prompts = request.prompts()
        if nothing_to_segment(prompts):
            return None
        path, data, digest = self._source(request, ctx)
        if request.is_video:
            from prelabel_sam2.video import video_info

            fps, count = video_info(path)
            embedding = self._frame_embedding(path, digest, request.frame_index(fps, count))
        else:
            embedding = self._image_embedding(data, digest)
        points, labels, box = prompt_arrays(prompts, embedding.width, embedding.height)
        mask, _ = self.model.segment(embedding, points, labels, box, multimask=self.settings.sam2_multimask)
        return bitmask_value(mask)

    def sam_track(self, request: SamRequest, ctx: PredictContext) -> TrackPlan:
        from prelabel_sam2.video import extract_frames, video_info

        prompts = request.prompts()
        if nothing_to_segment(prompts):
            raise ValueError("track needs a positive click or a box in context.result")
        path, _, _ = self._source(request, ctx)
        fps, count = video_info(path)
        start = request.frame_index(fps, count)
        frames = request.max_frames(fps, self.settings.sam2_track_max_frames)
        forward = request.direction in ("forward", "both")
        backward = request.direction in ("backward", "both")
        hi = (min(count - 1, start + frames) if count else start + frames) if forward else start
        lo = max(0, start - frames) if backward else start
        total = (hi - start + 1 if forward else 0) + (start - lo + 1 if backward else 0) - (forward and backward)
        passes = ([(False, frames)] if forward else []) + ([(True, frames)] if backward else [])
        tmp_root = self.core.prelabel_home / "tmp"
        max_pixels = self.core.media_max_pixels

        def produce(cancelled: Callable[[], bool]) -> Iterator[dict[str, Any]]:
            tmp_root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=tmp_root, prefix="sam2-track-") as tmp:
                written, width, height, _ = extract_frames(path, lo, hi, Path(tmp), max_pixels)
                if start - lo >= written:
                    raise TaskError(f"the video has no frame {start + 1} (it has {lo + written} frames)")
                points, labels, box = prompt_arrays(prompts, width, height)
                for index, mask in self.model.follow(
                    Path(tmp), written, start - lo, points, labels, box, passes, cancelled
                ):
                    frame = lo + index
                    yield {"frame": frame, "time_ms": frame * 1000.0 / fps if fps else 0.0, **bitmask_value(mask)}

        return TrackPlan(total, fps, count * 1000.0 / fps if fps else 0.0, produce)

    def sam_release(self, task_id: Any) -> None:
        """The task's encodings leave memory; the on-disk cache keeps the image's for later clicks."""
        with self._task_lock:
            digests = self._task_media.pop(task_id, set())
        self.embeddings.discard(lambda key: len(key) > 1 and key[1] in digests)
