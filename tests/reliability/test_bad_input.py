"""Bad input: every malformed request is a 4xx with a message (never a 500), one bad task
never sinks the others, and a schemathesis run over the OpenAPI spec finds no server error."""

import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from prelabel.server.app import create_app
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process
from prelabel.testing.configs import AUDIO_RATING, INVALID_XML, TEXT_CHOICES
from prelabel.testing.reference import ReferenceBackend

GOOD_TASK = {"id": 1, "data": {"text": "a positive day"}}
J = {"content-type": "application/json"}

# (method, path, raw body or JSON-able object, expected status range)
REQUEST_CASES = [
    ("POST", "/predict", b"", 400),
    ("POST", "/predict", b"{", 400),
    ("POST", "/predict", b'{"tasks": [}', 400),
    ("POST", "/predict", b'{"tasks": [1,]}', 400),
    ("POST", "/predict", b"\xff\xfe\x00garbage", 400),
    ("POST", "/predict", b"null", 422),
    ("POST", "/predict", b"[]", 422),
    ("POST", "/predict", b'"tasks"', 422),
    ("POST", "/predict", {}, 422),
    ("POST", "/predict", {"tasks": None}, 422),
    ("POST", "/predict", {"tasks": "x"}, 422),
    ("POST", "/predict", {"tasks": {}}, 422),
    ("POST", "/predict", {"tasks": []}, 422),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "label_config": 5}, 422),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "label_config": ""}, 400),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "label_config": INVALID_XML}, 400),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "label_config": "<View/>"}, 400),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "label_config": AUDIO_RATING}, 400),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "project": "99999.1"}, 400),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "project": ["1"], "label_config": TEXT_CHOICES}, 422),
    ("POST", "/predict", {"tasks": [GOOD_TASK], "params": "x", "label_config": TEXT_CHOICES}, 422),
    ("POST", "/setup", {}, 422),
    ("POST", "/setup", {"project": "1"}, 422),
    ("POST", "/setup", {"schema": "x"}, 422),
    ("POST", "/setup", {"project": "1", "schema": INVALID_XML}, 400),
    ("POST", "/setup", {"project": "1", "schema": AUDIO_RATING}, 400),
    ("POST", "/setup", {"project": {"id": 1}, "schema": TEXT_CHOICES}, 422),
    ("POST", "/setup", {"project": "1", "schema": ["<View/>"]}, 422),
    ("POST", "/setup", b"<xml/>", 400),
    ("POST", "/webhook", {}, 422),
    ("POST", "/webhook", {"action": 5}, 422),
    ("POST", "/webhook", b"[", 400),
    ("POST", "/webhook", {"action": "START_TRAINING", "project": "1"}, 422),
    ("POST", "/train", {}, 422),
    ("POST", "/train", {"project": "1", "annotations": "x"}, 422),
    ("POST", "/train", {"project": "1", "label_config": INVALID_XML}, 400),
    ("POST", "/jobs", {}, 422),
    ("POST", "/jobs", {"kind": "predict"}, 422),
    ("POST", "/jobs", {"kind": "nope", "project": 1}, 400),
    ("POST", "/jobs", {"kind": "train", "project": 1, "x": 1}, 422),
    ("POST", "/jobs", {"kind": "train", "project": 1, "params": []}, 422),
    ("GET", "/jobs/does-not-exist", None, 404),
    ("DELETE", "/jobs/does-not-exist", None, 404),
    ("GET", "/no/such/path", None, 404),
    ("GET", "/predict", None, 405),
    ("PUT", "/setup", None, 405),
    ("DELETE", "/health", None, 405),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    rt = make_runtime(ReferenceBackend, tmp_path_factory.mktemp("home"))
    with serve_in_process(rt) as c:
        c.post("/setup", json={"project": "1.1", "schema": TEXT_CHOICES})
        yield c


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    REQUEST_CASES,
    ids=[f"{m} {p} #{i}" for i, (m, p, _, _) in enumerate(REQUEST_CASES)],
)
def test_bad_request_is_a_clear_4xx(client, method, path, body, expected):
    if isinstance(body, bytes):
        resp = client.request(method, path, content=body, headers=J)
    elif body is None:
        resp = client.request(method, path)
    else:
        resp = client.request(method, path, content=json.dumps(body).encode(), headers=J)
    assert resp.status_code == expected, resp.text
    assert resp.json()["error"]


BAD_TASKS = [
    {"id": 2},
    {"id": 3, "data": None},
    {"id": 4, "data": "text"},
    {"id": 5, "data": ["a"]},
    {"id": "six", "data": {"text": "x"}},
    {"id": 7.5, "data": {"text": "x"}},
    {"id": True, "data": {"text": "x"}},
    {"id": 8, "data": {"other": "x"}},
    9,
    None,
    "task",
    [GOOD_TASK],
]


def test_every_bad_task_fails_alone(client, figures):
    tasks = [GOOD_TASK]
    for bad in BAD_TASKS:
        tasks += [bad, GOOD_TASK]
    resp = client.post("/predict", json={"tasks": tasks, "project": "1.1"})
    assert resp.status_code == 200, resp.text
    results = per_task_results(resp.json())
    assert len(results) == len(tasks)
    for i, item in enumerate(results):
        if i % 2 == 0:
            assert "error" not in item and item["result"], item
        else:
            assert item["result"] == [] and item["error"], (tasks[i], item)
    figures(
        f"{len(REQUEST_CASES)} bad requests (all 4xx with a message) and {len(BAD_TASKS)} bad tasks "
        f"(each isolated in a batch of {len(tasks)})"
    )


# -- schemathesis over the OpenAPI spec, on the app in-process ------------------------------
_home = tempfile.mkdtemp(prefix="prelabel-schemathesis-")
_runtime = make_runtime(ReferenceBackend, Path(_home))
_runtime.start()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_runtime, start_setup=False))
_seen: dict[str, Counter] = {}


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error(case, session_figures):
    response = case.call()
    _seen.setdefault(f"{case.method} {case.path}", Counter())[response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error])
    total = sum(sum(c.values()) for c in _seen.values())
    session_figures["schemathesis"] = (
        f"{total} generated requests over {len(_seen)} operations, statuses "
        f"{sorted({s for c in _seen.values() for s in c})}"
    )
