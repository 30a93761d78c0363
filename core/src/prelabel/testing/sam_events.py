"""Test support for backends that answer Label Studio's SAM events (prelabel.sam_events):
the captured event contexts and the calls every SAM backend's event tests make.

:data:`SAM_EVENT_CONTEXTS` holds the contexts Label Studio Enterprise's SAM tool sends through
``/predict`` (``params.context.event``), taken from upstream label-studio-ml-backend's
``segment_anything_video_interactive`` example (its ``source`` says where): sam2 and sam3 are
tested with the same bodies.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from prelabel.testing.client import make_runtime, per_task_results, serve_in_process

__all__ = [
    "SAM_EVENT_CONTEXTS",
    "ui_smart_keypoint_body",
    "ui_smart_rectangle_region",
    "bitmask_pixels",
    "event_value",
    "post_event",
    "send_event",
    "served_backend",
    "track_to_the_end",
]

SAM_EVENT_CONTEXTS: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "sam_events.json").read_text())
_UI = Path(__file__).parent / "data" / "ui"  # what the open-source labeling UI sends (data/ui/README.md)


def ui_smart_keypoint_body() -> dict[str, Any]:
    """The whole /predict body of a smart keypoint clicked after two ordinary keypoints of the
    same label, as the labeling UI sent it (docs/label-studio-protocol.md): only the new
    point carries ``is_positive``; the image is a relative ``/data/upload/...`` path."""
    return json.loads((_UI / "ui_smart_keypoint_after_two_ordinary_keypoints.json").read_text())


def ui_smart_rectangle_region() -> dict[str, Any]:
    """The one region of a smart rectangle's context (a smart box always arrives alone)."""
    return json.loads((_UI / "ui_smart_rectangle_region.json").read_text())


@contextlib.contextmanager
def served_backend(backend_cls: type, home: Path, wait_ready: float = 300) -> Iterator[tuple[Any, Any]]:
    """(an in-process client of the app, its backend) for one test module; the backend's
    model is loaded (``/health`` UP) before it is yielded."""
    runtime = make_runtime(backend_cls, home)
    try:
        with serve_in_process(runtime, wait_ready=wait_ready) as client:
            yield client, runtime.backend
    finally:
        runtime.close()


def post_event(client: Any, context: dict, config: str, data: dict, task_id: int = 21, project: str = "5.1") -> dict:
    """One task's ``/predict`` with this ``params.context``; its result item (maybe with "error")."""
    resp = client.post(
        "/predict",
        json={
            "tasks": [{"id": task_id, "data": data}],
            "project": project,
            "label_config": config,
            "params": {"context": context},
        },
    )
    assert resp.status_code == 200, resp.text
    (item,) = per_task_results(resp.json())
    return item


def send_event(client: Any, context: dict, config: str, data: dict, task_id: int = 21) -> dict:
    """:func:`post_event` that must not fail the task."""
    item = post_event(client, context, config, data, task_id)
    assert "error" not in item, item["error"]
    return item


def event_value(item: dict, kind: str, from_name: str) -> dict:
    """The ``value`` of the one result an event answers with, checked to be of ``kind``
    (``prewarm_ack``, ``bitmask``...), from ``from_name`` and ``origin: manual``."""
    (result,) = item["result"]
    assert result["type"] == kind and result["from_name"] == from_name and result["origin"] == "manual", result
    return result["value"]


def bitmask_pixels(value: dict) -> np.ndarray:
    """The PNG of a ``bitmask`` (or tracked frame) value as an array."""
    from PIL import Image

    assert value["imageDataURL"].startswith("data:image/png;base64,")
    return np.array(Image.open(io.BytesIO(base64.b64decode(value["imageDataURL"].split(",", 1)[1]))))


def track_to_the_end(
    client: Any, context: dict, config: str, data: dict, from_name: str = "box", polls: int = 300
) -> tuple[dict, list[dict]]:
    """Start a ``track``, poll ``track_progress`` until done; (the ``track_started`` value, every
    frame produced, in the order they came)."""
    started = event_value(send_event(client, context, config, data), "track_started", from_name)
    frames: list[dict] = []
    for _ in range(polls):
        progress = event_value(
            send_event(
                client, {**SAM_EVENT_CONTEXTS["track_progress"], "session_id": started["session_id"]}, config, data
            ),
            "track_progress",
            from_name,
        )
        assert progress["error"] is None, progress["error"]
        assert progress["total"] == started["total_frames"]
        frames += progress["frames"]
        if progress["done"]:
            return started, frames
    raise AssertionError(f"the track was not done after {polls} polls")
