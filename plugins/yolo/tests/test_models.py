"""Where weights come from (and what is refused), the model cache, batching and locking."""

import shutil
import threading
from pathlib import Path

import pytest
from prelabel_yolo import YoloBackend
from prelabel_yolo.models import CACHE, ModelCache, ModelPathError, resolve_model_path
from yolo_media import BOXES, FAST, assert_valid, image_tasks, predict

from prelabel import Task
from prelabel.testing.client import make_runtime, serve_in_process


@pytest.mark.parametrize(
    "value,reason",
    [
        ("/etc/passwd", "absolute"),
        ("\\\\server\\share\\m.pt", "absolute"),
        ("C:\\weights\\m.pt", "absolute"),
        ("../m.pt", "'..'"),
        ("sub/../../m.pt", "'..'"),
        ("sub\\..\\..\\m.pt", "'..'"),
        ("", "empty"),
    ],
)
def test_model_path_outside_model_root_is_refused(tmp_path, value, reason):
    with pytest.raises(ModelPathError, match=reason):
        resolve_model_path(value, tmp_path)


def test_a_symlink_out_of_model_root_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "m.pt").write_bytes(b"x")
    (root / "link").symlink_to(outside)
    with pytest.raises(ModelPathError, match="outside MODEL_ROOT"):
        resolve_model_path("link/m.pt", root)
    assert resolve_model_path("sub/m.pt", root) == (root / "sub" / "m.pt").resolve()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    rt = make_runtime(YoloBackend, tmp_path_factory.mktemp("home"), FAST)
    with serve_in_process(rt) as c:
        yield c
    rt.close()


@pytest.mark.parametrize(
    "value,message",
    [
        ("/etc/passwd", "is an absolute path"),
        ("../yolo11n.pt", "contains '..'"),
        ("missing.pt", "names not a file in MODEL_ROOT"),
    ],
)
def test_a_refused_model_path_is_a_clear_error_for_each_task(client, value, message):
    config = BOXES.replace('model_score_threshold="0.5"', f'model_path="{value}"')
    results = predict(client, config, image_tasks(2))
    for item in results:
        assert item["result"] == [] and message in item["error"] and "label" in item["error"]


def test_model_path_loads_a_custom_file_once(client, model_root):
    custom = model_root / "custom" / "det.pt"
    custom.parent.mkdir(exist_ok=True)
    shutil.copyfile(model_root / "yolo11n.pt", custom)
    config = BOXES.replace('model_score_threshold="0.5"', 'model_path="custom/det.pt"')
    assert_valid(config, predict(client, config, image_tasks(1))[0])
    loads = CACHE.loads
    assert_valid(config, predict(client, config, image_tasks(2))[0])
    assert CACHE.loads == loads  # loaded once per process, not per request
    assert str(custom.resolve()) in client.get("/health").json()["models_loaded"]


def test_missing_default_weights_without_downloads_is_a_clear_error(tmp_path):
    rt = make_runtime(
        YoloBackend, tmp_path / "home", {**FAST, "model_root": str(tmp_path / "empty"), "yolo_download": False}
    )
    with serve_in_process(rt) as c:
        item = predict(c, BOXES, image_tasks(1))[0]
    rt.close()
    assert item["result"] == [] and "default weights yolo11n.pt are not a file" in item["error"]
    assert "YOLO_DOWNLOAD is off" in item["error"]


def _loaded(model_root: Path):
    return CACHE.get((model_root / "yolo11n.pt").resolve(), "cpu")


@pytest.mark.parametrize("batch,calls", [(8, 3), (1, 20)])
def test_one_model_call_per_batch_of_images(tmp_path, model_root, batch, calls):
    rt = make_runtime(YoloBackend, tmp_path / "home", {**FAST, "yolo_max_batch_size": batch})
    tasks = image_tasks(20)
    with serve_in_process(rt) as c:
        predict(c, BOXES, tasks[:1])  # load the model
        before = _loaded(model_root).calls
        results = predict(c, BOXES, tasks)
        assert _loaded(model_root).calls - before == calls
    rt.close()
    assert all(item["result"] and "error" not in item for item in results)


def test_batched_and_single_image_results_agree(tmp_path):
    boxes = {}
    for batch in (8, 1):
        rt = make_runtime(YoloBackend, tmp_path / f"home{batch}", {**FAST, "yolo_max_batch_size": batch})
        with serve_in_process(rt) as c:
            results = predict(c, BOXES, image_tasks(5))
        rt.close()
        boxes[batch] = [
            [
                (round(r["value"]["x"], 3), round(r["value"]["width"], 3), r["value"]["rectanglelabels"])
                for r in item["result"]
            ]
            for item in results
        ]
    assert boxes[8] == boxes[1]


def test_concurrent_predictions_are_serialized_per_model(tmp_path):
    """Threads predicting through one cached model get the results a lone caller gets."""
    rt = make_runtime(YoloBackend, tmp_path / "home", FAST)
    rt.start()
    ctx = rt.context(rt.project(None, BOXES))
    tasks = [Task.from_dict(t) for t in image_tasks(6)]

    def geometry(outputs):
        return [[(r["value"]["x"], r["value"]["y"], r["value"]["width"]) for r in p.result] for p in outputs]

    expected = geometry(rt.backend.predict(tasks, ctx))
    got, errors = [], []

    def worker(offset: int):
        try:
            mine = tasks[offset:] + tasks[:offset]  # different batches in flight at once
            out = geometry(rt.backend.predict(mine, ctx))
            got.append(out[len(tasks) - offset :] + out[: len(tasks) - offset] == expected)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    rt.close()
    assert not errors and got == [True] * 4


def test_the_cache_loads_once_under_concurrency_and_is_bounded(model_root):
    cache = ModelCache(capacity=1)
    path = (model_root / "yolo11n.pt").resolve()
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(cache.get(path, "cpu"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert cache.loads == 1 and len(seen) == 6 and all(s is seen[0] for s in seen)
    cache.get((model_root / "yolo11n-cls.pt").resolve(), "cpu")
    assert cache.loaded() == [str((model_root / "yolo11n-cls.pt").resolve())]  # capacity 1: the first was evicted
    copy = model_root / "replaced.pt"
    shutil.copyfile(model_root / "yolo11n.pt", copy)
    first = cache.get(copy.resolve(), "cpu")
    shutil.copyfile(model_root / "yolo11n-seg.pt", copy)  # a new file under the same name is reloaded
    second = cache.get(copy.resolve(), "cpu")
    assert second is not first and second.task == "segment"
