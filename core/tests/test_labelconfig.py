import pytest

from prelabel.labelconfig import LabelConfigError, parse_label_config
from prelabel.testing import configs


def test_controls_objects_and_data_keys():
    cfg = parse_label_config(configs.IMAGE_RECTANGLES)
    (control,) = cfg.controls
    assert control.tag == "RectangleLabels" and control.type == "rectanglelabels"
    assert control.to_name == ("image",)
    assert control.object.tag == "Image" and control.object.data_key == "image"
    assert control.labels == ("Car", "Person")
    assert control.score_threshold == 0.25


def test_predicted_values_and_case_insensitive_mapping():
    control = parse_label_config(configs.IMAGE_RECTANGLES).controls[0]
    assert control.map_label("truck") == "Car"
    assert control.map_label("CAR") == "Car"
    assert control.map_label(" person ") == "Person"
    assert control.map_label("dog") is None
    assert control.hints("Car") == ["Car", "car", "truck"]


def test_parse_is_cached_per_text():
    assert parse_label_config(configs.TEXT_CHOICES) is parse_label_config(configs.TEXT_CHOICES)
    assert parse_label_config(configs.TEXT_CHOICES).hash != parse_label_config(configs.TEXT_NER).hash


@pytest.mark.parametrize("bad", [configs.INVALID_XML, "", "not xml at all", "   "])
def test_invalid_configs_raise_a_clear_error(bad):
    with pytest.raises(LabelConfigError, match="label config"):
        parse_label_config(bad)


def test_find_and_describe():
    cfg = parse_label_config(configs.VIDEO_RECTANGLES)
    assert [c.name for c in cfg.find({"VideoRectangle"}, {"Video"})] == ["box"]
    assert cfg.find({"VideoRectangle"}, {"Image"}) == []
    assert "VideoRectangle on Video" in cfg.describe()
    assert cfg.first({"Choices"}) is None


def test_attr_casting():
    control = parse_label_config(configs.TEXT_CHOICES_MULTIPLE).controls[0]
    assert control.is_multiple
    assert control.attr("choice") == "multiple"
    assert control.attr("missing", 3, int) == 3
    assert control.attr("choice", 0.5, float) == 0.5  # not a float: default, with a warning


def test_sanitize_drops_unknown_controls_and_labels():
    cfg = parse_label_config(configs.IMAGE_RECTANGLES)
    good = {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": 1, "y": 1, "width": 2, "height": 2, "rectanglelabels": ["Car"]},
    }
    mixed = {**good, "value": {**good["value"], "rectanglelabels": ["Car", "Boat"]}}
    unknown_label = {**good, "value": {**good["value"], "rectanglelabels": ["Boat"]}}
    unknown_control = {**good, "from_name": "nope"}
    wrong_target = {**good, "to_name": "text"}
    kept, problems = cfg.sanitize([good, mixed, unknown_label, unknown_control, wrong_target, "junk"])
    assert kept[0] == good
    assert kept[1]["value"]["rectanglelabels"] == ["Car"]
    assert len(kept) == 2
    assert len(problems) == 5
    assert any("Boat" in p for p in problems)
