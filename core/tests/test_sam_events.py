"""prelabel.sam_events: Label Studio's SAM events (upstream label-studio-ml-backend PR #893's
shapes) dispatched by params.context.event, on a small fake backend with no model."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
from PIL import Image

from prelabel import Backend, Prediction, TaskError, parse_label_config
from prelabel.sam_events import (
    EVENTS,
    SamRequest,
    TrackPlan,
    TrackSessions,
    bitmask_value,
    dispatch_sam_event,
    event_control,
    event_of,
    parse_prompts,
)
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results

IMAGE = """<View><Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image" smart="true"><Label value="Car"/></KeyPointLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Car"/></PolygonLabels>
  <BrushLabels name="mask" toName="image"><Label value="Car"/></BrushLabels></View>"""
VIDEO = """<View><Video name="video" value="$video"/><VideoRectangle name="box" toName="video"/></View>"""


class FakeSam(Backend):
    """Answers every event from a fixed 4x6 mask; tracking yields ``frames`` frames, each
    waiting for ``gate`` when one is set."""

    backend_id = "fakesam"
    supports = {
        "BrushLabels": frozenset({"Image"}),
        "PolygonLabels": frozenset({"Image"}),
        "VideoRectangle": frozenset({"Video"}),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sam_sessions = TrackSessions(capacity=1, poll_wait=0.05)
        self.released: list = []
        self.gate: threading.Event | None = None
        self.seen: list[SamRequest] = []

    def predict(self, tasks, ctx):
        return dispatch_sam_event(self, tasks, ctx) or [Prediction([]) for _ in tasks]

    def sam_capabilities(self, config):
        from prelabel.sam_events import capabilities_value

        return capabilities_value(self.supported_controls(config), ["point", "box"], {"name": "fake"}, track=True)

    def sam_prewarm(self, request, ctx):
        window = request.bounded_int("window", 20, 20)
        frame = request.frame_index(10.0, 100)
        return {"status": "ok", "cached": list(range(frame, frame + window + 1)), "pending": [], "frame_count": 100}

    def sam_predict(self, request, ctx):
        self.seen.append(request)
        if request.prompts().empty:
            return None
        mask = np.zeros((4, 6), bool)
        mask[1:3, 2:5] = True
        return bitmask_value(mask)

    def sam_track(self, request, ctx):
        frames = request.max_frames(10.0, 5)
        start = request.frame_index(10.0, 100)

        def produce(cancelled):
            for i in range(start, start + frames):
                if self.gate is not None:
                    self.gate.wait(10)
                yield {"frame": i, "time_ms": i * 100.0, **bitmask_value(np.ones((2, 2), bool))}

        return TrackPlan(frames, 10.0, 10000.0, produce)

    def sam_release(self, task_id):
        self.released.append(task_id)


@pytest.fixture
def served(tmp_path):
    runtime = make_runtime(FakeSam, tmp_path / "home")
    with serve_in_process(runtime) as client:
        yield client, runtime.backend
    runtime.close()


def event(client, context: dict, config: str = IMAGE, task: dict | None = None) -> dict:
    task = task or {"id": 7, "data": {"image": "data:,x", "video": "data:,x"}}
    resp = client.post(
        "/predict", json={"tasks": [task], "project": "1.1", "label_config": config, "params": {"context": context}}
    )
    assert resp.status_code == 200, resp.text
    (item,) = per_task_results(resp.json())
    return item


def only(item: dict, kind: str) -> dict:
    assert "error" not in item, item.get("error")
    (result,) = item["result"]
    assert result["type"] == kind and result["origin"] == "manual" and result["id"]
    return result


def test_capabilities_name_the_prompts_and_the_control_tags_driven(served):
    client, _ = served
    result = only(event(client, {"event": "capabilities"}), "capabilities")
    assert result["from_name"] == "mask" and result["to_name"] == "image"  # the image control upstream picks first
    assert result["value"] == {
        "prompts": ["point", "box"],
        "model_info": {"name": "fake"},
        "targets": [{"tag": "PolygonLabels", "output": "polygon"}, {"tag": "BrushLabels", "output": "mask"}],
    }
    video = only(event(client, {"event": "capabilities"}, VIDEO), "capabilities")
    assert video["value"]["targets"] == [{"tag": "VideoRectangle", "output": "bbox", "features": ["track"]}]


def test_prewarm_acks_the_window_and_a_bad_window_is_an_error_inside_the_ack(served):
    client, _ = served
    value = only(
        event(client, {"event": "prewarm", "frame": 3, "window": 2, "direction": "forward"}, VIDEO), "prewarm_ack"
    )["value"]
    assert value == {"status": "ok", "cached": [2, 3, 4], "pending": [], "frame_count": 100}
    bad = only(event(client, {"event": "prewarm", "window": -1}, VIDEO), "prewarm_ack")["value"]
    assert bad["status"] == "error" and "window" in bad["error"]


def test_predict_answers_a_png_bitmask_and_nothing_without_prompts(served):
    client, backend = served
    context = {
        "event": "predict",
        "time_ms": 250,
        "result": [
            {"type": "keypointlabels", "value": {"x": 45.2, "y": 30.1, "positive": True}},
            {"type": "keypointlabels", "value": {"x": 60.0, "y": 55.0, "positive": False}},
        ],
    }
    value = only(event(client, context, VIDEO), "bitmask")["value"]
    assert value["width"] == 6 and value["height"] == 4
    png = Image.open(io.BytesIO(base64.b64decode(value["imageDataURL"].split(",", 1)[1])))
    assert png.size == (6, 4) and np.array(png)[1, 2] == 255 and np.array(png)[0, 0] == 0
    request = backend.seen[-1]
    assert request.frame_index(10.0, 100) == 2  # time_ms wins over frame, floored as the browser shows it
    assert request.prompts().labels == [1, 0]
    assert event(client, {"event": "predict", "result": []})["result"] == []


def test_track_then_poll_progress_until_done(served):
    client, _ = served
    started = only(
        event(
            client,
            {
                "event": "track",
                "frame": 3,
                "max_frames": 3,
                "result": [{"type": "keypointlabels", "value": {"x": 40, "y": 50}}],
            },
            VIDEO,
        ),
        "track_started",
    )["value"]
    assert set(started) == {"session_id", "total_frames", "fps", "duration_ms"} and started["total_frames"] == 3
    frames, done, polls = [], False, 0
    while not done and polls < 200:
        value = only(
            event(client, {"event": "track_progress", "session_id": started["session_id"]}, VIDEO), "track_progress"
        )["value"]
        assert set(value) == {"frames", "produced", "total", "done", "error"} and value["error"] is None
        frames += value["frames"]
        done, polls = value["done"], polls + 1
    assert done and [f["frame"] for f in frames] == [2, 3, 4]
    assert all(
        f["imageDataURL"].startswith("data:image/png;base64,") and f["time_ms"] == f["frame"] * 100.0 for f in frames
    )
    gone = only(
        event(client, {"event": "track_progress", "session_id": started["session_id"]}, VIDEO), "track_progress"
    )["value"]
    assert gone == {"error": "session not found", "done": True}


def test_a_second_track_is_busy_and_cancel_frees_the_slot(served):
    client, backend = served
    backend.gate = threading.Event()
    body = {
        "event": "track",
        "max_frames": 5,
        "result": [{"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 5, "height": 5}}],
    }
    first = only(event(client, body, VIDEO), "track_started")["value"]
    busy = only(event(client, body, VIDEO), "track_busy")["value"]
    assert busy["error"] == "tracking capacity exhausted" and busy["max_sessions"] == 1
    other_task = {"id": 8, "data": {"video": "data:,x"}}
    cancel = {"event": "track_cancel", "session_id": first["session_id"]}
    assert only(event(client, cancel, VIDEO, other_task), "track_cancel_ack")["value"] == {"status": "not_found"}
    assert only(event(client, cancel, VIDEO), "track_cancel_ack")["value"] == {"status": "cancelled"}
    backend.gate.set()
    only(event(client, body, VIDEO), "track_started")


def test_release_and_unknown_events(served):
    client, backend = served
    assert only(event(client, {"event": "release"}, VIDEO), "release_ack")["value"] == {"status": "released"}
    assert backend.released == [7]
    item = event(client, {"event": "teleport"})
    assert item["result"] == [] and "teleport" in item["error"] and "track_progress" in item["error"]
    item = event(client, {"event": "track", "result": []})  # an image config cannot track
    assert item["result"] == [] and "video" in item["error"]


def test_the_classic_path_has_no_event():
    assert event_of(None) is None and event_of({"context": None}) is None
    assert event_of({"context": {"result": []}}) is None
    assert event_of({"context": {"event": "prewarm"}}) == "prewarm"
    assert set(EVENTS) == {"capabilities", "prewarm", "predict", "track", "track_progress", "track_cancel", "release"}


def test_a_backend_without_the_methods_is_told_so():
    class Plain(Backend):
        backend_id = "plain"

    config = parse_label_config(IMAGE)
    ctx = type("Ctx", (), {"params": {"context": {"event": "prewarm"}}, "config": config, "interactive": {}})()
    (out,) = dispatch_sam_event(Plain(), [object()], ctx)
    assert isinstance(out, TaskError) and "plain" in str(out)


def test_request_parsing():
    control = event_control(parse_label_config(VIDEO), parse_label_config(VIDEO).controls)
    request = SamRequest("track", {"frame": 5, "max_duration_ms": 1000, "direction": "sideways"}, None, control)
    assert request.frame_index(25.0, 100) == 4 and request.max_frames(25.0, 300) == 25
    assert request.max_frames(25.0, 10) == 10 and request.direction == "forward" and request.is_video
    late = SamRequest("predict", {"time_ms": 99999, "frame": 2}, None, control)
    assert late.frame_index(10.0, 50) == 49
    with pytest.raises(ValueError, match="max_frames"):
        SamRequest("track", {"max_frames": "many"}, None, control).max_frames(25.0, 10)
    prompts = parse_prompts(
        [
            {"type": "keypointlabels", "is_positive": False, "value": {"x": 10, "y": 20}},
            {
                "type": "rectanglelabels",
                "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["Car"]},
            },
        ]
    )
    assert prompts.labels == [0] and prompts.names == ["Car"]
    assert prompts.pixel_points(200, 100) == [(20.0, 20.0)] and prompts.pixel_box(200, 100) == (20, 20, 80, 60)
    with pytest.raises(ValueError, match="numeric 'x'"):
        parse_prompts([{"type": "keypointlabels", "value": {"x": "a", "y": 1}}])


def test_a_failing_producer_reports_its_error():
    def produce(cancelled):
        yield {"frame": 0}
        raise RuntimeError("out of memory")

    sessions = TrackSessions(poll_wait=1.0)
    session = sessions.start(1, TrackPlan(2, 10.0, 200.0, produce))
    frames, errors = [], None
    for _ in range(50):
        value = sessions.progress(session.id, 1)
        frames += value["frames"]
        if value["done"]:
            errors = value["error"]
            break
    assert frames == [{"frame": 0}] and "out of memory" in errors
