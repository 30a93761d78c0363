"""Label Studio's SAM events on the sam3 backend (tiny random SAM 3): each event answered in
upstream's shape, on an image and on a video; the classic context.result path is untouched."""

from __future__ import annotations

import pytest
import sam3_configs as configs
from prelabel_sam3 import Sam3Backend
from sam3_media import HEIGHT, WIDTH, image_uri, write_video

from prelabel.testing.client import per_task_results
from prelabel.testing.images import data_uri
from prelabel.testing.sam_events import SAM_EVENT_CONTEXTS as EVENTS
from prelabel.testing.sam_events import bitmask_pixels as png
from prelabel.testing.sam_events import event_value as only
from prelabel.testing.sam_events import send_event as send
from prelabel.testing.sam_events import served_backend, track_to_the_end


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_backend(Sam3Backend, tmp_path_factory.mktemp("home")) as both:
        yield both


@pytest.fixture(scope="module")
def video_uri(tmp_path_factory) -> str:
    path = write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=5)
    return data_uri(path.read_bytes(), "video/mp4")


def test_capabilities(served):
    client, _ = served
    value = only(send(client, EVENTS["capabilities"], configs.SMART, {"image": image_uri(1)}), "capabilities", "tag")
    assert value["prompts"] == ["point", "box", "text"] and value["model_info"]["name"] == "SAM3"
    assert value["targets"] == [{"tag": "BrushLabels", "output": "mask"}, {"tag": "RectangleLabels", "output": "bbox"}]


def test_image_prewarm_then_predict_uses_the_cached_encoding(served):
    client, backend = served
    data = {"image": image_uri(7)}
    calls = backend.network.tracker_encoder_calls
    ack = only(send(client, EVENTS["prewarm"], configs.SMART, data), "prewarm_ack", "tag")
    assert ack == {"status": "ok", "cached": [0], "pending": []}
    assert backend.network.tracker_encoder_calls == calls + 1
    for name in ("predict", "predict_box"):
        value = only(send(client, EVENTS[name], configs.SMART, data), "bitmask", "tag")
        assert (value["width"], value["height"]) == (WIDTH, HEIGHT) and png(value).shape == (HEIGHT, WIDTH)
    assert backend.network.tracker_encoder_calls == calls + 1, "predict after prewarm encoded the image again"


def test_video_prewarm_predict_track_progress_release(served, video_uri):
    client, backend = served
    data = {"video": video_uri}
    ack = only(send(client, EVENTS["prewarm"], configs.VIDEO, data), "prewarm_ack", "box")
    assert ack == {"status": "ok", "cached": [0, 1, 2], "pending": [], "frame_count": 5}
    calls = backend.network.tracker_encoder_calls
    value = only(send(client, EVENTS["predict"], configs.VIDEO, data), "bitmask", "box")  # frame 2 = index 1
    assert png(value).shape == (64, 96) and backend.network.tracker_encoder_calls == calls
    started, frames = track_to_the_end(client, EVENTS["track"], configs.VIDEO, data)
    assert started["total_frames"] == 4 and started["fps"] > 0 and started["duration_ms"] > 0
    assert frames, "the track produced no frame"
    indices = [f["frame"] for f in frames]
    assert indices == list(range(len(indices))) and len(indices) <= 4  # from frame 1 (index 0), forward
    assert all(png(f).shape == (64, 96) for f in frames)
    cancel = only(
        send(client, {**EVENTS["track_cancel"], "session_id": started["session_id"]}, configs.VIDEO, data),
        "track_cancel_ack",
        "box",
    )
    assert cancel == {"status": "not_found"}  # finished sessions are gone
    size = len(backend.embeddings)
    assert only(send(client, EVENTS["release"], configs.VIDEO, data), "release_ack", "box") == {"status": "released"}
    assert len(backend.embeddings) < size, "release kept the task's encoded frames"


def test_an_unknown_event_fails_the_task_by_name(served):
    client, _ = served
    resp = client.post(
        "/predict",
        json={
            "tasks": [{"id": 1, "data": {"image": image_uri(1)}}],
            "project": "5.1",
            "label_config": configs.SMART,
            "params": {"context": {"event": "zoom"}},
        },
    )
    (item,) = per_task_results(resp.json())
    assert item["result"] == [] and "unknown SAM event 'zoom'" in item["error"]
