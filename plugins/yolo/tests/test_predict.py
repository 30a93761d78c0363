"""Each control's output, mapped to the project's labels and valid against its label config."""

import math

import pytest
from yolo_media import BOXES, FAST, HEIGHT, WIDTH, assert_valid, image_tasks, predict, write_video

from prelabel import parse_label_config
from prelabel.regions import rle_to_mask
from prelabel.testing.client import make_runtime, serve_in_process

OBB = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_obb="true">
    <Label value="Airplane" predicted_values="plane"/>
  </RectangleLabels>
</View>"""

POLYGONS = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="poly" toName="image" model_score_threshold="0.5">
    <Label value="Car"/>
  </PolygonLabels>
</View>"""

BRUSH = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Car"/>
  </BrushLabels>
</View>"""

KEYPOINTS = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="kp_bbox" toName="image">
    <Label value="Person" predicted_values="person"/>
  </RectangleLabels>
  <KeyPointLabels name="kp" toName="image">
    <Label value="Nose" predicted_values="person" model_index="0"/>
    <Label value="Right ankle" predicted_values="person" model_index="16"/>
  </KeyPointLabels>
</View>"""

CHOICES = """<View>
  <Image name="image" value="$image"/>
  <Choices name="cls" toName="image" choice="{choice}" model_score_threshold="{threshold}">
    <Choice value="Cat" predicted_values="cat"/>
    <Choice value="Dog" predicted_values="dog"/>
  </Choices>
</View>"""

VIDEO = """<View>
  <Labels name="videoLabels" toName="video">
    <Label value="Vehicle" predicted_values="car"/>
  </Labels>
  <Video name="video" value="$video"/>
  <VideoRectangle name="box" toName="video" model_tracker="{tracker}" {extra}/>
</View>"""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    rt = make_runtime(__import__("prelabel_yolo").YoloBackend, tmp_path_factory.mktemp("home"), FAST)
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def test_rectangles_are_mapped_and_unmapped_classes_dropped(client):
    # the detector fires "car" at ~1.0 and "dog" at 0.73; "person" never
    cars = BOXES.replace('<Label value="Animal" predicted_values="dog"/>', "")
    results = predict(client, cars, image_tasks(2))
    for item in results:
        assert_valid(cars, item)
        for r in item["result"]:
            assert r["value"]["rectanglelabels"] == ["Vehicle"] and r["score"] > 0.99
            assert r["original_width"] == WIDTH and r["original_height"] == HEIGHT
            assert 0 <= r["value"]["x"] <= 100 and 0 < r["value"]["width"] <= 100
    # unmapped classes are filtered before NMS, so they cannot crowd out mapped ones (max_det=5)
    dogs = BOXES.replace('<Label value="Vehicle" predicted_values="car,truck"/>', "")
    item = predict(client, dogs, image_tasks(1))[0]
    assert_valid(dogs, item)
    assert {r["value"]["rectanglelabels"][0] for r in item["result"]} == {"Animal"}
    assert all(abs(r["score"] - 0.73) < 0.01 for r in item["result"])
    nobody = BOXES.replace("car,truck", "truck").replace('predicted_values="dog"', 'predicted_values="cow"')
    item = predict(client, nobody, image_tasks(1))[0]
    assert item["result"] == [] and "error" not in item


def test_score_threshold_drops_low_scores(client):
    dogs = BOXES.replace('<Label value="Vehicle" predicted_values="car,truck"/>', "")
    assert predict(client, dogs, image_tasks(1))[0]["result"]
    # dog scores 0.73; upstream's attribute name score_threshold is honoured too
    for attr in ('model_score_threshold="0.9"', 'score_threshold="0.9"'):
        strict = dogs.replace('model_score_threshold="0.5"', attr)
        item = predict(client, strict, image_tasks(1))[0]
        assert item["result"] == [] and "error" not in item


def test_rotated_boxes(client):
    results = predict(client, OBB, image_tasks(2))
    for item in results:
        assert_valid(OBB, item)
        for region in item["result"]:
            assert region["value"]["rectanglelabels"] == ["Airplane"] and 0 <= region["value"]["rotation"] < 360


@pytest.mark.parametrize("angle", [0.0, 0.5, 1.2, -0.4])
def test_rotated_box_corners_are_the_models(angle):
    """Label Studio rotates a box about its top-left corner, clockwise in degrees; the region's
    corners must be the ones ultralytics computes from (centre, size, angle in radians)."""
    from types import SimpleNamespace

    import torch
    from prelabel_yolo.convert import rotated_boxes
    from ultralytics.utils.ops import xywhr2xyxyxyxy

    xywhr = torch.tensor([[40.0, 30.0, 30.0, 10.0, angle]])
    result = SimpleNamespace(
        orig_shape=(HEIGHT, WIDTH), obb=SimpleNamespace(xywhr=xywhr, conf=torch.tensor([0.9]), cls=torch.tensor([0.0]))
    )
    control = parse_label_config(OBB).control("label")
    [region] = rotated_boxes(control, result, {0: "plane"}, 0.5)
    v = region["value"]
    x, y = v["x"] * WIDTH / 100, v["y"] * HEIGHT / 100
    w, h = v["width"] * WIDTH / 100, v["height"] * HEIGHT / 100
    a = math.radians(v["rotation"])
    ours = sorted(
        (x + dx * math.cos(a) - dy * math.sin(a), y + dx * math.sin(a) + dy * math.cos(a))
        for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))
    )
    theirs = sorted(tuple(p) for p in xywhr2xyxyxyxy(xywhr)[0].tolist())
    for (ax, ay), (bx, by) in zip(ours, theirs, strict=True):
        assert ax == pytest.approx(bx, abs=1e-3) and ay == pytest.approx(by, abs=1e-3)


def test_obb_attribute_with_a_plain_detector_is_a_clear_error(client):
    config = OBB.replace('model_obb="true"', 'model_obb="true" model_path="yolo11n.pt"')
    results = predict(client, config, image_tasks(2))
    for item in results:
        assert item["result"] == [] and "OBB model" in item["error"]


def test_polygons(client):
    results = predict(client, POLYGONS, image_tasks(2))
    for item in results:
        assert_valid(POLYGONS, item)
        for r in item["result"]:
            assert r["type"] == "polygonlabels" and len(r["value"]["points"]) >= 3


def test_brush_masks_have_the_image_size(client):
    results = predict(client, BRUSH, image_tasks(1))
    assert_valid(BRUSH, results[0])
    region = results[0]["result"][0]
    assert region["value"]["format"] == "rle" and region["value"]["brushlabels"] == ["Car"]
    mask = rle_to_mask(region["value"]["rle"], WIDTH, HEIGHT)
    assert mask.shape == (HEIGHT, WIDTH) and mask.any()


def test_keypoints_with_parent_boxes(client):
    results = predict(client, KEYPOINTS, image_tasks(1))
    assert_valid(KEYPOINTS, results[0])
    regions = results[0]["result"]
    boxes = {r["id"]: r for r in regions if r["type"] == "rectanglelabels"}
    points = [r for r in regions if r["type"] == "keypointlabels"]
    assert boxes and points
    assert {p["value"]["keypointlabels"][0] for p in points} <= {"Nose", "Right ankle"}
    assert all(p["parentID"] in boxes for p in points)
    without = predict(client, KEYPOINTS.replace('name="kp"', 'name="kp" model_add_bboxes="false"'), image_tasks(1))
    assert all(r["type"] == "keypointlabels" for r in without[0]["result"])


def test_choices_single_and_multiple(client):
    single = CHOICES.format(choice="single", threshold="0")
    results = predict(client, single, image_tasks(2))
    for item in results:
        assert_valid(single, item)
        assert len(item["result"]) == 1 and len(item["result"][0]["value"]["choices"]) == 1
    multiple = CHOICES.format(choice="multiple", threshold="0")
    item = predict(client, multiple, image_tasks(1))[0]
    assert_valid(multiple, item)
    assert sorted(item["result"][0]["value"]["choices"]) == ["Cat", "Dog"]  # bird has no choice: dropped
    nothing = predict(client, CHOICES.format(choice="single", threshold="0.99"), image_tasks(1))[0]
    assert nothing["result"] == [] and "error" not in nothing


@pytest.mark.parametrize("tracker,extra", [("botsort", ""), ("bytetrack", 'bytetrack_track_buffer="5"')])
def test_video_tracking_one_sequence_per_track(client, tmp_path, tracker, extra):
    from prelabel.testing.images import data_uri

    video = write_video(tmp_path / "clip.mp4", frames=8)
    config = VIDEO.format(tracker=tracker, extra=extra)
    item = predict(client, config, [{"id": 1, "data": {"video": data_uri(video.read_bytes(), "video/mp4")}}])[0]
    assert_valid(config, item)
    ids = set()
    for region in item["result"]:
        assert region["type"] == "videorectangle" and region["value"]["labels"] == ["Vehicle"]
        assert region["value"]["framesCount"] == 8 and region["value"]["duration"] == pytest.approx(0.8)
        frames = [s["frame"] for s in region["value"]["sequence"]]
        assert frames == sorted(set(frames)) and 1 <= frames[0] and frames[-1] <= 8
        assert region["value"]["sequence"][-1]["enabled"] is False
        ids.add(region["id"])
    assert len(ids) == len(item["result"])


def test_video_tracker_parameter_typo_is_a_clear_error(client, tmp_path):
    from prelabel.testing.images import data_uri

    video = write_video(tmp_path / "clip.mp4", frames=3)
    config = VIDEO.format(tracker="bytetrack", extra='bytetrack_no_such_param="1"')
    item = predict(client, config, [{"id": 1, "data": {"video": data_uri(video.read_bytes(), "video/mp4")}}])[0]
    assert item["result"] == [] and "no parameter 'no_such_param'" in item["error"]


def test_model_skip_and_mixed_controls(client):
    config = """<View>
      <Image name="image" value="$image"/>
      <RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels>
      <PolygonLabels name="poly" toName="image" model_skip="true"><Label value="Car"/></PolygonLabels>
      <Choices name="cls" toName="image" model_score_threshold="0"><Choice value="cat"/></Choices>
    </View>"""
    item = predict(client, config, image_tasks(1))[0]
    assert_valid(config, item)
    assert {r["from_name"] for r in item["result"]} == {"label", "cls"}


def test_a_skipped_control_does_not_require_its_image(client):
    config = """<View>
      <Image name="image" value="$image"/>
      <RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels>
      <Image name="closeup" value="$closeup"/>
      <PolygonLabels name="poly" toName="closeup" model_skip="true"><Label value="Car"/></PolygonLabels>
    </View>"""
    item = predict(client, config, image_tasks(1))[0]  # the tasks have no "closeup"
    assert "error" not in item, item.get("error")
    assert_valid(config, item)
    assert {r["from_name"] for r in item["result"]} == {"label"}


def test_a_config_whose_only_control_is_skipped_is_refused_with_the_reason(client):
    config = """<View>
      <Image name="image" value="$image"/>
      <RectangleLabels name="label" toName="image" model_skip="true"><Label value="Car"/></RectangleLabels>
    </View>"""
    resp = client.post("/setup", json={"project": "41.1", "schema": config})
    assert resp.status_code == 400
    assert 'left to annotators with model_skip="true": label' in resp.json()["error"]


def test_a_broken_image_fails_alone(client):
    from prelabel.testing.images import data_uri

    tasks = image_tasks(3)
    tasks[1]["data"]["image"] = data_uri(b"not an image at all", "image/png")
    results = predict(client, BOXES, tasks)
    assert "error" not in results[0] and "error" not in results[2]
    assert results[1]["result"] == [] and "not a decodable image" in results[1]["error"]


BOXES_AND_POLYGONS = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Car" predicted_values="car"/></RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Car"/></PolygonLabels>
</View>"""


def test_the_images_of_a_call_are_decoded_at_the_same_time_each_once(client, monkeypatch):
    import threading

    from prelabel.media import MediaFetcher
    from prelabel.testing.images import data_uri

    real = MediaFetcher.image_array
    both = threading.Barrier(2, timeout=10)  # the first two decodes meet here, or the test fails
    calls: list[str] = []

    def image_array(self, *args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) <= 2:
            both.wait()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MediaFetcher, "image_array", image_array)
    tasks = image_tasks(4)
    tasks[2]["data"]["image"] = data_uri(b"not an image at all", "image/png")
    results = predict(client, BOXES_AND_POLYGONS, tasks)
    assert len(calls) == 4, "an image was decoded once per control, not once per task"
    assert all(name.startswith("prelabel-yolo-decode") for name in calls)
    assert results[2]["result"] == [] and "not a decodable image" in results[2]["error"]
    for i in (0, 1, 3):
        assert "error" not in results[i]
        assert {r["from_name"] for r in results[i]["result"]} == {"label", "poly"}
        assert_valid(BOXES_AND_POLYGONS, results[i])


def test_cpu_inference_uses_every_core_unless_told(client, tmp_path, monkeypatch):
    """ultralytics resets torch to os.cpu_count() - 1 threads (1 on a 2-core machine) when it
    sets up a predictor; the backend predicts with every core, or YOLO_CPU_THREADS."""
    import os

    import torch
    from prelabel_yolo.models import CACHE
    from ultralytics.utils import NUM_THREADS

    def threads_during_calls(c):
        predict(c, BOXES, image_tasks(1))  # the model is loaded and its predictor set up
        seen = []
        for entry in list(CACHE._entries.values()):
            original = entry.model.predict

            def spy(*args, _original=original, **kwargs):
                seen.append(torch.get_num_threads())  # in the thread that runs the model
                return _original(*args, **kwargs)

            monkeypatch.setattr(entry.model, "predict", spy)
        predict(c, BOXES, image_tasks(2))
        return seen

    assert client.get("/health").json()["cpu_threads"] == os.cpu_count()
    assert set(threads_during_calls(client)) == {os.cpu_count()}
    wanted = NUM_THREADS + 1  # not what ultralytics sets
    rt = make_runtime(__import__("prelabel_yolo").YoloBackend, tmp_path, {**FAST, "yolo_cpu_threads": wanted})
    with serve_in_process(rt) as other:
        assert other.get("/health").json()["cpu_threads"] == wanted
        assert set(threads_during_calls(other)) == {wanted}
    rt.close()


def test_an_exif_rotated_jpeg_gets_boxes_where_the_browser_shows_the_object(client, monkeypatch):
    """Pixels stored turned with EXIF orientation 6 (as phones write portrait photos): the model
    gets the displayed image, and the box is in percent of the displayed size. The network is
    replaced by one that boxes the white object in the array it is given (random weights box
    nothing in particular), answering with ultralytics' own Results."""
    import numpy as np
    import torch
    from ultralytics import YOLO
    from ultralytics.engine.results import Results

    from prelabel.testing.images import data_uri, exif_rotated_jpeg

    seen = []

    def brightest_box(self, images, **kwargs):
        out = []
        for image in images:
            seen.append(image.shape)
            ys, xs = np.nonzero(image.min(axis=2) > 230)
            box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9, (kwargs.get("classes") or [0])[0]]]
            out.append(Results(image, path="", names=self.names, boxes=torch.tensor(box, dtype=torch.float32)))
        return out

    monkeypatch.setattr(YOLO, "predict", brightest_box)
    width, height, displayed_box = 96, 64, (50, 16, 86, 48)
    image = data_uri(exif_rotated_jpeg(width, height, displayed_box, orientation=6), "image/jpeg")
    (item,) = predict(client, BOXES, [{"id": 1, "data": {"image": image}}])
    assert seen == [(height, width, 3)]
    (region,) = item["result"]
    assert (region["original_width"], region["original_height"]) == (width, height)
    x1, y1, x2, y2 = displayed_box
    expected = (100 * x1 / width, 100 * y1 / height, 100 * (x2 - x1) / width, 100 * (y2 - y1) / height)
    got = tuple(region["value"][k] for k in ("x", "y", "width", "height"))
    assert got == pytest.approx(expected, abs=3.0), "the box is not where the browser shows the object"
