"""VideoRectangle pre-annotation: each label's objects found and tracked by SAM 3's video
model (tiny random weights: shapes and bounds, not accuracy)."""

from __future__ import annotations

import pytest
import sam3_configs as configs
from prelabel_sam3 import Sam3Backend
from sam3_media import write_video

from prelabel.labelconfig import parse_label_config
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.images import data_uri


def test_each_object_is_one_sequence_of_its_label_bounded_in_frames(tmp_path):
    video = data_uri(write_video(tmp_path / "clip.mp4", frames=5).read_bytes(), "video/mp4")
    runtime = make_runtime(Sam3Backend, tmp_path / "home")
    seen = []
    with serve_in_process(runtime, wait_ready=300) as client:
        original = runtime.backend.network.track_texts

        def spy(frames, texts, max_objects):
            seen.append((len(frames), list(texts), max_objects))
            return original(frames, texts, max_objects)

        runtime.backend.network.track_texts = spy
        resp = client.post(
            "/predict",
            json={"tasks": [{"id": 3, "data": {"video": video}}], "project": "9", "label_config": configs.VIDEO},
        )
    runtime.close()
    assert resp.status_code == 200, resp.text
    (item,) = per_task_results(resp.json())
    assert "error" not in item, item["error"]
    # max_frames_to_track="2": the first frame and two more; the Labels' values are the prompts
    assert seen == [(3, ["car", "person"], 4)]
    regions = item["result"]
    assert regions and len(regions) <= 4
    for region in regions:
        assert region["type"] == "videorectangle" and region["from_name"] == "box" and region["to_name"] == "video"
        assert region["value"]["labels"] in (["Car"], ["Person"])
        frames = [k["frame"] for k in region["value"]["sequence"]]
        assert frames == sorted(frames) and 1 <= frames[0] and frames[-1] <= 3
        assert region["value"]["framesCount"] == 5 and region["value"]["sequence"][-1]["enabled"] is False
        assert all(0 <= k[c] <= 100 for k in region["value"]["sequence"] for c in ("x", "y", "width", "height"))
    errors = parse_label_config(configs.VIDEO).interface.validate_prediction(item, return_errors=True)
    assert not errors, errors


def test_frames_over_the_pixel_bound_fail_the_task(tmp_path):
    video = data_uri(write_video(tmp_path / "clip.mp4", frames=3).read_bytes(), "video/mp4")
    runtime = make_runtime(Sam3Backend, tmp_path / "home", {"sam3_video_max_pixels": 100})
    with serve_in_process(runtime, wait_ready=300) as client:
        resp = client.post(
            "/predict",
            json={"tasks": [{"id": 3, "data": {"video": video}}], "project": "9", "label_config": configs.VIDEO},
        )
    runtime.close()
    (item,) = per_task_results(resp.json())
    assert item["result"] == [] and "SAM3_VIDEO_MAX_PIXELS" in item["error"]


@pytest.mark.parametrize("frames", [1])
def test_a_single_frame_video_still_answers(tmp_path, frames):
    video = data_uri(write_video(tmp_path / "one.mp4", frames=frames).read_bytes(), "video/mp4")
    runtime = make_runtime(Sam3Backend, tmp_path / "home")
    with serve_in_process(runtime, wait_ready=300) as client:
        resp = client.post(
            "/predict",
            json={"tasks": [{"id": 4, "data": {"video": video}}], "project": "9", "label_config": configs.VIDEO},
        )
    runtime.close()
    (item,) = per_task_results(resp.json())
    assert "error" not in item, item["error"]


def video_box(
    region_id: str, frame: int, x: float, y: float, w: float, h: float, label: str, earlier: list[dict] | None = None
) -> dict:
    """A VideoRectangle of the interactive context (open-source Label Studio's shape)."""
    sequence = list(earlier or []) + [
        {
            "frame": frame,
            "enabled": True,
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": 0,
            "time": (frame - 1) / 10,
        }
    ]
    return {
        "id": region_id,
        "from_name": "box",
        "to_name": "video",
        "type": "videorectangle",
        "value": {"sequence": sequence, "framesCount": 5, "duration": 0.5, "labels": [label]},
    }


def test_drawn_boxes_are_followed_under_their_own_ids(tmp_path):
    video = data_uri(write_video(tmp_path / "clip.mp4", frames=5).read_bytes(), "video/mp4")
    earlier = [{"frame": 1, "enabled": False, "x": 5.0, "y": 20.0, "width": 30.0, "height": 50.0, "rotation": 0}]
    context = {
        "result": [
            video_box("carA", 2, 14.0, 25.0, 31.0, 50.0, "Car", earlier),
            video_box("personB", 2, 60.0, 10.0, 20.0, 30.0, "Person"),
        ]
    }
    runtime = make_runtime(Sam3Backend, tmp_path / "home")
    with serve_in_process(runtime, wait_ready=300) as client:
        resp = client.post(
            "/predict",
            json={
                "tasks": [{"id": 7, "data": {"video": video}}],
                "project": "9",
                "label_config": configs.VIDEO,
                "params": {"context": context},
            },
        )
    runtime.close()
    (item,) = per_task_results(resp.json())
    assert "error" not in item, item["error"]
    regions = {r["id"]: r for r in item["result"]}
    assert set(regions) <= {"carA", "personB"} and regions, "no drawn box was followed"
    for rid, region in regions.items():
        sequence = region["value"]["sequence"]
        frames = [k["frame"] for k in sequence]
        assert frames == sorted(frames) and frames[-1] <= 4  # the keyframe at 2, then max_frames_to_track="2"
        assert region["value"]["labels"] == (["Car"] if rid == "carA" else ["Person"])
    if "carA" in regions:
        assert regions["carA"]["value"]["sequence"][0] == {**earlier[0], "time": 0.0}
        assert regions["carA"]["value"]["sequence"][1]["x"] == pytest.approx(14.0)
    errors = parse_label_config(configs.VIDEO).interface.validate_prediction(item, return_errors=True)
    assert not errors, errors
