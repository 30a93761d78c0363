"""Context parsing, label choice, the embedding cache, settings and start-up checks."""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import numpy as np
import pytest
import sam2_configs as configs
from prelabel_sam2.backend import Sam2Backend, choose_label, output_control
from prelabel_sam2.model import decode_image
from prelabel_sam2.prompts import image_prompts, is_negative_label, is_positive, video_objects
from prelabel_sam2.settings import Sam2Settings, model_files, resolve_config
from sam2_media import box, click, video_box

from prelabel import CoreSettings, parse_label_config
from prelabel.paths import PathEscapeError


# -- context -> prompts -------------------------------------------------------------------
@pytest.mark.parametrize("label", ["negative", "Negative", "neg", "background", "BG", "negative click", "Exclude"])
def test_negative_label_names(label):
    assert is_negative_label(label)


@pytest.mark.parametrize("label", ["positive", "Car", "beige", "negotiation", "bgcolor", "Backgrounds"])
def test_labels_that_are_not_negative(label):
    assert not is_negative_label(label)


def test_is_positive_reads_the_flag_and_a_negative_label_always_wins():
    assert not is_positive(click(1, 1, "negative", positive=True))  # the UI flags a plain Background click true
    assert not is_positive(click(1, 1, "Car", positive=False))  # Alt+click
    assert not is_positive(click(1, 1, "background"))
    assert is_positive(click(1, 1, "Car"))
    assert not is_positive({**click(1, 1), "is_positive": "false"})


def test_clicks_without_the_flag_count_only_when_no_click_has_it():
    """An API client that never sends is_positive: every click counts, labels decide. The
    labeling UI (some click flagged): unflagged clicks are ordinary or reloaded points."""
    api = image_prompts([click(10, 10, "Car"), click(20, 20, "negative")])["image"]
    assert api.points == [(10, 10), (20, 20)] and api.point_labels == [1, 0]
    ui = image_prompts(
        [click(10, 10, "Car"), click(20, 20, "Car", positive=False), click(30, 30, "Car", positive=True)]
    )
    assert ui["image"].points == [(20, 20), (30, 30)] and ui["image"].point_labels == [0, 1]
    assert image_prompts([click(10, 10, "Car"), click(20, 20, "Car", positive=False)]) == {}  # negatives only
    assert image_prompts([click(20, 20, "Background", positive=True)]) == {}


def test_image_prompts_clicks_box_and_labels_in_pixels():
    regions = [
        click(25, 50, "Person"),
        click(75, 25, "negative"),
        box(10, 20, 30, 40, "Car"),
        box(0, 0, 50, 50, "Car"),
        {"type": "choices", "value": {"choices": ["x"]}},
    ]
    prompt = image_prompts(regions)["image"]
    assert prompt.point_labels == [1, 0] and prompt.labels == ["Person", "Car", "Car"]
    points, labels, bbox = prompt.pixels(200, 100)
    assert points.tolist() == [[50.0, 50.0], [150.0, 25.0]] and labels.tolist() == [1, 0]
    assert bbox.tolist() == [0.0, 0.0, 100.0, 50.0]  # the last box drawn wins


def test_prompts_are_grouped_by_image_and_a_context_with_no_prompt_is_empty():
    prompts = image_prompts([click(1, 1, to_name="left"), click(2, 2, to_name="right")])
    assert set(prompts) == {"left", "right"}
    assert image_prompts([{"type": "textarea", "value": {"text": ["a"]}}]) == {}


def test_video_objects_use_the_latest_keyframe():
    earlier = [{"frame": 5, "x": 1, "y": 1, "width": 2, "height": 2, "time": 0.4}]
    (obj,) = video_objects([video_box("o1", 2, 10, 20, 30, 40, ("Car",), earlier=earlier)])
    assert obj.frame == 5 and obj.box == (1, 1, 2, 2) and obj.region_id == "o1" and obj.labels == ["Car"]
    assert [k["frame"] for k in obj.keyframes] == [2, 5] and obj.frames_count == 6


# -- which control, which label -------------------------------------------------------------
def test_the_clicked_label_picks_the_control_and_the_label():
    poly = '<PolygonLabels name="poly" toName="image"><Label value="Road" predicted_values="street"/></PolygonLabels>'
    xml = configs.IMAGE_BRUSH.replace("</View>", poly + "</View>")
    config = parse_label_config(xml)
    controls = Sam2Backend.__new__(Sam2Backend).supported_controls(config)
    assert [c.name for c in controls] == ["label", "poly"]
    assert output_control(controls, "image", ["street"]).name == "poly"
    assert output_control(controls, "image", ["person"]).name == "label"
    assert output_control(controls, "image", ["unknown"]).name == "label"  # the first one
    assert output_control(controls, "other", ["Car"]) is None
    brush = config.control("label")
    assert choose_label(brush, ["negative", "person"]) == "Person"
    assert choose_label(brush, ["Tree"]) == "Car"  # never unlabeled: the control's first label
    assert choose_label(config.control("poly"), ["Street"]) == "Road"


def test_setup_refuses_a_config_with_only_input_controls():
    only_clicks = configs.IMAGE_BRUSH.split("<BrushLabels")[0] + "</View>"
    assert Sam2Backend.__new__(Sam2Backend).supported_controls(parse_label_config(only_clicks)) == []


# -- the model through the plugin's own loading path -------------------------------------------
@pytest.fixture(scope="module")
def model(model_root):
    from prelabel_sam2.model import load_model

    files = model_files(Sam2Settings(), CoreSettings())
    assert files.checkpoint == model_root / "sam2.1_hiera_tiny.pt"
    return load_model(files, "cpu", 128)


def test_multimask_keeps_the_best_mask_by_predicted_iou(model):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    image = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    embedding = model.embed(image)
    point, label = np.array([[30.0, 20.0]]), np.array([1])
    mask, score = model.segment(embedding, point, label, multimask=True)
    reference = SAM2ImagePredictor(model.net)
    reference._bb_feat_sizes = model._proto._bb_feat_sizes
    reference.set_image(image)
    masks, scores, _ = reference.predict(point_coords=point, point_labels=label, multimask_output=True)
    assert len(scores) == 3
    assert score == pytest.approx(float(scores.max()), abs=1e-5)
    assert np.array_equal(mask, masks[int(scores.argmax())] > 0)


def test_concurrent_segmentations_do_not_share_predictor_state(model):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (40 + 8 * i, 64, 3), dtype=np.uint8) for i in range(3)]
    embeddings = [model.embed(img) for img in images]
    prompts = [(np.array([[10.0 + 5 * i, 12.0]]), np.array([1])) for i in range(3)]
    expected = [model.segment(e, p, lab)[0] for e, (p, lab) in zip(embeddings, prompts, strict=True)]
    got: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        for _ in range(3):
            got[i] = model.segment(embeddings[i], *prompts[i])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(3):
        assert got[i].shape == images[i].shape[:2] and np.array_equal(got[i], expected[i])


def test_boxes_give_one_mask_each(model):
    embedding = model.embed(np.zeros((50, 70, 3), np.uint8))
    masks, scores = model.segment_boxes(embedding, np.array([[0, 0, 30, 30], [20, 10, 60, 45]]))
    assert masks.shape == (2, 50, 70) and scores.shape == (2,)
    empty, none = model.segment_boxes(embedding, np.zeros((0, 4)))
    assert empty.shape == (0, 50, 70) and none.shape == (0,)


def test_images_are_turned_by_their_exif_orientation():
    from PIL import Image

    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (200, 10, 10)).save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue(), 10**6).shape == (40, 20, 3)


# -- settings and start-up ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "config", "checkpoint"),
    [
        ("tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
        ("small", "configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
        ("base+", "configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
        ("large", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
        ("configs/sam2.1/sam2.1_hiera_l.yaml", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
        ("sam2.1_hiera_b+.yaml", "configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
        ("sam2_hiera_s.yaml", "configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt"),
    ],
)
def test_model_config_names(value, config, checkpoint):
    import importlib.util
    from pathlib import Path

    got_config, _, got_checkpoint = resolve_config(value)
    assert (got_config, got_checkpoint) == (config, checkpoint)
    package = Path(importlib.util.find_spec("sam2").submodule_search_locations[0])
    assert (package / got_config).is_file()


def test_unknown_config_and_escaping_checkpoint_are_refused(tmp_path):
    with pytest.raises(ValueError, match="tiny, small, base\\+ or large"):
        resolve_config("sam3_giant.yaml")
    core = CoreSettings(prelabel_home=tmp_path)
    with pytest.raises(PathEscapeError):
        model_files(Sam2Settings(model_checkpoint="../../etc/passwd", model_root=tmp_path), core)
    absolute = model_files(Sam2Settings(model_checkpoint=str(tmp_path / "x.pt")), core)
    assert absolute.checkpoint == tmp_path / "x.pt"


def test_preflight_says_where_to_get_a_missing_checkpoint(tmp_path):
    settings = Sam2Settings(model_config_name="small", model_root=tmp_path)
    with pytest.raises(ValueError) as err:
        Sam2Backend.preflight(settings, CoreSettings(prelabel_home=tmp_path))
    message = str(err.value)
    assert "sam2.1_hiera_small.pt" in message and str(tmp_path) in message
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt" in message
    assert "facebook/sam2.1-hiera-small" in message and "MODEL_CHECKPOINT" in message


def test_prelabel_serve_stops_on_a_missing_checkpoint(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PRELABEL_HOME": str(tmp_path / "home"),
        "MODEL_ROOT": str(tmp_path / "empty"),
        "MODEL_CONFIG": "large",
        "PRELABEL_PLUGINS": "sam2",
    }
    out = subprocess.run(
        [sys.executable, "-m", "prelabel.cli", "serve", "sam2", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "sam2.1_hiera_large.pt" in out.stderr and "dl.fbaipublicfiles.com" in out.stderr
    assert "serving" not in out.stderr
