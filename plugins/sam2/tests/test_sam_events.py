"""Label Studio's SAM events on the sam2 backend (random-weight SAM 2.1 tiny): each event
answered in upstream's shape (prelabel.testing.sam_events' contexts, which sam3's tests send too),
on an image and on a video; the classic context.result path is untouched."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sam2_configs as configs
from prelabel_sam2 import Sam2Backend
from sam2_media import HEIGHT, WIDTH, click, image_uri, write_video

from prelabel.testing.images import data_uri
from prelabel.testing.sam_events import SAM_EVENT_CONTEXTS as EVENTS
from prelabel.testing.sam_events import bitmask_pixels as png
from prelabel.testing.sam_events import event_value as only
from prelabel.testing.sam_events import post_event as post
from prelabel.testing.sam_events import send_event as send
from prelabel.testing.sam_events import served_backend, track_to_the_end

BOX = {"type": "rectanglelabels", "value": {"x": 10.0, "y": 20.0, "width": 40.0, "height": 55.0}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_backend(Sam2Backend, tmp_path_factory.mktemp("home")) as both:
        yield both


@pytest.fixture(scope="module")
def video_uri(tmp_path_factory) -> str:
    path = write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=6)
    return data_uri(path.read_bytes(), "video/mp4")


def track(client, context: dict, data: dict) -> tuple[dict, list[dict]]:
    return track_to_the_end(client, context, configs.VIDEO, data)


def test_capabilities(served):
    client, backend = served
    value = only(
        send(client, EVENTS["capabilities"], configs.UPSTREAM_SAM2_IMAGE, {"image": image_uri(1)}),
        "capabilities",
        "tag",
    )
    assert value == {
        "prompts": ["point", "box"],
        "targets": [{"tag": "BrushLabels", "output": "mask"}],
        "model_info": {"name": "SAM2", "version": backend.model_version()},
    }
    video = only(send(client, EVENTS["capabilities"], configs.VIDEO, {"video": "unused"}), "capabilities", "box")
    assert video["targets"] == [{"tag": "VideoRectangle", "output": "bbox", "features": ["track"]}]
    assert backend.sam_sessions.capacity == 1  # one propagation at a time; a second track is busy


def test_image_prewarm_fills_both_caches_and_predict_uses_them(served):
    client, backend = served
    data = {"image": image_uri(7)}
    calls = backend.model.encoder_calls
    ack = only(send(client, EVENTS["prewarm"], configs.UPSTREAM_SAM2_IMAGE, data), "prewarm_ack", "tag")
    assert ack == {"status": "ok", "cached": [0], "pending": []}
    assert backend.model.encoder_calls == calls + 1
    assert backend.store.writes >= 1 and len(list(backend.store.root.glob("*/*/*.pt"))) >= 1
    for name in ("predict", "predict_box"):
        value = only(send(client, EVENTS[name], configs.UPSTREAM_SAM2_IMAGE, data), "bitmask", "tag")
        assert (value["width"], value["height"]) == (WIDTH, HEIGHT) and png(value).shape == (HEIGHT, WIDTH)
        assert set(np.unique(png(value))) <= {0, 255}
    assert backend.model.encoder_calls == calls + 1, "predict after prewarm encoded the image again"
    # release drops the task's encodings from memory; the disk cache (the embed job's) keeps them
    released = only(send(client, EVENTS["release"], configs.UPSTREAM_SAM2_IMAGE, data), "release_ack", "tag")
    assert released == {"status": "released"}
    hits = backend.store.hits
    only(send(client, EVENTS["prewarm"], configs.UPSTREAM_SAM2_IMAGE, data), "prewarm_ack", "tag")
    assert backend.model.encoder_calls == calls + 1 and backend.store.hits == hits + 1


def test_the_mask_follows_the_prompts_and_the_classic_path_is_unchanged(served):
    client, backend = served
    data = {"image": image_uri(3)}
    clicks = only(send(client, EVENTS["predict"], configs.UPSTREAM_SAM2_IMAGE, data), "bitmask", "tag")
    boxed = only(send(client, EVENTS["predict_box"], configs.UPSTREAM_SAM2_IMAGE, data), "bitmask", "tag")
    assert not np.array_equal(png(clicks), png(boxed)), "the prompts did not reach the model"
    negative = {
        "event": "predict",
        "result": [{"type": "keypointlabels", "value": {"x": 5, "y": 5, "positive": False}}],
    }
    assert send(client, negative, configs.UPSTREAM_SAM2_IMAGE, data)["result"] == []  # nothing to subtract from
    calls = backend.model.encoder_calls
    classic = send(
        client, {"result": [click(45.0, 45.0, "defect", True, from_name="tag2")]}, configs.UPSTREAM_SAM2_IMAGE, data
    )
    assert backend.model.encoder_calls == calls, "a classic click did not share the events' image encoding"
    assert [r["type"] for r in classic["result"]] == ["brushlabels"]
    assert classic["result"][0]["value"]["brushlabels"] == ["defect"]


def test_video_prewarm_predict_track_progress_release(served, video_uri):
    client, backend = served
    data = {"video": video_uri}
    ack = only(send(client, EVENTS["prewarm"], configs.VIDEO, data), "prewarm_ack", "box")
    assert ack == {"status": "ok", "cached": [0, 1, 2], "pending": [], "frame_count": 6}
    calls = backend.model.encoder_calls
    value = only(send(client, EVENTS["predict"], configs.VIDEO, data), "bitmask", "box")  # frame 2 = index 1
    assert png(value).shape == (64, 96) and backend.model.encoder_calls == calls, "a prewarmed frame was encoded"
    only(send(client, EVENTS["predict_box"], configs.VIDEO, data), "bitmask", "box")  # time_ms 100: index 1 at 10 fps
    assert backend.model.encoder_calls == calls
    started, frames = track(client, EVENTS["track"], data)
    assert started["total_frames"] == 4 and started["fps"] == pytest.approx(10.0)
    assert started["duration_ms"] == pytest.approx(600.0)
    indices = [f["frame"] for f in frames]
    assert frames and indices == list(range(len(indices))) and len(indices) <= 4  # from frame 1 (index 0), forward
    assert all(png(f).shape == (64, 96) and f["time_ms"] == pytest.approx(f["frame"] * 100.0) for f in frames)
    cancel = only(
        send(client, {**EVENTS["track_cancel"], "session_id": started["session_id"]}, configs.VIDEO, data),
        "track_cancel_ack",
        "box",
    )
    assert cancel == {"status": "not_found"}  # finished sessions are gone
    size = len(backend.embeddings)
    assert only(send(client, EVENTS["release"], configs.VIDEO, data), "release_ack", "box") == {"status": "released"}
    assert len(backend.embeddings) <= size - 3, "release kept the task's encoded frames"


@pytest.mark.parametrize(
    ("direction", "total", "forward", "backward"),
    [
        ("forward", 3, [3, 4, 5], []),
        ("backward", 3, [], [3, 2, 1]),
        ("both", 5, [3, 4, 5], [2, 1]),  # the prompt frame once, from the forward pass
    ],
)
def test_track_directions_send_each_frame_once_in_order(
    served, video_uri, monkeypatch, direction, total, forward, backward
):
    client, backend = served
    net, calls = backend.model.net, []
    for name in ("init_state", "propagate_in_video"):  # spies: the track is SAM 2's video propagation
        real = getattr(net, name)
        monkeypatch.setattr(net, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    context = {"event": "track", "frame": 4, "max_frames": 2, "direction": direction, "result": [BOX]}
    started, frames = track(client, context, {"video": video_uri})
    assert started["total_frames"] == total
    indices = [f["frame"] for f in frames]
    ahead = [i for i in indices if i in forward]
    behind = [i for i in indices if i not in forward]
    # each direction stops early only where the object is lost, so each is a prefix of its range
    assert indices == ahead + behind and ahead == forward[: len(ahead)] and behind == backward[: len(behind)]
    assert indices and indices[0] == 3
    assert calls == ["init_state"] + ["propagate_in_video"] * (2 if direction == "both" else 1)  # one state


def test_one_track_at_a_time_and_cancel_stops_the_propagation(served, video_uri, monkeypatch):
    client, backend = served
    net, gate, steps = backend.model.net, threading.Event(), []
    real = net.propagate_in_video

    def held(*args, **kwargs):  # the real propagation, each frame waiting for the test's go
        for step in real(*args, **kwargs):
            gate.wait(30)
            steps.append(step[0])
            yield step

    monkeypatch.setattr(net, "propagate_in_video", held)
    data = {"video": video_uri}
    body = {"event": "track", "frame": 1, "max_frames": 5, "result": [BOX]}
    first = only(send(client, body, configs.VIDEO, data), "track_started", "box")
    busy = only(send(client, body, configs.VIDEO, data), "track_busy", "box")
    assert busy["error"] == "tracking capacity exhausted" and busy["max_sessions"] == 1
    cancel = {**EVENTS["track_cancel"], "session_id": first["session_id"]}
    assert only(send(client, cancel, configs.VIDEO, data, task_id=22), "track_cancel_ack", "box") == {
        "status": "not_found"
    }  # another task's session is not this one's to cancel
    assert only(send(client, cancel, configs.VIDEO, data), "track_cancel_ack", "box") == {"status": "cancelled"}
    gate.set()
    monkeypatch.setattr(net, "propagate_in_video", real)
    _, frames = track(client, body, data)  # the slot is free again
    assert frames and len(steps) <= 2, "the cancelled propagation went on"


def test_bad_events_are_answered_by_name(served, video_uri):
    client, _ = served
    data = {"video": video_uri}
    bad = only(send(client, {**EVENTS["prewarm"], "window": -1}, configs.VIDEO, data), "prewarm_ack", "box")
    assert bad["status"] == "error" and "window" in bad["error"]
    error = only(send(client, {"event": "track", "result": []}, configs.VIDEO, data), "track_error", "box")
    assert error["done"] is True and "click or a box" in error["error"]
    item = post(client, {"event": "track", "result": [BOX]}, configs.UPSTREAM_SAM2_IMAGE, {"image": image_uri(1)})
    assert item["result"] == [] and "video" in item["error"]
    item = post(client, {"event": "zoom"}, configs.UPSTREAM_SAM2_IMAGE, {"image": image_uri(1)})
    assert item["result"] == [] and "unknown SAM event 'zoom'" in item["error"]


def test_frames_on_demand_are_what_sam2_loads(tmp_path):
    """The tracker reads frames one at a time; they must be the tensors sam2's own loader makes."""
    import cv2
    from prelabel_sam2.model import FrameFolder
    from sam2.utils.misc import load_video_frames

    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    images, height, width = load_video_frames(str(tmp_path), image_size=64, offload_video_to_cpu=True)
    folder = FrameFolder(tmp_path, 3, 64)
    assert len(folder) == 3 and (height, width) == (40, 56)
    for i in (2, 0, 1):
        assert folder[i].shape == images[i].shape and np.allclose(folder[i].numpy(), images[i].numpy(), atol=1e-5)
