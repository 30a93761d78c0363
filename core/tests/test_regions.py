import math

import numpy as np
import pytest

from prelabel import regions
from prelabel.labelconfig import parse_label_config
from prelabel.testing import configs


def _valid(config_xml, result):
    cfg = parse_label_config(config_xml)
    errors = cfg.interface.validate_prediction({"result": result}, return_errors=True)
    assert not errors, errors


def test_rectangle_pixels_to_percent():
    control = parse_label_config(configs.IMAGE_RECTANGLES).controls[0]
    r = regions.rectangle(control, "Car", 10, 20, 30, 40, image_width=200, image_height=100, score=0.9)
    v = r["value"]
    assert (v["x"], v["y"], v["width"], v["height"]) == (5.0, 20.0, 15.0, 40.0)
    assert v["rectanglelabels"] == ["Car"] and r["score"] == 0.9
    assert r["original_width"] == 200 and r["type"] == "rectanglelabels"
    _valid(configs.IMAGE_RECTANGLES, [r])


def test_rotated_rectangle_keeps_its_centre():
    control = parse_label_config(configs.IMAGE_RECTANGLES).controls[0]
    r = regions.rotated_rectangle(
        control, "Car", cx=100, cy=50, w=40, h=20, angle_rad=math.pi / 2, image_width=200, image_height=100
    )
    v = r["value"]
    x, y = v["x"] * 2, v["y"]  # back to pixels
    a = math.radians(v["rotation"])
    # centre = top-left + rotated half-diagonal
    cx = x + 20 * math.cos(a) - 10 * math.sin(a)
    cy = y + 20 * math.sin(a) + 10 * math.cos(a)
    assert cx == pytest.approx(100) and cy == pytest.approx(50)
    assert v["rotation"] == pytest.approx(90)


def test_box_leaving_the_image_is_clipped_not_shifted():
    control = parse_label_config(configs.IMAGE_RECTANGLES).controls[0]
    # 20 px off the left edge and 30 px past the bottom: the edges inside stay put
    v = regions.rectangle(control, "Car", -20, 50, 60, 80, image_width=200, image_height=100)["value"]
    assert (v["x"], v["y"], v["width"], v["height"]) == (0.0, 50.0, 20.0, 50.0)
    v = regions.rectangle(control, "Car", 250, 0, 10, 10, image_width=200, image_height=100)["value"]
    assert v["width"] == 0.0  # wholly outside: nothing left


def test_rotated_box_near_the_edge_keeps_its_shape():
    control = parse_label_config(configs.IMAGE_RECTANGLES).controls[0]
    # a 40x20 box at 45 degrees centred 5 px from the left edge: its corner lies outside
    r = regions.rotated_rectangle(
        control, "Car", cx=5, cy=50, w=40, h=20, angle_rad=math.pi / 4, image_width=200, image_height=100
    )
    v = r["value"]
    assert v["x"] < 0  # not clamped: clamping would move the box
    assert (v["width"] * 2, v["height"]) == (pytest.approx(40), pytest.approx(20))
    a = math.radians(v["rotation"])
    cx = v["x"] * 2 + 20 * math.cos(a) - 10 * math.sin(a)
    assert cx == pytest.approx(5)
    _valid(configs.IMAGE_RECTANGLES, [r])  # Label Studio accepts a corner outside the image


def test_polygon_and_keypoint_validate():
    poly = parse_label_config(configs.IMAGE_POLYGONS).controls[0]
    r = regions.polygon(poly, "Person", [(0, 0), (50, 0), (50, 25)], 100, 50)
    assert r["value"]["points"][2] == [50.0, 50.0]
    _valid(configs.IMAGE_POLYGONS, [r])
    with pytest.raises(ValueError):
        regions.polygon(poly, "Person", [(0, 0), (1, 1)], 10, 10)
    kp = parse_label_config(configs.IMAGE_KEYPOINTS).controls[0]
    k = regions.keypoint(kp, "nose", 25, 10, 100, 50)
    assert (k["value"]["x"], k["value"]["y"]) == (25.0, 20.0)
    _valid(configs.IMAGE_KEYPOINTS, [k])


def test_brush_rle_round_trips():
    control = parse_label_config(configs.IMAGE_BRUSH).controls[0]
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:20, 10:33] = True
    r = regions.brush(control, "Car", mask, score=0.5)
    assert r["value"]["format"] == "rle" and r["original_width"] == 40 and r["original_height"] == 30
    back = regions.rle_to_mask(r["value"]["rle"], 40, 30)
    assert np.array_equal(back > 0, mask)
    _valid(configs.IMAGE_BRUSH, [r])


def test_spans_and_find_spans():
    control = parse_label_config(configs.TEXT_NER).controls[0]
    text = "Ada Lovelace met Babbage in London. london again."
    spans = regions.find_spans(text, "London")
    assert spans == [(28, 34), (36, 42)]
    r = regions.span(control, "Location", *spans[0], text)
    assert r["value"]["text"] == "London" and r["value"]["labels"] == ["Location"]
    _valid(configs.TEXT_NER, [r])
    with pytest.raises(ValueError):
        regions.span(control, "Location", 40, 99, text)
    assert regions.find_spans(text, "") == []


def test_choices_textarea_validate():
    _valid(configs.TEXT_CHOICES, [regions.choices(parse_label_config(configs.TEXT_CHOICES).controls[0], "positive")])
    ta = parse_label_config(configs.TEXT_TEXTAREA).controls[0]
    r = regions.textarea(ta, "a summary")
    assert r["value"] == {"text": ["a summary"]}
    _valid(configs.TEXT_TEXTAREA, [r])


def test_video_rectangle_sequence():
    control = parse_label_config(configs.VIDEO_RECTANGLES).control("box")
    r = regions.video_rectangle(
        control,
        "Car",
        [(1, 0, 0, 10, 10), (2, 5, 5, 10, 10), (3, 10, 10, 10, 10)],
        image_width=100,
        image_height=100,
        frames_count=30,
        duration=1.0,
    )
    seq = r["value"]["sequence"]
    assert [f["frame"] for f in seq] == [1, 2, 3]
    assert [f["enabled"] for f in seq] == [True, True, False]
    assert seq[1]["x"] == 5.0 and r["value"]["framesCount"] == 30 and r["type"] == "videorectangle"
    assert seq[2]["time"] == pytest.approx(2 / 30)
