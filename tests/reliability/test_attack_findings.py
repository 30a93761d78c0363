"""Defects found by attacking a running server as an unauthenticated caller on the network
would (after the fixes for issue 15). Each test reproduces one defect and is marked
``xfail(strict=True)`` until it is fixed: the fix turns it into a pass, which then fails the
run until the marker is removed.

Other hosts are played by other loopback addresses (127.0.0.2, 127.0.0.3)."""

from __future__ import annotations

import base64
import json
import select
import socket
import threading
import time

import pytest

from prelabel.compat import LabelStudioMLBase, adapt
from prelabel.media import MediaError, MediaFetcher
from prelabel.settings import CoreSettings
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.httpserver import RecordingServer
from prelabel.testing.images import png_bytes
from prelabel.testing.reference import ReferenceBackend

SETUP_TOKEN = "setuptoken-0123456789abcdef0123456789ab"
PRIVATE, PUBLIC = png_bytes(4, 4), png_bytes(6, 6)
JSON = {"content-type": "application/json"}


@pytest.fixture
def served(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    with serve_in_process(rt) as client:
        yield rt, client


def _post_raw(client, path: str, text: str):
    """POST a JSON text as written (``\\udc80`` escapes, ``NaN``), which json= cannot send."""
    return client.post(path, content=text.encode(), headers=JSON)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _refused_or_listable(rt, client, resp) -> None:
    """Either a 4xx that stored nothing, or accepted and GET /jobs still works."""
    if 400 <= resp.status_code < 500:
        assert rt.jobs.list() == []
    else:
        assert resp.status_code < 300, resp.text
        assert client.get("/jobs").status_code == 200


# -- 500s ---------------------------------------------------------------------------------------
def test_webhook_with_a_lone_surrogate_in_its_action_is_not_a_500(served):
    _, client = served
    resp = _post_raw(client, "/webhook", '{"action": "\\udc80", "project": {"id": 1}}')
    assert resp.status_code < 500, resp.text


def test_job_params_with_nan_are_refused_and_create_nothing(served):
    rt, client = served
    resp = _post_raw(client, "/jobs", '{"project": 1, "kind": "train", "params": {"x": NaN}}')
    _refused_or_listable(rt, client, resp)


def test_job_params_with_a_lone_surrogate_are_refused_and_create_nothing(served):
    rt, client = served
    resp = _post_raw(client, "/jobs", '{"project": 1, "kind": "train", "params": {"x": "\\udc80"}}')
    _refused_or_listable(rt, client, resp)


def test_one_train_request_with_a_lone_surrogate_does_not_break_get_jobs(served):
    _, client = served
    resp = _post_raw(client, "/train", '{"project": 1, "annotations": [{"data": {"text": "\\udc80"}}]}')
    assert resp.status_code in (201, 400, 422), resp.text
    listing = client.get("/jobs")
    assert listing.status_code == 200, listing.text


@pytest.mark.parametrize(
    "path, body",
    [
        ("/jobs", '{"project": 1, "kind": "train", "params": {"x": ' + _nested(900) + "}}"),
        ("/train", '{"project": 1, "annotations": [{"x": ' + _nested(900) + "}]}"),
    ],
)
def test_deeply_nested_job_params_are_a_4xx(served, path, body):
    rt, client = served
    resp = _post_raw(client, path, body)
    _refused_or_listable(rt, client, resp)


# -- metrics ------------------------------------------------------------------------------------
def _series(client) -> int:
    client.get("/metrics")  # the first scrape adds GET /metrics' own series; count after it
    return sum(1 for line in client.get("/metrics").text.splitlines() if line and not line.startswith("#"))


def test_made_up_http_methods_add_no_metric_series(served):
    _, client = served
    client.request("M0000X", "/health")
    before = _series(client)
    for i in range(1, 51):
        client.request(f"M{i:04d}X", "/health")
    assert _series(client) <= before + 5


def test_made_up_webhook_actions_add_no_metric_series(served):
    _, client = served
    client.post("/webhook", json={"action": "A0000", "project": {"id": 1}})
    before = _series(client)
    for i in range(1, 51):
        assert client.post("/webhook", json={"action": f"A{i:04d}", "project": {"id": 1}}).status_code < 500
    assert _series(client) <= before + 5


# -- memory: job records ------------------------------------------------------------------------
def test_job_records_do_not_keep_the_training_data_of_every_train_request(served):
    _, client = served
    annotations = [{"data": {"text": "x" * 1000}, "annotations": []} for _ in range(1000)]  # ~1 MB
    for _ in range(3):
        resp = client.post("/train", json={"project": 1, "annotations": annotations})
        assert resp.status_code == 201, resp.text
    listing = client.get("/jobs")
    assert listing.status_code == 200
    assert len(listing.content) < 256 * 1024, f"GET /jobs answered {len(listing.content)} bytes"


# -- cache confusion ----------------------------------------------------------------------------
def test_a_file_fetched_with_the_token_through_a_redirect_is_not_served_to_another_project(tmp_path):
    def ls_routes(method, path, headers, raw, srv):  # as Label Studio: private files need the token
        if headers.get("Authorization") != f"Token {SETUP_TOKEN}":
            return 401, JSON, b'{"detail": "Authentication credentials were not provided."}'
        return 200, {"content-type": "image/png"}, PRIVATE

    ls = RecordingServer("127.0.0.1", ls_routes)

    def attacker_routes(method, path, headers, raw, srv):
        if path == "/r.png":
            return 302, {"location": ls.url + "/data/upload/21/private.png"}, b""
        return 200, {"content-type": "image/png"}, PUBLIC

    attacker = RecordingServer("127.0.0.2", attacker_routes)
    try:
        shared = MediaFetcher(CoreSettings(prelabel_home=tmp_path))
        project_21 = shared.bind(ls.url, SETUP_TOKEN)  # /setup of project 21: its Label Studio and token
        project_21.fetch(attacker.url + "/r.png")  # a task URL that redirects into Label Studio
        assert ls.requests[-1]["headers"].get("Authorization") == f"Token {SETUP_TOKEN}"
        other = shared.bind("http://127.0.0.3:9")  # another project: another Label Studio, no token
        fetched_before = len(ls.requests)
        try:
            data = other.fetch(attacker.url + "/r.png")
        except Exception:
            data = None
        assert data != PRIVATE, "the private Label Studio file came out of the cache"
        assert all(r["headers"].get("Authorization") is None for r in ls.requests[fetched_before:])
    finally:
        ls.close()
        attacker.close()


# -- jobs ---------------------------------------------------------------------------------------
def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # polling a condition, bounded by the deadline
    return value


def test_an_endless_task_listing_cannot_hold_the_prediction_worker_forever(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    version = rt.backend.model_version()
    page = json.dumps(
        {"tasks": [{"id": 1, "data": {"text": "x"}, "predictions_model_versions": version}], "total": 1}
    ).encode()

    def fake_label_studio(method, path, headers, raw, srv):  # no last page: every page has a task
        if path.startswith("/api/projects/5"):
            return 200, JSON, json.dumps({"id": 5, "label_config": TEXT_CHOICES, "task_number": 1}).encode()
        if path.startswith("/api/tasks"):
            return 200, JSON, page
        return 404, JSON, b"{}"

    fake = RecordingServer("127.0.0.2", fake_label_studio)
    try:
        with serve_in_process(rt) as client:
            assert (
                client.post(
                    "/setup",
                    json={
                        "project": "5.1",
                        "schema": TEXT_CHOICES,
                        "hostname": fake.url,
                        "access_token": "attacker-token-0000000000",
                    },
                ).status_code
                == 200
            )
            job = client.post("/jobs", json={"project": 5, "kind": "predict"}).json()
            _wait(
                lambda: sum(r["path"].startswith("/api/tasks") for r in fake.requests) >= 5,
                60,
                "the job never listed tasks",
            )
            client.delete(f"/jobs/{job['id']}")
            _wait(
                lambda: client.get(f"/jobs/{job['id']}").json()["status"] not in ("queued", "running"),
                15,
                f"job {job['id']} still runs 15 s after it was cancelled "
                f"({sum(r['path'].startswith('/api/tasks') for r in fake.requests)} pages fetched)",
            )
    finally:
        fake.close()  # the job thread, if still running, now fails on a refused connection


# -- /health ------------------------------------------------------------------------------------
def test_health_does_not_walk_every_project(served, monkeypatch):
    rt, client = served
    for i in range(300):
        client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1000 + i}})
    calls = []
    store = rt.state
    for name in ("get", "items", "namespaces"):
        original = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    assert client.get("/health").status_code == 200
    assert len(calls) <= 5, f"/health made {len(calls)} state reads for 300 projects"


# -- connections --------------------------------------------------------------------------------
def test_a_connection_that_never_finishes_its_headers_is_closed(tmp_path):
    with BackendProcess(
        "prelabel.testing.reference:ReferenceBackend", home=tmp_path / "home", env={"LOG_LEVEL": "WARNING"}
    ) as backend:
        with socket.create_connection((backend.host, backend.port), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            readable, _, _ = select.select([sock], [], [], 20)
            assert readable, "the server still holds the half-sent request open after 20 s"


# -- secrets registry ---------------------------------------------------------------------------
@pytest.fixture
def isolated_secrets(monkeypatch):
    """The process-wide redaction set, restored after the test (a test that grows it must not
    slow or mask the rest of the run)."""
    import prelabel.redact as redact_module

    monkeypatch.setattr(redact_module, "_secrets", set(redact_module._secrets))
    monkeypatch.setattr(redact_module, "_pattern", redact_module._pattern)
    return redact_module


def test_request_supplied_passwords_do_not_grow_the_process_wide_redaction_set(served, isolated_secrets):
    _, client = served
    before = sum(map(len, isolated_secrets._secrets))
    for i in range(40):
        resp = client.post(
            "/predict",
            json={
                "project": "1",
                "label_config": TEXT_CHOICES,
                "tasks": [{"id": 1, "data": {"text": "x"}}],
                "params": {"login": "u", "password": f"pw{i:04d}-" + "p" * 5_000},
            },
        )
        assert resp.status_code == 200
    grown = sum(map(len, isolated_secrets._secrets)) - before
    assert grown < 50_000, f"the redaction set grew by {grown} characters from 40 requests"


def test_a_request_cannot_mask_ordinary_words_in_every_log_line(served, isolated_secrets):
    _, client = served
    client.post(
        "/predict",
        json={
            "project": "1",
            "label_config": TEXT_CHOICES,
            "tasks": [{"id": 1, "data": {"text": "x"}}],
            "params": {"login": "u", "password": "refused"},
        },
    )
    assert isolated_secrets.redact("Label Studio refused the token") == "Label Studio refused the token"


# -- memory: --model-file instances -------------------------------------------------------------
class _UpstreamStyleModel(LabelStudioMLBase):
    """A model.py as label-studio-ml-backend users write it: it predicts nothing."""

    def predict(self, tasks, context=None, **kwargs):
        return [{"result": []} for _ in tasks]


def test_model_file_instances_are_not_kept_for_every_forged_project_id(tmp_path):
    rt = make_runtime(adapt(_UpstreamStyleModel), tmp_path / "home")
    with serve_in_process(rt) as client:
        for i in range(300):
            resp = client.post(
                "/predict",
                json={
                    "project": str(5000 + i),
                    "label_config": TEXT_CHOICES,
                    "tasks": [{"id": 1, "data": {"text": "x"}}],
                },
            )
            assert resp.status_code == 200, resp.text
        kept = len(rt.backend.instances())
    assert kept < 300, f"{kept} model instances kept for 300 project ids"


# -- slow peers ---------------------------------------------------------------------------------
@pytest.fixture
def header_dripper():
    """A host on 127.0.0.2 that answers every request with response headers one byte at a
    time, twice a second, for as long as the client stays."""
    server = socket.create_server(("127.0.0.2", 0))
    stop = threading.Event()

    def drip(conn):
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 10_000:
                if stop.wait(0.5):  # the drip's pace, not a readiness wait
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.2:{server.getsockname()[1]}"
    stop.set()
    server.close()


def test_a_host_that_drips_its_headers_cannot_hold_a_download_past_media_timeout(tmp_path, header_dripper):
    media = MediaFetcher(CoreSettings(prelabel_home=tmp_path, media_timeout=2))
    outcome: list[str] = []

    def download():
        try:
            media.fetch(header_dripper + "/x.png")
            outcome.append("downloaded")
        except MediaError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=download, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(15)
    assert outcome, "still downloading 15 s after the start, with MEDIA_TIMEOUT=2"
    assert "MEDIA_TIMEOUT" in outcome[0] or "timed out" in outcome[0], outcome
    # MEDIA_TIMEOUT bounds the whole download (once per hop), not each byte's read
    assert time.monotonic() - started < 2 + 1.5, f"gave up after {time.monotonic() - started:.1f} s"


# -- label config size --------------------------------------------------------------------------
def _big_setup() -> tuple[str, dict]:
    choices = "".join(f'<Choice value="c{i}"/>' for i in range(150_000))
    xml = f'<View><Text name="text" value="$text"/><Choices name="s" toName="text">{choices}</Choices></View>'
    return "/setup", {"project": "1.1", "schema": xml}


def _many_tasks() -> tuple[str, dict]:
    return "/predict", {
        "project": "1",
        "label_config": TEXT_CHOICES,
        "tasks": [{"id": i, "data": {"text": "x"}} for i in range(400_000)],
    }


def _many_annotated_tasks() -> tuple[str, dict]:
    # 15 MB: 200,000 annotated tasks in a legacy /train body (it held /health for 6.9 s)
    return "/train", {
        "project": "1",
        "label_config": TEXT_CHOICES,
        "annotations": [{"id": i, "data": {"text": "x"}, "annotations": [{"result": []}]} for i in range(200_000)],
    }


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(_big_setup, id="big-label-config"),
        pytest.param(_many_tasks, id="many-tasks"),
        pytest.param(_many_annotated_tasks, id="many-annotated-tasks"),
    ],
)
def test_a_big_request_does_not_stall_health(tmp_path, make_body):
    path, body = make_body()
    with BackendProcess(
        "prelabel.testing.reference:ReferenceBackend", home=tmp_path / "home", env={"LOG_LEVEL": "WARNING"}
    ) as backend:
        latencies: list[float] = []
        with backend.http(timeout=300) as big_http, backend.http(timeout=60) as probe:
            answers = []
            request = threading.Thread(target=lambda: answers.append(big_http.post(path, json=body)))
            request.start()
            while request.is_alive():
                started = time.monotonic()
                assert probe.get("/health").status_code == 200
                latencies.append(time.monotonic() - started)
            request.join()
        assert latencies, f"no /health probe ran during the {path}"
        assert answers and answers[0].status_code < 500, answers and answers[0].text[:200]  # answered, or refused
        assert max(latencies) < 1.0, f"/health took {max(latencies):.1f} s during a {path} ({len(latencies)} probes)"


# -- credentials --------------------------------------------------------------------------------
def _jwt(exp: float) -> str:
    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'exp': exp, 'token_type': 'refresh'})}.c2ln"


def test_the_personal_access_token_does_not_follow_a_307_to_another_host():
    from prelabel import lsclient

    pat = _jwt(time.time() + 3600)
    other = RecordingServer(
        "127.0.0.2", lambda m, p, h, b, s: (200, JSON, json.dumps({"access": _jwt(time.time() + 300)}).encode())
    )
    ls = RecordingServer(
        "127.0.0.1",
        lambda m, p, h, b, s: (
            (307, {"location": other.url + "/api/token/refresh/"}, b"")
            if "token/refresh" in p
            else (200, JSON, json.dumps({"id": 1, "label_config": TEXT_CHOICES}).encode())
        ),
    )
    try:
        client = lsclient.connect(ls.url, pat)
        try:
            client.projects.get(id=1)
        except Exception:
            pass
        assert ls.requests, "the client never asked Label Studio"
        assert not any(pat in r["body"].decode() or pat in str(r["headers"]) for r in other.requests)
    finally:
        ls.close()
        other.close()


# -- image bombs under the pixel limit ----------------------------------------------------------
_DECODE_PEAK = """
import sys
from prelabel.imageio import ImageRejected, open_image
def rss(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) // 1024
data = open(sys.argv[1], "rb").read()
base = rss("VmRSS")
try:
    open_image(data)
except ImageRejected:
    print(0)
else:
    print(rss("VmHWM") - base)
"""


def test_a_small_webp_under_the_default_pixel_limit_does_not_cost_a_gigabyte(tmp_path):
    image = pytest.importorskip("PIL.Image", reason='needs Pillow: pip install "prelabel[vision]"')
    import io
    import subprocess
    import sys

    buf = io.BytesIO()
    image.new("RGB", (9000, 9000)).save(buf, "WEBP", quality=1)
    path = tmp_path / "bomb.webp"
    path.write_bytes(buf.getvalue())
    assert len(buf.getvalue()) < 200_000
    out = subprocess.run(
        [sys.executable, "-c", _DECODE_PEAK, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    peak_mb = int(out.stdout.strip())
    assert peak_mb < 800, f"decoding a {len(buf.getvalue()) // 1000} kB WebP took {peak_mb} MB"


# -- logs ---------------------------------------------------------------------------------------
def test_malformed_tasks_of_one_request_are_logged_once(served, caplog):
    import logging

    _, client = served
    with caplog.at_level(logging.ERROR, logger="prelabel.server"):
        resp = client.post(
            "/predict", json={"project": "1", "label_config": TEXT_CHOICES, "tasks": [{"id": i} for i in range(2000)]}
        )
    assert resp.status_code == 200
    assert len(per_task_results(resp.json())) == 2000
    lines = [r for r in caplog.records if r.name == "prelabel.server"]
    assert len(lines) <= 10, f"{len(lines)} log lines for one request"


def test_a_train_body_is_kept_beside_its_job_record_until_the_job_ran(tmp_path):
    from prelabel.jobs import JOB_TASKS_NS, JOBS_NS

    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    with serve_in_process(rt) as client:
        annotations = [
            {
                "id": i,
                "data": {"text": "great" if i % 2 else "awful"},
                "annotations": [
                    {
                        "result": [
                            {
                                "from_name": "sentiment",
                                "to_name": "text",
                                "type": "choices",
                                "value": {"choices": ["positive" if i % 2 else "negative"]},
                            }
                        ]
                    }
                ],
            }
            for i in range(40)
        ]
        resp = client.post("/train", json={"project": 1, "label_config": TEXT_CHOICES, "annotations": annotations})
        assert resp.status_code == 201, resp.text
        job_id = resp.json()["job"]
        record = rt.state.get(JOBS_NS, job_id)
        assert "tasks" not in record["params"], "the job record carries the body's tasks"
        shown = client.get(f"/jobs/{job_id}").json()
        assert shown["params"]["tasks"] == "40 annotated tasks from the /train body"
        from prelabel.testing.client import wait_job

        done = wait_job(client, job_id)
        assert done["status"] == "succeeded", done
        assert rt.state.get(JOB_TASKS_NS, job_id) is None, "the body's tasks outlived the job"


def test_a_train_body_item_that_is_not_a_task_is_refused(served):
    _, client = served
    resp = client.post("/train", json={"project": 1, "annotations": [{"data": {"text": "x"}}, 5]})
    assert resp.status_code == 422 and "annotations.1" in resp.json()["error"], resp.text
