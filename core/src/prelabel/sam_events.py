"""Label Studio's SAM events: one ``/predict`` multiplexed by ``params.context.event``.

Label Studio Enterprise's SAM tool (implemented upstream by label-studio-ml-backend's
``segment_anything_video_interactive`` example, PR #893 and its fixes #903, #904, #910,
#923, #924) sends seven events through the ordinary ``/predict``; open-source Label Studio
sends none (its ``context`` holds only ``result``), and a backend answers that classic path as
before. Each answer is a prediction whose ``result`` holds one item ``{"id", "from_name",
"to_name", "type", "origin": "manual", "value"}``:

============== ================================================ =======================================
event          context (besides ``event``)                      answer ``type`` and ``value``
============== ================================================ =======================================
capabilities   nothing                                          ``capabilities``: ``prompts``,
                                                                ``targets`` ({tag, output, features}),
                                                                ``model_info``
prewarm        ``frame`` (1-based) or ``time_ms``, ``window``,  ``prewarm_ack``: ``status``, ``cached``,
               ``direction``                                    ``pending``, ``frame_count``
predict        ``result`` (clicks / a box), ``frame``/``time_ms`` ``bitmask``: ``imageDataURL`` (PNG),
                                                                ``width``, ``height``
track          ``result``, ``frame``/``time_ms``,               ``track_started``: ``session_id``,
               ``max_frames`` or ``max_duration_ms``,           ``total_frames``, ``fps``, ``duration_ms``
               ``direction`` (forward, backward, both)          (``track_busy`` when at capacity)
track_progress ``session_id``                                   ``track_progress``: ``frames`` ({frame,
                                                                time_ms, imageDataURL, width, height}),
                                                                ``produced``, ``total``, ``done``, ``error``
track_cancel   ``session_id``                                   ``track_cancel_ack``: ``status``
                                                                (cancelled / not_found)
release        nothing                                          ``release_ack``: ``status`` released
============== ================================================ =======================================

Frames in answers are 0-based, as upstream's. A backend takes part by implementing
:class:`SamEventBackend` and calling :func:`dispatch_sam_event` first in its ``predict``.
Tracking runs in a background thread per session (:class:`TrackSessions`, bounded), so the
``track`` request answers at once and ``track_progress`` polls; sessions live in the serving
process, so a deployment of several replicas needs sticky routing for them.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from prelabel.backend import Prediction, TaskError

if TYPE_CHECKING:
    import numpy as np

    from prelabel.backend import PredictContext, Task
    from prelabel.labelconfig import ControlInfo, ParsedConfig

log = logging.getLogger(__name__)

__all__ = [
    "Prompts",
    "SamEventBackend",
    "SamRequest",
    "TrackPlan",
    "TrackSessions",
    "bitmask_value",
    "capabilities_value",
    "dispatch_sam_event",
]

EVENTS = ("capabilities", "prewarm", "predict", "track", "track_progress", "track_cancel", "release")
DIRECTIONS = ("forward", "backward", "both")
# the event control's priority, as upstream picks it: image controls first, then video ones
IMAGE_TAGS = ("BitmaskLabels", "BrushLabels", "RectangleLabels", "PolygonLabels", "VectorLabels")
VIDEO_TAGS = ("VideoVectorLabels", "VideoRectangle", "VideoVector")
OUTPUTS = {
    "BitmaskLabels": "mask",
    "BrushLabels": "mask",
    "RectangleLabels": "bbox",
    "PolygonLabels": "polygon",
    "VectorLabels": "polygon",
    "VideoRectangle": "bbox",
    "VideoVectorLabels": "polygon",
    "VideoVector": "polygon",
}


def event_of(params: dict | None) -> str | None:
    """``params.context.event``; None on the classic path (no context, or no event in it)."""
    context = (params or {}).get("context")
    if not isinstance(context, dict) or "event" not in context:
        return None
    return str(context["event"])


def event_control(config: ParsedConfig, supported: Iterable[ControlInfo]) -> ControlInfo | None:
    """The control the events drive: the first image control, else the first video one."""
    controls = list(supported)
    for tag in IMAGE_TAGS + VIDEO_TAGS:
        for control in controls:
            if control.tag == tag:
                return control
    return None


@dataclass
class SamRequest:
    """One event's request, parsed; ``frame_index`` needs the video's fps and length."""

    event: str
    context: dict[str, Any]
    task: Task
    control: ControlInfo

    @property
    def is_video(self) -> bool:
        return any(o.tag == "Video" for o in self.control.objects)

    @property
    def session_id(self) -> str:
        return str(self.context.get("session_id") or "")

    @property
    def direction(self) -> str:
        direction = str(self.context.get("direction") or "forward")
        return direction if direction in DIRECTIONS else "forward"

    def bounded_int(self, key: str, default: int, most: int, least: int = 0) -> int:
        """``context[key]`` as an int in ``least..most``; ValueError names the key."""
        raw = self.context.get(key, default)
        if raw is None:
            raw = default
        if isinstance(raw, bool):
            raise ValueError(f"{key} must be an integer, got {raw!r}")
        try:
            value = int(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{key} must be an integer, got {raw!r}") from exc
        if value < least:
            raise ValueError(f"{key} must be >= {least}, got {value}")
        return min(value, most)

    def frame_index(self, fps: float | None, frame_count: int | None) -> int:
        """The 0-based frame on screen: ``time_ms`` (fps-independent) wins, floored as the
        browser shows frames, else Label Studio's 1-based ``frame``."""
        time_ms = self.context.get("time_ms")
        if time_ms is not None and fps:
            try:
                index = math.floor(float(time_ms) / 1000.0 * fps)
            except (TypeError, ValueError):
                index = None
            if index is not None:
                return max(0, min(index, frame_count - 1) if frame_count else index)
        raw = self.context.get("frame", 1)
        try:
            frame = int(raw if raw is not None else 1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"frame must be an integer, got {raw!r}") from exc
        index = max(0, frame - 1)
        return min(index, frame_count - 1) if frame_count else index

    def max_frames(self, fps: float | None, most: int) -> int:
        """Frames to track: ``max_duration_ms`` (at the video's fps) or ``max_frames``, at most ``most``."""
        duration = self.context.get("max_duration_ms")
        if duration is not None:
            try:
                ms = float(duration)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"max_duration_ms must be a number, got {duration!r}") from exc
            if ms < 0:
                raise ValueError("max_duration_ms must be >= 0")
            return min(most, round(ms / 1000.0 * fps)) if fps else most
        return self.bounded_int("max_frames", most, most)

    def prompts(self) -> Prompts:
        """The context's clicks and box, in percent of the frame or image."""
        return parse_prompts(self.context.get("result") or [])


@dataclass
class Prompts:
    """Clicks (percent x, y; 1 positive, 0 negative) and the latest box (percent x, y, w, h)."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    names: list[str] = field(default_factory=list)  # the labels the prompts carry

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    def pixel_points(self, width: int, height: int) -> list[tuple[float, float]]:
        return [(x * width / 100.0, y * height / 100.0) for x, y in self.points]

    def pixel_box(self, width: int, height: int) -> tuple[float, float, float, float] | None:
        if self.box is None:
            return None
        x, y, w, h = self.box
        return x * width / 100.0, y * height / 100.0, (x + w) * width / 100.0, (y + h) * height / 100.0


def _flag(region: dict) -> bool:
    for flag in (region.get("is_positive"), (region.get("value") or {}).get("positive")):
        if flag is not None:
            return flag.strip().lower() in {"1", "true", "yes"} if isinstance(flag, str) else bool(flag)
    return True


def _number(value: dict, key: str) -> float:
    raw = value.get(key)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"context region value has no numeric {key!r} (got {raw!r})")
    return float(raw)


def parse_prompts(regions: list) -> Prompts:
    """Keypoints (``is_positive`` as the open-source UI sends it, or ``value.positive`` as
    the SAM tool does) and boxes of the event's ``result``."""
    prompts = Prompts()
    for region in regions:
        if not isinstance(region, dict):
            raise ValueError(f"a context region must be an object, got {type(region).__name__}")
        value = region.get("value") or {}
        kind = region.get("type")
        if kind == "keypointlabels" or (kind is None and "x" in value and "width" not in value):
            prompts.points.append((_number(value, "x"), _number(value, "y")))
            prompts.labels.append(1 if _flag(region) else 0)
        elif kind == "rectanglelabels" or (kind is None and "width" in value and "height" in value):
            prompts.box = (_number(value, "x"), _number(value, "y"), _number(value, "width"), _number(value, "height"))
        else:
            continue
        names = value.get(kind or "") or value.get("labels") or []
        prompts.names += [str(n) for n in names] if isinstance(names, list) else []
    return prompts


def bitmask_value(mask: np.ndarray) -> dict[str, Any]:
    """``{"imageDataURL": "data:image/png;base64,...", "width", "height"}`` of a 2-D mask."""
    import numpy as np
    from PIL import Image

    arr = (np.asarray(mask) > 0).astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return {
        "imageDataURL": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
        "width": int(arr.shape[1]),
        "height": int(arr.shape[0]),
    }


def answer(control: ControlInfo, kind: str, value: dict[str, Any]) -> Prediction:
    """One event answer: a prediction with the single item upstream's tool reads."""
    return Prediction(
        [
            {
                "id": uuid.uuid4().hex[:8],
                "from_name": control.name,
                "to_name": control.to_name[0],
                "type": kind,
                "origin": "manual",
                "value": value,
            }
        ]
    )


def capabilities_value(
    supported: Iterable[ControlInfo], prompts: Iterable[str], model_info: dict[str, Any], track: bool
) -> dict[str, Any]:
    """``capabilities``: the prompts the backend takes and one target per control tag it drives."""
    targets, seen = [], set()
    for control in supported:
        if control.tag in seen or control.tag not in OUTPUTS:
            continue
        seen.add(control.tag)
        target: dict[str, Any] = {"tag": control.tag, "output": OUTPUTS[control.tag]}
        if control.tag in VIDEO_TAGS and track:
            target["features"] = ["track"]
        targets.append(target)
    return {"prompts": list(prompts), "targets": targets, "model_info": model_info}


@dataclass
class TrackPlan:
    """What a backend's ``sam_track`` returns: the answer's numbers and the frames to produce.
    ``frames`` is called in the session's thread with a ``cancelled()`` check and yields
    ``{"frame", "time_ms", "imageDataURL", "width", "height"}`` items."""

    total_frames: int
    fps: float
    duration_ms: float
    frames: Callable[[Callable[[], bool]], Iterator[dict[str, Any]]]


@runtime_checkable
class SamEventBackend(Protocol):
    """What a backend implements to answer the SAM events (the rest is this module's)."""

    def sam_capabilities(self, config: ParsedConfig) -> dict[str, Any]:
        """The ``capabilities`` value (see :func:`capabilities_value`)."""

    def sam_prewarm(self, request: SamRequest, ctx: PredictContext) -> dict[str, Any]:
        """Encode the frames of the window (or the image); the ``prewarm_ack`` value."""

    def sam_predict(self, request: SamRequest, ctx: PredictContext) -> dict[str, Any] | None:
        """The mask for the prompts on the request's frame or image, as :func:`bitmask_value`;
        None when there is no prompt."""

    def sam_track(self, request: SamRequest, ctx: PredictContext) -> TrackPlan:
        """A plan to track the prompts through the video (raise ValueError for bad input)."""

    def sam_release(self, task_id: int | None) -> None:
        """Drop what the backend keeps for the task (encoded frames)."""


class TrackSession:
    """One tracking job: a producer thread appends frames, ``track_progress`` drains them."""

    def __init__(self, task_id: int | None, total: int, limit: int = 256):
        self.id = uuid.uuid4().hex[:12]
        self.task_id = task_id
        self.total = total
        self.produced = 0
        self.error: str | None = None
        self.cancelled = False
        self.finished = False
        self.touched = time.monotonic()
        self._frames: deque[dict] = deque()
        self._limit = limit  # frames waiting for a poll; the producer waits beyond it
        self._cond = threading.Condition()

    def append(self, frame: dict) -> None:
        with self._cond:
            while len(self._frames) >= self._limit and not self.cancelled:
                self._cond.wait(0.5)
            if self.cancelled:
                return
            self._frames.append(frame)
            self.produced += 1
            self._cond.notify_all()

    def finish(self, error: str | None = None) -> None:
        with self._cond:
            self.finished = True
            self.error = self.error or error
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self.cancelled = self.finished = True
            self._frames.clear()
            self._cond.notify_all()

    def drain(self, wait: float, most: int) -> tuple[list[dict], bool]:
        """Up to ``most`` new frames (waiting up to ``wait`` seconds for the first) and whether
        the session is done (finished and drained)."""
        with self._cond:
            self.touched = time.monotonic()
            if not self._frames and not self.finished:
                self._cond.wait_for(lambda: self._frames or self.finished, timeout=wait)
            frames = [self._frames.popleft() for _ in range(min(most, len(self._frames)))]
            self._cond.notify_all()
            return frames, self.finished and not self._frames


class TrackSessions:
    """The process's tracking sessions: at most ``capacity`` running, finished ones dropped
    after ``ttl`` seconds without a poll."""

    def __init__(self, capacity: int = 1, ttl: float = 300.0, poll_wait: float = 2.0, batch: int = 32):
        self.capacity = capacity
        self.ttl = ttl
        self.poll_wait = poll_wait
        self.batch = batch
        self._sessions: dict[str, TrackSession] = {}
        self._lock = threading.Lock()

    def _sweep(self) -> None:
        now = time.monotonic()
        for sid, session in list(self._sessions.items()):
            if now - session.touched > self.ttl:
                session.cancel()
                del self._sessions[sid]

    def active(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions.values() if not s.finished)

    def start(self, task_id: int | None, plan: TrackPlan) -> TrackSession | None:
        """A running session for ``plan``, or None when ``capacity`` sessions run already."""
        with self._lock:
            self._sweep()
            if sum(1 for s in self._sessions.values() if not s.finished) >= self.capacity:
                return None
            session = TrackSession(task_id, plan.total_frames)
            self._sessions[session.id] = session

        def run() -> None:
            try:
                for frame in plan.frames(lambda: session.cancelled):
                    if session.cancelled:
                        break
                    session.append(frame)
                session.finish()
            except Exception as exc:  # the poll reports it; the process goes on
                log.exception("SAM tracking session %s failed", session.id)
                session.finish(f"{type(exc).__name__}: {exc}")

        threading.Thread(target=run, name=f"sam-track-{session.id}", daemon=True).start()
        return session

    def get(self, session_id: str, task_id: int | None) -> TrackSession | None:
        with self._lock:
            session = self._sessions.get(session_id)
        return session if session is not None and session.task_id == task_id else None

    def progress(self, session_id: str, task_id: int | None) -> dict[str, Any]:
        session = self.get(session_id, task_id)
        if session is None:
            return {"error": "session not found", "done": True}
        frames, done = session.drain(self.poll_wait, self.batch)
        if done:
            with self._lock:
                self._sessions.pop(session_id, None)
        return {
            "frames": frames,
            "produced": session.produced,
            "total": session.total,
            "done": done,
            "error": session.error,
        }

    def cancel(self, session_id: str, task_id: int | None) -> bool:
        session = self.get(session_id, task_id)
        if session is None:
            return False
        session.cancel()
        with self._lock:
            self._sessions.pop(session_id, None)
        return True

    def release(self, task_id: int | None) -> int:
        with self._lock:
            mine = [sid for sid, s in self._sessions.items() if s.task_id == task_id]
            for sid in mine:
                self._sessions.pop(sid).cancel()
        return len(mine)


def dispatch_sam_event(backend: Any, tasks: list[Task], ctx: PredictContext) -> list[Prediction | TaskError] | None:
    """Answer a SAM event for each task, or None on the classic path (the caller goes on).

    ``backend`` implements :class:`SamEventBackend` and has a ``sam_sessions`` (a
    :class:`TrackSessions`); one that does not gets an error naming the missing support."""
    event = event_of(ctx.params)
    if event is None:
        return None
    if event not in EVENTS:
        return [TaskError(f"unknown SAM event {event!r}: one of {', '.join(EVENTS)}") for _ in tasks]
    if not isinstance(backend, SamEventBackend):
        return [TaskError(f"the {backend.backend_id} backend does not answer Label Studio's SAM events") for _ in tasks]
    supported = backend.supported_controls(ctx.config)
    control = event_control(ctx.config, supported)
    if control is None:
        return [TaskError("no control the SAM events can drive in this label config") for _ in tasks]
    if event == "capabilities":  # task-agnostic: the same answer for each task
        return [answer(control, "capabilities", backend.sam_capabilities(ctx.config)) for _ in tasks]
    sessions: TrackSessions = backend.sam_sessions
    out: list[Prediction | TaskError] = []
    for task in tasks:
        request = SamRequest(event, ctx.interactive or {}, task, control)
        try:
            out.append(_answer_one(backend, sessions, request, ctx))
        except ValueError as exc:
            out.append(TaskError(f"task {task.id}: bad {event} event: {exc}"))
        except TaskError as exc:
            out.append(exc)
    return out


def _answer_one(backend: Any, sessions: TrackSessions, request: SamRequest, ctx: PredictContext) -> Prediction:
    control, task_id, event = request.control, request.task.id, request.event
    if event == "release":
        sessions.release(task_id)
        backend.sam_release(task_id)
        return answer(control, "release_ack", {"status": "released"})
    if event == "track_progress":
        return answer(control, "track_progress", sessions.progress(request.session_id, task_id))
    if event == "track_cancel":
        found = sessions.cancel(request.session_id, task_id)
        return answer(control, "track_cancel_ack", {"status": "cancelled" if found else "not_found"})
    if event == "prewarm":
        try:
            return answer(control, "prewarm_ack", backend.sam_prewarm(request, ctx))
        except ValueError as exc:  # upstream answers a bad window inside the ack
            return answer(control, "prewarm_ack", {"status": "error", "error": str(exc)})
    if event == "predict":
        value = backend.sam_predict(request, ctx)
        return Prediction([]) if value is None else answer(control, "bitmask", value)
    # track
    if not request.is_video:
        raise ValueError("track needs a video object (Video) in the label config")
    try:
        plan = backend.sam_track(request, ctx)
    except ValueError as exc:
        return answer(control, "track_error", {"error": str(exc), "done": True})
    session = sessions.start(task_id, plan)
    if session is None:
        active = sessions.active()
        return answer(
            control,
            "track_busy",
            {
                "error": "tracking capacity exhausted",
                "active_or_queued": active,
                "resident_sessions": active,
                "max_sessions": sessions.capacity,
            },
        )
    return answer(
        control,
        "track_started",
        {"session_id": session.id, "total_frames": plan.total_frames, "fps": plan.fps, "duration_ms": plan.duration_ms},
    )
