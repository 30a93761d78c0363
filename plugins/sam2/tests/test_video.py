"""VideoRectangle propagation with SAM 2's video predictor (random weights: shapes, not accuracy)."""

from __future__ import annotations

import pytest
import sam2_configs as configs
from prelabel_sam2 import Sam2Backend
from sam2_media import video_box, write_video

from prelabel.labelconfig import parse_label_config
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.images import data_uri


@pytest.fixture(scope="module")
def video_uri(tmp_path_factory) -> str:
    path = write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=6)
    return data_uri(path.read_bytes(), "video/mp4")


def test_two_objects_each_get_their_box_sequence_under_their_own_id(tmp_path, video_uri):
    runtime = make_runtime(Sam2Backend, tmp_path / "home")
    earlier = [{"frame": 1, "enabled": False, "x": 5.0, "y": 20.0, "width": 30.0, "height": 50.0, "rotation": 0}]
    context = {
        "result": [
            video_box("carA", 2, 14.0, 25.0, 31.0, 50.0, ("Car",), earlier=earlier),
            video_box("personB", 2, 60.0, 10.0, 20.0, 30.0, ("Person",)),
        ]
    }
    with serve_in_process(runtime, wait_ready=300) as client:
        resp = client.post(
            "/predict",
            json={
                "tasks": [{"id": 7, "data": {"video": video_uri}}],
                "project": "4",
                "label_config": configs.VIDEO,
                "params": {"context": context},
            },
        )
    runtime.close()
    assert resp.status_code == 200, resp.text
    (item,) = per_task_results(resp.json())
    assert "error" not in item, item["error"]
    regions = {r["id"]: r for r in item["result"]}
    assert set(regions) == {"carA", "personB"}
    car = regions["carA"]
    assert car["type"] == "videorectangle" and car["from_name"] == "box" and car["to_name"] == "video"
    assert car["value"]["labels"] == ["Car"] and regions["personB"]["value"]["labels"] == ["Person"]
    assert car["value"]["framesCount"] == 6
    frames = [item["frame"] for item in car["value"]["sequence"]]
    # the earlier keyframe kept as drawn, the prompt frame, then at most max_frames_to_track="3" more
    assert frames[:2] == [1, 2] and car["value"]["sequence"][0] == {**earlier[0], "time": 0.0}
    assert frames == sorted(frames) and 2 < len(frames) <= 5 and frames[-1] <= 5
    assert car["value"]["sequence"][1]["x"] == pytest.approx(14.0)
    assert car["value"]["sequence"][-1]["enabled"] is False
    for item_ in car["value"]["sequence"]:
        assert all(0 <= item_[k] <= 100 for k in ("x", "y", "width", "height"))
    errors = parse_label_config(configs.VIDEO).interface.validate_prediction(item, return_errors=True)
    assert not errors, errors


def test_a_prompt_past_the_end_of_the_video_fails_the_task(tmp_path, video_uri):
    runtime = make_runtime(Sam2Backend, tmp_path / "home")
    context = {"result": [video_box("late", 40, 10.0, 10.0, 20.0, 20.0)]}
    with serve_in_process(runtime, wait_ready=300) as client:
        resp = client.post(
            "/predict",
            json={
                "tasks": [{"id": 7, "data": {"video": video_uri}}],
                "project": "4",
                "label_config": configs.VIDEO,
                "params": {"context": context},
            },
        )
    runtime.close()
    (item,) = per_task_results(resp.json())
    assert item["result"] == [] and "frame 40" in item["error"]
