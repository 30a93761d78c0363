"""Synthetic images, videos and annotated tasks for the yolo tests."""

from __future__ import annotations

from pathlib import Path

from prelabel import parse_label_config
from prelabel.testing import images
from prelabel.testing.client import per_task_results
from prelabel.testing.images import data_uri, png_bytes

WIDTH, HEIGHT = 80, 60  # not square, so letterbox padding would show in misplaced regions


def image_uri(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> str:
    x = 8 + (seed * 7) % 30
    return data_uri(
        png_bytes(width, height, color=(30 + seed * 10 % 200, 90, 160), box=(x, 10, x + 30, 45), noise=8, seed=seed)
    )


def image_tasks(n: int, key: str = "image", start: int = 1) -> list[dict]:
    return [{"id": start + i, "data": {key: image_uri(i)}} for i in range(n)]


def write_video(path: Path, frames: int = 8, width: int = 96, height: int = 64) -> Path:
    return images.write_video(path, frames, width, height)


def rectangle_tasks(n: int, control: str = "label", labels: tuple[str, ...] = ("Car", "Person")) -> list[dict]:
    """Annotated tasks (export format) with one box per image around the drawn white box."""
    tasks = []
    for i in range(n):
        x = 8 + (i * 7) % 30
        value = {
            "x": 100 * x / WIDTH,
            "y": 100 * 10 / HEIGHT,
            "width": 100 * 30 / WIDTH,
            "height": 100 * 35 / HEIGHT,
            "rotation": 0,
            "rectanglelabels": [labels[i % len(labels)]],
        }
        tasks.append(
            {
                "id": 100 + i,
                "data": {"image": image_uri(i)},
                "annotations": [
                    {
                        "id": i,
                        "result": [
                            {
                                "from_name": control,
                                "to_name": "image",
                                "type": "rectanglelabels",
                                "value": value,
                                "original_width": WIDTH,
                                "original_height": HEIGHT,
                            }
                        ],
                    }
                ],
            }
        )
    return tasks


def polygon_tasks(n: int, control: str = "label", labels: tuple[str, ...] = ("Car", "Person")) -> list[dict]:
    tasks = []
    for i in range(n):
        x = 8 + (i * 7) % 30
        pts = [(x, 10), (x + 30, 10), (x + 30, 45), (x, 45)]
        value = {
            "points": [[100 * px / WIDTH, 100 * py / HEIGHT] for px, py in pts],
            "closed": True,
            "polygonlabels": [labels[i % len(labels)]],
        }
        tasks.append(
            {
                "id": 200 + i,
                "data": {"image": image_uri(i)},
                "annotations": [
                    {
                        "id": i,
                        "result": [{"from_name": control, "to_name": "image", "type": "polygonlabels", "value": value}],
                    }
                ],
            }
        )
    return tasks


# tiny inputs keep the random-weight models fast on CPU
FAST = {"yolo_imgsz": 64, "yolo_max_det": 5}

BOXES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.5">
    <Label value="Vehicle" predicted_values="car,truck"/>
    <Label value="Animal" predicted_values="dog"/>
  </RectangleLabels>
</View>"""


def predict(client, config, tasks):
    resp = client.post("/predict", json={"tasks": tasks, "project": "3.1", "label_config": config})
    assert resp.status_code == 200, resp.text
    results = per_task_results(resp.json())
    assert len(results) == len(tasks)
    return results


def assert_valid(config, item):
    assert "error" not in item, item["error"]
    assert item["result"], "expected regions"
    errors = parse_label_config(config).interface.validate_prediction(item, return_errors=True)
    assert not errors, errors
