"""POST /v1/extract: UIE without Label Studio, from a text or a document image given as a
URL, a path under UIE_ALLOWED_ROOT, or base64."""

import base64

import pytest
from fastapi.testclient import TestClient
from prelabel_uie_x import UieBackend
from uie_x_corpus import invoice

from prelabel.server.app import create_app
from prelabel.testing.client import make_runtime, serve_in_process
from prelabel.testing.harness.httpserver import RecordingServer

SETTINGS = {"uie_max_seq_len": 128, "uie_model": "uie-x-base", "uie_ocr_side_len": 320}
TOKEN = "f" * 40


@pytest.fixture(scope="module")
def page() -> bytes:
    return invoice(7)[0]


@pytest.fixture(scope="module")
def allowed_root(tmp_path_factory, page):
    root = tmp_path_factory.mktemp("allowed")
    (root / "scans").mkdir()
    (root / "scans" / "inv.png").write_bytes(page)
    (root / "notes.txt").write_text("not an image")
    (tmp_path_factory.mktemp("outside") / "secret.png").write_bytes(page)
    return root


@pytest.fixture(scope="module")
def client(tiny_uiex, allowed_root, tmp_path_factory):
    rt = make_runtime(
        UieBackend,
        tmp_path_factory.mktemp("extract") / "home",
        {"uie_task_path": str(tiny_uiex), "uie_allowed_root": str(allowed_root), **SETTINGS},
        label_studio_url="http://127.0.0.1:9",
        label_studio_api_key=TOKEN,
    )
    with serve_in_process(rt) as c:
        yield c
    rt.close()


@pytest.fixture
def image_host(page):
    with RecordingServer("127.0.0.1", lambda *a: (200, {"content-type": "image/png"}, page)) as server:
        yield server


def check_offsets(result: dict, text: str, schema: list[str]) -> int:
    assert set(result) <= set(schema)
    spans = 0
    for items in result.values():
        for item in items:
            assert 0 <= item["probability"] <= 1
            if "start" in item:
                assert text[item["start"] : item["end"]] == item["text"]
                spans += 1
    return spans


def test_text(client):
    text = "Alice works at Acme in Paris. 张三在北京工作。"
    resp = client.post("/v1/extract", json={"text": text, "schema": ["Person", "Location"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_version"] == "uie_x-tiny-uie-x"
    assert check_offsets(body["result"], text, ["Person", "Location"]) > 0  # a random model marks plenty


def test_image_as_base64_with_ocr_lines(client, page):
    resp = client.post(
        "/v1/extract", json={"image_base64": base64.b64encode(page).decode(), "schema": ["Date"], "include_ocr": True}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["image_size"] == [480, 260]
    assert "INVOICE" in body["text"] and "Issued:" in body["text"]
    assert [line["text"] for line in body["ocr"]][0] == "INVOICE"
    assert body["text"] == "".join(line["text"] for line in body["ocr"])
    check_offsets(body["result"], body["text"], ["Date"])
    boxed = [item for item in body["result"].get("Date", []) if "start" in item]
    assert boxed, "a random model marks plenty"
    for item in boxed:  # spans of the page text carry their line boxes in pixels
        assert item["bbox"] and all(0 <= b[0] < b[2] <= 480 and 0 <= b[1] < b[3] <= 260 for b in item["bbox"])


def test_image_as_data_uri_and_url_without_the_label_studio_token(client, page, image_host):
    uri = "data:image/png;base64," + base64.b64encode(page).decode()
    by_uri = client.post("/v1/extract", json={"image_base64": uri, "schema": ["Date"]}).json()
    by_url = client.post("/v1/extract", json={"image": image_host.url + "/inv.png", "schema": ["Date"]})
    assert by_url.status_code == 200, by_url.text
    assert by_url.json() == by_uri
    assert [r["path"] for r in image_host.requests] == ["/inv.png"]
    assert "Authorization" not in image_host.requests[0]["headers"]  # the token only goes to Label Studio


def test_local_path_under_the_allowed_root(client, page):
    resp = client.post("/v1/extract", json={"path": "scans/inv.png", "schema": ["Total"]})
    assert resp.status_code == 200, resp.text
    assert "Amount:" in resp.json()["text"]
    refused = {"../outside0/secret.png": 400, "/etc/passwd": 400, "scans/missing.png": 404, "notes.txt": 422}
    for path, status in refused.items():
        resp = client.post("/v1/extract", json={"path": path, "schema": ["Total"]})
        assert resp.status_code == status, (path, resp.text)
        assert resp.json()["error"]


def test_local_paths_are_off_without_an_allowed_root(tiny_uiex, tmp_path):
    rt = make_runtime(UieBackend, tmp_path / "home", {"uie_task_path": str(tiny_uiex), **SETTINGS})
    with serve_in_process(rt) as c:
        resp = c.post("/v1/extract", json={"path": "scans/inv.png", "schema": ["Total"]})
        assert resp.status_code == 403 and "UIE_ALLOWED_ROOT" in resp.json()["error"]
    rt.close()


def test_bad_requests_are_4xx_with_a_reason(client):
    cases = [
        ({"schema": ["Date"]}, 422, "exactly one of"),
        ({"text": "x", "path": "a.png", "schema": ["Date"]}, 422, "exactly one of"),
        ({"text": "x", "schema": []}, 422, "schema is empty"),
        ({"text": "x"}, 422, "schema"),
        ({"text": "x", "schema": ["Date"], "unknown": 1}, 422, "unknown"),
        ({"image_base64": "%%%", "schema": ["Date"]}, 400, "not valid base64"),
        ({"image_base64": base64.b64encode(b"plain text").decode(), "schema": ["Date"]}, 422, "not a decodable"),
        ({"image": "/data/upload/1/x.png", "schema": ["Date"]}, 400, "could not be fetched"),
        ({"image": "ftp://host/x.png", "schema": ["Date"]}, 400, "unsupported media URL"),
    ]
    for body, status, words in cases:
        resp = client.post("/v1/extract", json=body)
        assert resp.status_code == status, (body, resp.text)
        assert words in resp.text, (body, resp.text)


def test_503_while_the_model_loads(tiny_uiex, tmp_path):
    rt = make_runtime(UieBackend, tmp_path / "home", {"uie_task_path": str(tiny_uiex), **SETTINGS})
    with TestClient(create_app(rt, start_setup=False)) as c:
        resp = c.post("/v1/extract", json={"text": "Alice", "schema": ["Person"]})
        assert resp.status_code == 503 and resp.headers["retry-after"]
    rt.close()


def test_cpu_inference_uses_every_core_unless_told(client, tiny_uie, tmp_path):
    """Taskflow alone gives Paddle Inference half the cores (one thread on 2 cores); the
    backend gives it every core, or UIE_CPU_THREADS."""
    import os

    from prelabel_uie_x.engine import ENGINES

    def threads_of_loaded_model(c) -> int:
        assert c.post("/v1/extract", json={"text": "Alice works in Paris.", "schema": ["Person"]}).status_code == 200
        engine = ENGINES._engines[next(reversed(ENGINES._engines))]  # the one just used
        return engine.taskflow.task_instance._num_threads

    assert client.get("/health").json()["cpu_threads"] == os.cpu_count()
    assert threads_of_loaded_model(client) == os.cpu_count()
    wanted = os.cpu_count() + 1  # neither the default nor Taskflow's own choice
    rt = make_runtime(
        UieBackend, tmp_path / "home", {"uie_task_path": str(tiny_uie), "uie_cpu_threads": wanted, **SETTINGS}
    )
    with serve_in_process(rt) as other:
        assert other.get("/health").json()["cpu_threads"] == wanted
        assert threads_of_loaded_model(other) == wanted
    rt.close()
