"""Labels -> prompts, context parsing, overlap resolution, the caches, settings and start-up."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sam3_configs as configs
from prelabel_sam3.backend import Sam3Backend
from prelabel_sam3.prompts import (
    context_clicks,
    context_exemplars,
    is_positive,
    label_prompts,
    project_concepts,
    resolve_overlaps,
)
from prelabel_sam3.settings import Sam3Settings, model_dir
from sam3_media import smart_box

from prelabel import CoreSettings, parse_label_config
from prelabel.paths import PathEscapeError
from prelabel.testing.client import per_task_results
from prelabel.testing.sam_events import ui_smart_keypoint_body, ui_smart_rectangle_region


def test_label_prompts_values_synonyms_and_hints():
    control = parse_label_config(configs.MASKS).control("mask")
    assert label_prompts(control, "Car") == ["car", "truck", "automobile"]
    assert label_prompts(control, "Person") == ["person"]
    assert label_prompts(control, "cls_3") == ["traffic light"]  # a coded name is replaced by its hint
    xml = configs.MASKS.replace('hint="traffic light"', 'prompt="  Red  Traffic LIGHT "')
    assert label_prompts(parse_label_config(xml).control("mask"), "cls_3") == ["red traffic light"]


def test_a_phrase_is_one_prompt_for_all_controls_and_two_labels_share_it_first_come():
    xml = """<View><Image name="image" value="$image"/>
      <BrushLabels name="a" toName="image"><Label value="Car" predicted_values="vehicle"/></BrushLabels>
      <PolygonLabels name="b" toName="image"><Label value="Car"/><Label value="Bus" predicted_values="vehicle"/>
      </PolygonLabels></View>"""
    config = parse_label_config(xml)
    concepts = project_concepts([config.control("a"), config.control("b")])
    assert concepts.texts == ["car", "vehicle", "bus"]
    assert concepts.targets["car"] == [("a", "Car"), ("b", "Car")]
    assert concepts.targets["vehicle"] == [("a", "Car"), ("b", "Bus")]


def test_overlapping_answers_are_one_object_with_the_best_label():
    a = np.zeros((10, 10), bool)
    a[0:5, 0:5] = True
    a2 = a.copy()
    a2[0:5, 5] = True  # IoU 25/30 with a
    b = np.zeros((10, 10), bool)
    b[6:9, 6:9] = True
    kept = resolve_overlaps([("Car", 0.6, a), ("Truck", 0.8, a2), ("Person", 0.3, b)], 0.5)
    assert [(label, score) for label, score, _ in kept] == [("Truck", 0.8), ("Person", 0.3)]
    assert len(resolve_overlaps([("Car", 0.6, a), ("Truck", 0.8, a2)], 0.9)) == 2  # below the IoU: two objects


def test_context_exemplars_and_clicks_from_the_captured_bodies():
    rect = ui_smart_rectangle_region()
    (box,) = context_exemplars([rect])["image"]
    assert box.positive and box.label == "defect" and box.box == (7.961, 61.922, 29.071, 31.041)
    assert box.pixels(1600, 1200) == pytest.approx((127.376, 743.064, 592.512, 1115.556))
    (neg,) = context_exemplars([smart_box(1, 2, 3, 4, positive=False)])["image"]
    assert not neg.positive
    # the UI's body: two ordinary keypoints (no is_positive) and the smart click: only it counts
    clicks = context_clicks(ui_smart_keypoint_body()["params"]["context"]["result"])["image"]
    assert clicks.labels == [1] and clicks.names == ["defect"] and clicks.points == [(55.006, 45.034)]


def test_clicks_follow_sam2s_rule():
    def click(x, label="defect", flag=None):
        region = {"type": "keypointlabels", "to_name": "image", "value": {"x": x, "y": 1, "keypointlabels": [label]}}
        if flag is not None:
            region["is_positive"] = flag
        return region

    # an API client sends no flags: every click is a prompt
    assert context_clicks([click(1), click(2)])["image"].labels == [1, 1]
    # from the UI: a Background click is negative even with is_positive true; unflagged ones left out
    got = context_clicks([click(1), click(2, flag=True), click(3, "Background", flag=True), click(4, flag=False)])
    assert got["image"].labels == [1, 0, 0] and got["image"].points == [(2, 1), (3, 1), (4, 1)]
    # negative clicks alone: no object to segment
    assert context_clicks([click(1, "Background", flag=True)]) == {}


def test_is_positive_reads_label_studios_flag_upstreams_and_the_label():
    assert not is_positive({"is_positive": False, "value": {}})
    assert not is_positive({"value": {"positive": False}})
    assert not is_positive({"type": "keypointlabels", "value": {"keypointlabels": ["background"]}})
    assert not is_positive({"type": "keypointlabels", "is_positive": True, "value": {"keypointlabels": ["Background"]}})
    assert is_positive({"type": "keypointlabels", "value": {"keypointlabels": ["Car"]}})


def test_smart_rectangle_beside_a_mask_control_is_an_input_not_an_output():
    backend = Sam3Backend.__new__(Sam3Backend)
    assert [c.name for c in backend.output_controls(parse_label_config(configs.SMART))] == ["tag"]
    assert [c.name for c in backend.output_controls(parse_label_config(configs.SMART_BOXES_ONLY))] == ["box"]
    assert [c.name for c in backend.supported_controls(parse_label_config(configs.VIDEO))] == ["box"]
    only_clicks = configs.SMART.split("<BrushLabels")[0] + "</View>"
    assert backend.supported_controls(parse_label_config(only_clicks)) == []


# -- settings and start-up ----------------------------------------------------------------------
def test_sam3_model_is_under_model_root_or_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv("SAM3_MODEL")
    monkeypatch.delenv("MODEL_ROOT")
    core = CoreSettings(prelabel_home=tmp_path)
    assert model_dir(Sam3Settings(sam3_model="sam3", model_root=tmp_path), core) == (tmp_path / "sam3").resolve()
    assert model_dir(Sam3Settings(sam3_model=str(tmp_path / "x")), core) == tmp_path / "x"
    assert model_dir(Sam3Settings(), core) == (tmp_path / "weights" / "sam3").resolve()
    with pytest.raises(PathEscapeError):
        model_dir(Sam3Settings(sam3_model="../../etc", model_root=tmp_path), core)


def test_preflight_says_where_to_get_the_weights_and_their_license(tmp_path):
    with pytest.raises(ValueError) as err:
        Sam3Backend.preflight(Sam3Settings(model_root=tmp_path), CoreSettings(prelabel_home=tmp_path))
    message = str(err.value)
    assert str(tmp_path / "sam3") in message and "https://huggingface.co/facebook/sam3" in message
    assert "SAM License" in message and "SAM3_MODEL" in message


def test_prelabel_serve_stops_on_missing_weights(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PRELABEL_HOME": str(tmp_path / "home"),
        "MODEL_ROOT": str(tmp_path / "empty"),
        "PRELABEL_PLUGINS": "sam3",
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "prelabel.cli", "serve", "sam3", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "facebook/sam3" in out.stderr and "SAM License" in out.stderr
    assert "serving" not in out.stderr


def test_a_directory_of_another_model_is_refused(tmp_path):
    from prelabel_sam3.model import Sam3Network

    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="not SAM 3"):
        Sam3Network(tmp_path, "cpu")


def test_a_detector_only_checkpoint_serves_labels_and_says_what_clicks_need(tmp_path, model_root):
    """A plain ``sam3`` directory (the concept detector alone): batch works, clicks fail the task
    naming the full checkpoint."""
    from prelabel_sam3.testing import tiny_configs
    from sam3_media import image_uri
    from transformers import Sam3Model, Sam3Processor

    from prelabel.testing import make_runtime, serve_in_process

    weights = tmp_path / "weights" / "detector"
    Sam3Model(tiny_configs()["detector_config"]).eval().save_pretrained(weights)
    Sam3Processor.from_pretrained(model_root / "sam3-tiny").save_pretrained(weights)
    runtime = make_runtime(
        Sam3Backend, tmp_path / "home", {"model_root": str(tmp_path / "weights"), "sam3_model": "detector"}
    )
    body = ui_smart_keypoint_body()
    with serve_in_process(runtime, wait_ready=300) as client:
        assert client.get("/health").json()["checkpoint"] == "sam3"
        batch = per_task_results(
            client.post(
                "/predict",
                json={
                    "tasks": [{"id": 1, "data": {"image": image_uri(1)}}],
                    "project": "2",
                    "label_config": configs.MASKS,
                },
            ).json()
        )
        clicks = per_task_results(
            client.post(
                "/predict",
                json={
                    "tasks": [{"id": 1, "data": {"image": image_uri(1)}}],
                    "project": "2",
                    "label_config": configs.SMART,
                    "params": body["params"],
                },
            ).json()
        )
    runtime.close()
    assert batch[0]["result"] and "error" not in batch[0]
    assert clicks[0]["result"] == [] and "full facebook/sam3 checkpoint" in clicks[0]["error"]
