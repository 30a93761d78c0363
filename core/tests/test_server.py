"""Endpoint behaviour beyond the conformance suite, with small purpose-built backends."""

import base64
import json
import logging
import threading
import time

import pytest

from prelabel import Backend, Prediction, TaskError
from prelabel.logsetup import JsonFormatter, RequestIdFilter, request_id_var
from prelabel.regions import choices, rectangle
from prelabel.testing import configs
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process
from prelabel.testing.images import data_uri, png_bytes


class ImageBoxBackend(Backend):
    """Fetches each image through core media and returns one box of the whole image."""

    backend_id = "image_box"
    supports = {"RectangleLabels": frozenset({"Image"})}
    max_batch_size = 4

    def predict(self, tasks, ctx):
        control = self.supported_controls(ctx.config)[0]
        out = []
        for task in tasks:
            raw = ctx.media.fetch(task.data[control.object.data_key], task.id)
            width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
            out.append([rectangle(control, "Car", 0, 0, width, height, width, height, score=0.8)])
        return out


class TrickyTextBackend(Backend):
    """Raises on 'boom' (sinking its batch), returns unknown labels on 'boat', counts
    concurrent calls, and returns too few results on 'short'."""

    backend_id = "tricky"
    supports = {"Choices": frozenset({"Text"})}
    max_batch_size = 3
    calls: list = []
    active = 0
    peak = 0
    lock = threading.Lock()

    def predict(self, tasks, ctx):
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        try:
            cls.calls.append([t.id for t in tasks])
            time.sleep(0.01)
            control = self.supported_controls(ctx.config)[0]
            texts = [t.data["text"] for t in tasks]
            if any("boom" in t for t in texts):
                raise RuntimeError("model exploded")
            if any("short" in t for t in texts):
                return []
            out = []
            for text in texts:
                if "bad" in text:
                    out.append(TaskError("this task is bad"))
                elif "boat" in text:
                    out.append(Prediction([{**choices(control, "positive"), "value": {"choices": ["boat"]}}]))
                else:
                    out.append(Prediction([choices(control, "positive", score=0.7)]))
            return out
        finally:
            with cls.lock:
                cls.active -= 1


def predict(client, tasks, config=configs.TEXT_CHOICES, **extra):
    return client.post("/predict", json={"tasks": tasks, "label_config": config, "project": "1.1", **extra})


@pytest.fixture
def tricky(tmp_path):
    TrickyTextBackend.calls = []
    TrickyTextBackend.peak = 0
    rt = make_runtime(TrickyTextBackend, tmp_path / "h")
    with serve_in_process(rt) as c:
        yield c


def test_a_task_that_sinks_its_batch_is_isolated(tricky):
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(["ok", "boom", "fine", "also ok"])]
    results = per_task_results(predict(tricky, tasks).json())
    assert [bool(r["result"]) for r in results] == [True, False, True, True]
    assert "model exploded" in results[1]["error"]
    assert TrickyTextBackend.calls[:2] == [[0, 1, 2], [0]]  # batch failed, then one by one


def test_task_error_and_foreign_labels(tricky):
    tasks = [{"id": 1, "data": {"text": "bad"}}, {"id": 2, "data": {"text": "boat"}}, {"id": 3, "data": {"text": "x"}}]
    results = per_task_results(predict(tricky, tasks).json())
    assert results[0] == {
        "result": [],
        "score": None,
        "model_version": results[0]["model_version"],
        "error": "this task is bad",
    }
    assert results[1]["result"] == [] and "error" not in results[1]  # 'boat' is not a project label
    assert results[2]["score"] == 0.7  # the mean of region scores when predict gives none


def test_wrong_result_count_is_reported_per_task(tricky):
    results = per_task_results(
        predict(tricky, [{"id": 1, "data": {"text": "short"}}, {"id": 2, "data": {"text": "x"}}]).json()
    )
    assert len(results) == 2
    assert all("returned 0 results for 2 tasks" in r["error"] for r in results)


def test_sync_predict_is_serialized(tricky):
    tasks = [{"id": i, "data": {"text": "x"}} for i in range(3)]
    threads = [threading.Thread(target=predict, args=(tricky, tasks)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(TrickyTextBackend.calls) == 8 and TrickyTextBackend.peak == 1


def test_overload_is_503_with_retry_after(tmp_path):
    rt = make_runtime(TrickyTextBackend, tmp_path / "h", max_inflight=0)
    with serve_in_process(rt) as c:
        resp = predict(c, [{"id": 1, "data": {"text": "x"}}])
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert "MAX_INFLIGHT" in resp.json()["error"]
        assert "prelabel_rejected_total 1.0" in c.get("/metrics").text


def test_oversized_body_is_413(tmp_path):
    rt = make_runtime(TrickyTextBackend, tmp_path / "h", max_body_bytes=2000)
    with serve_in_process(rt) as c:
        resp = predict(c, [{"id": 1, "data": {"text": "x" * 5000}}])
        assert resp.status_code == 413 and "MAX_BODY_BYTES" in resp.json()["error"]

        def chunks():  # no content-length: the limit is enforced while reading
            yield b'{"tasks": [{"id": 1, "data": {"text": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}}]}'

        resp = c.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert resp.status_code == 413


@pytest.fixture
def images(tmp_path):
    rt = make_runtime(ImageBoxBackend, tmp_path / "h")
    with serve_in_process(rt) as c:
        yield c


def test_unreachable_media_fails_only_its_task(images):
    tasks = [
        {"id": 1, "data": {"image": data_uri(png_bytes(40, 20))}},
        {"id": 2, "data": {"image": "http://127.0.0.1:9/missing.png"}},
        {"id": 3, "data": {"image": "/data/upload/1/x.png"}},
        {"id": 4, "data": {"image": data_uri(png_bytes(10, 30))}},
    ]
    results = per_task_results(predict(images, tasks, configs.IMAGE_RECTANGLES).json())
    assert results[0]["result"][0]["original_width"] == 40
    assert "could not download" in results[1]["error"]
    assert "LABEL_STUDIO_URL" in results[2]["error"]
    assert results[3]["result"][0]["original_height"] == 30


def test_setup_hostname_is_used_for_relative_media(images):
    resp = images.post(
        "/setup",
        json={
            "project": "1.1",
            "schema": configs.IMAGE_RECTANGLES,
            "hostname": "http://127.0.0.1:9",
            "access_token": "tok",
        },
    )
    assert resp.status_code == 200
    results = predict(images, [{"id": 3, "data": {"image": "/data/upload/1/x.png"}}], configs.IMAGE_RECTANGLES)
    assert "http://127.0.0.1:9/data/upload/1/x.png" in per_task_results(results.json())[0]["error"]


def test_project_key_and_webhook_id_share_state(tricky):
    tricky.post("/setup", json={"project": "12.1795239193", "schema": configs.TEXT_CHOICES})
    resp = tricky.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "12.999"})
    assert resp.status_code == 200  # same project id, config found


def test_legacy_train_on_untrainable_backend(tricky):
    resp = tricky.post("/train", json={"annotations": [], "project": "1.1"})
    assert resp.status_code == 400 and "not trainable" in resp.json()["error"]


def test_unknown_webhook_action_is_ignored(tricky):
    assert tricky.post("/webhook", json={"action": "TASKS_DELETED", "project": {"id": 1}}).json()["status"] == "ignored"
    assert tricky.post("/webhook", json={"action": "X", "project": None}).json()["status"] == "ignored"


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord("prelabel.test", logging.ERROR, __file__, 1, "task %s failed", (5,), None)
    token = request_id_var.set("rid-42")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "task 5 failed" and line["request_id"] == "rid-42" and line["level"] == "ERROR"


@pytest.mark.parametrize(
    ("method", "path", "rid"),
    [("POST", "/predict", "0123456789ab00000001"), ("GET", "/health", None), ("BREW", '/a"b\\c/\u00e9', 'r"1')],
)
def test_access_line_written_directly_is_the_line_logging_writes(method, path, rid):
    """AccessLog writes its line itself when logging is configure_logging's JSON; the fields must
    be the ones the logging path (JsonFormatter) gives the same request, escaping included."""
    import io

    from prelabel import logsetup

    root = logging.getLogger()
    saved = root.handlers[:], root.level, logsetup._json_handler, logsetup._json_filters
    try:
        logsetup.configure_logging("INFO", "json")
        handler = root.handlers[0]
        handler.stream = direct = io.StringIO()
        token = request_id_var.set(rid)
        try:
            access = logsetup.AccessLog("prelabel.access")
            assert access._direct() is handler
            access.log(logging.INFO, method, path, 200, 12.3456)
            logsetup._json_handler = None  # the logging path, through JsonFormatter
            handler.stream = through = io.StringIO()
            access.log(logging.INFO, method, path, 200, 12.3456)
        finally:
            request_id_var.reset(token)
    finally:
        root.handlers[:], root.level, logsetup._json_handler, logsetup._json_filters = saved
    a, b = json.loads(direct.getvalue()), json.loads(through.getvalue())
    assert a.pop("ts")[:4] == b.pop("ts")[:4]
    assert a == b
    assert a["msg"] == f"{method} {path} 200 12.3ms" and a["duration_ms"] == 12.35 and a["path"] == path


def test_served_access_lines_of_one_loop_iteration_share_one_write_in_order():
    """In a served process (coalesce_access_lines), the access lines of one event-loop iteration
    go out in one write at its end; any other record writes the waiting ones first; outside a
    loop, or once turned off, a line is written at once."""
    import asyncio
    import io

    from prelabel import logsetup

    class Counting(io.StringIO):
        writes = 0

        def write(self, text):
            self.writes += 1
            return super().write(text)

    def lines(stream):
        return [json.loads(line)["msg"] for line in stream.getvalue().splitlines()]

    root = logging.getLogger()
    saved = root.handlers[:], root.level, logsetup._json_handler, logsetup._json_filters
    access = logsetup.AccessLog("prelabel.access")
    try:
        logsetup.configure_logging("INFO", "json")
        stream = root.handlers[0].stream = Counting()
        logsetup.coalesce_access_lines()

        async def serve():
            for i in range(3):
                access.log(logging.INFO, "POST", "/predict", 200, float(i))
            assert stream.getvalue() == ""  # waiting for the end of the iteration
            await asyncio.sleep(0)
            assert lines(stream) == [f"POST /predict 200 {i}.0ms" for i in range(3)] and stream.writes == 1
            access.log(logging.INFO, "GET", "/health", 200, 1.0)
            logging.getLogger("prelabel.test").error("after the request")
            assert lines(stream)[3:] == ["GET /health 200 1.0ms", "after the request"]
            before, accent = stream.writes, "\u00e9"
            for i in range(60):  # more than a pipe writes whole in one go
                access.log(logging.INFO, "POST", f"/predict/{accent * i}", 200, 0.5)
            sizes = []
            stream.write = lambda text: sizes.append(len(text.encode())) or Counting.write(stream, text)
            await asyncio.sleep(0)
            assert len(sizes) > 1 and max(sizes) <= logsetup.PIPE_BUF and stream.writes == before + len(sizes)
            assert lines(stream)[-60:] == [f"POST /predict/{accent * i} 200 0.5ms" for i in range(60)]
            del stream.write
            access.log(logging.INFO, "POST", "/setup", 200, 2.0)

        asyncio.run(serve())
        assert lines(stream)[-1] == "POST /setup 200 2.0ms"  # its iteration ran before the loop closed
        access.log(logging.INFO, "POST", "/train", 201, 3.0)  # no loop here: written at once
        assert lines(stream)[-1] == "POST /train 201 3.0ms"

        async def then_off():
            access.log(logging.INFO, "POST", "/webhook", 200, 4.0)
            logsetup.coalesce_access_lines(False)  # writes what waits
            assert lines(stream)[-1] == "POST /webhook 200 4.0ms"
            access.log(logging.INFO, "POST", "/predict", 200, 5.0)
            assert lines(stream)[-1] == "POST /predict 200 5.0ms"

        asyncio.run(then_off())
    finally:
        logsetup.coalesce_access_lines(False)
        root.handlers[:], root.level, logsetup._json_handler, logsetup._json_filters = saved


def test_running_loop_is_the_loop_running_in_this_thread():
    import asyncio
    import threading

    from prelabel.looptick import running_loop

    async def found():
        return running_loop()

    assert running_loop() is None
    for _ in range(2):  # a new loop in the same thread is found, not the last one kept
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(found()) is loop
        loop.close()
        assert running_loop() is None
    seen = []
    thread = threading.Thread(target=lambda: seen.append(asyncio.run(found()) is not None and running_loop()))
    outer = asyncio.new_event_loop()

    async def both():
        mine = running_loop()
        thread.start()
        await asyncio.to_thread(thread.join)
        return mine is outer and running_loop() is outer

    assert outer.run_until_complete(both()) and seen == [None]
    outer.close()


def test_log_stamps_are_utc_milliseconds_however_they_are_reused():
    import datetime
    import random

    formatter = JsonFormatter()
    rng = random.Random(7)
    base = 1764741000.0
    moments = sorted(base + rng.uniform(0, 5) for _ in range(500)) + [base + 0.9995, base + 1.0, 0.0005, base]
    for t in moments:  # ascending (reused stamps), then jumps back and forth
        want = datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert formatter.stamp(t) == want, t


def test_wrong_auth_scheme_is_refused(tmp_path):
    rt = make_runtime(TrickyTextBackend, tmp_path / "h", basic_auth_user="u", basic_auth_pass="p")
    with serve_in_process(rt) as c:
        assert c.get("/health", headers={"Authorization": "Bearer u:p"}).status_code == 401
        assert c.get("/health", headers={"Authorization": "Basic !!!"}).status_code == 401
        ok = "Basic " + base64.b64encode(b"u:p").decode()
        assert c.get("/health", headers={"Authorization": ok}).status_code == 200
