"""Requests that used to be 500s or to poison shared state (issue 15, server side): each is
refused at the request boundary with a 4xx that names the problem, and creates nothing."""

import json
import logging

import pytest

from prelabel.jobs import Job
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.reference import ReferenceBackend

J = {"content-type": "application/json"}
SURROGATE = '"1\\ud800"'  # a JSON string holding a lone surrogate, as an attacker can send it


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def nested_json(depth: int) -> str:
    return '{"x": ' * depth + "{}" + "}" * depth


@pytest.fixture
def client(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    with serve_in_process(rt) as c:
        assert c.post("/setup", json={"project": "1.1", "schema": TEXT_CHOICES}).status_code == 200
        yield c


def jobs_in_store(client) -> int:
    return len(client.app.state.runtime.jobs.list())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/setup", '{"project": ' + SURROGATE + ', "schema": ' + json.dumps(TEXT_CHOICES) + "}"),
        ("/predict", '{"project": ' + SURROGATE + ', "tasks": [{"id": 1, "data": {"text": "x"}}]}'),
        ("/webhook", '{"action": "START_TRAINING", "project": {"id": ' + SURROGATE + "}}"),
        ("/jobs", '{"kind": "train", "project": ' + SURROGATE + "}"),
        ("/train", '{"project": "1", "annotations": [{"data": {"text": ' + SURROGATE + "}}]}"),
    ],
)
def test_lone_surrogate_is_refused_at_the_boundary(client, path, body):
    resp = client.post(path, content=body.encode(), headers=J)
    assert resp.status_code == 400, resp.text
    assert "surrogate" in resp.json()["error"]
    assert jobs_in_store(client) == 0


@pytest.mark.parametrize("key", ["1\x00", "x" * 300, "1\n2"])
def test_unprintable_or_huge_project_id_is_refused(client, key):
    for path, body in (
        ("/setup", {"project": key, "schema": TEXT_CHOICES}),
        ("/predict", {"project": key, "tasks": [{"id": 1, "data": {"text": "x"}}]}),
        ("/jobs", {"kind": "train", "project": key}),
    ):
        resp = client.post(path, json=body)
        assert resp.status_code == 422 and "project id" in resp.json()["error"], (path, resp.text)


@pytest.mark.parametrize(
    "params",
    ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', nested_json(300), nested_json(900), nested_json(2000)],
)
def test_job_params_that_cannot_be_stored_create_nothing(client, params):
    body = '{"kind": "train", "project": 1, "params": ' + params + "}"
    resp = client.post("/jobs", content=body.encode(), headers=J)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]
    assert jobs_in_store(client) == 0
    assert client.get("/jobs").status_code == 200


def test_reserved_job_params_are_refused(client):
    resp = client.post("/jobs", json={"kind": "train", "project": 1, "params": {"_lock": "label_config"}})
    assert resp.status_code == 422 and "reserved" in resp.json()["error"]
    assert jobs_in_store(client) == 0


def test_one_bad_stored_job_does_not_hide_the_others(client):
    runtime = client.app.state.runtime
    good = client.post("/jobs", json={"kind": "train", "project": 1}).json()
    # records as an older version could write them: params too deep to render, a lone surrogate
    runtime.jobs.save(Job(id="deep", kind="train", project="1", params=nested(400)))
    runtime.jobs.save(Job(id="surrogate", kind="train", project="1", params={"note": [{"text": "\ud800"}]}))
    resp = client.get("/jobs")
    assert resp.status_code == 200, resp.text
    jobs = {j["id"]: j for j in resp.json()["jobs"]}
    assert set(jobs) == {good["id"], "deep", "surrogate"}
    assert "cannot be shown" in jobs["deep"]["error"] and "cannot be shown" in jobs["surrogate"]["error"]
    assert jobs[good["id"]]["params"] == {}
    assert client.get("/jobs/deep").status_code == 200
    assert client.get("/jobs", params={"project": "1"}).status_code == 200


@pytest.mark.parametrize("label_config", [{"a": 1}, ["<View/>"], 5, True])
def test_webhook_label_config_must_be_a_string(client, label_config):
    project = {"id": 1, "label_config": label_config}
    resp = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": project})
    assert resp.status_code == 422, resp.text
    assert "label_config must be a string" in resp.json()["error"]


@pytest.mark.parametrize("pid", [{"a": 1}, [1], 1.5])
def test_webhook_project_id_must_be_an_id(client, pid):
    resp = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    assert resp.status_code == 422 and "project.id" in resp.json()["error"]
    assert jobs_in_store(client) == 0


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_metric_labels_come_from_bounded_sets(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home", basic_auth_user="u", basic_auth_pass="p")
    auth = ("u", "p")
    with serve_in_process(rt) as c:
        for i in range(200):
            c.request(f"BREW{i}", "/predict")  # refused with 401: no credentials
            c.request(f"BREW{i}", f"/made/up/{i}", auth=auth)
            c.post("/webhook", json={"action": f"MADE_UP_{i}", "project": {"id": 1}}, auth=auth)
        text = c.get("/metrics", auth=auth).text
    requests = series(text, "prelabel_requests_total")
    assert not any("BREW" in line or "made" in line for line in requests)
    assert len(requests) <= 6, requests
    webhooks = series(text, "prelabel_webhooks_total")
    assert webhooks == ['prelabel_webhooks_total{action="other"} 200.0'], webhooks


def test_malformed_tasks_are_logged_once_per_request(client, caplog):
    tasks = [{"id": i} for i in range(2000)] + [{"id": 5000, "data": {"text": "positive"}}]
    with caplog.at_level(logging.INFO):
        resp = client.post("/predict", json={"tasks": tasks, "project": "1.1"})
    assert resp.status_code == 200
    results = per_task_results(resp.json())
    assert len(results) == 2001 and all(r["error"] for r in results[:2000]) and results[2000]["result"]
    lines = [r for r in caplog.records if r.name.startswith("prelabel") and r.name != "prelabel.access"]
    assert len(lines) == 1, [r.getMessage()[:100] for r in lines]
    assert "2000 of 2001 tasks are malformed" in lines[0].getMessage()


def test_failing_tasks_are_logged_in_a_few_lines(client, caplog):
    tasks = [{"id": i, "data": {"other": "x"}} for i in range(1000)]  # no "text" key: each task fails
    with caplog.at_level(logging.INFO):
        resp = client.post("/predict", json={"tasks": tasks, "project": "1.1"})
    assert resp.status_code == 200 and all("no data key" in r["error"] for r in per_task_results(resp.json()))
    lines = [r for r in caplog.records if r.name.startswith("prelabel") and r.name != "prelabel.access"]
    assert len(lines) <= 6, len(lines)
    assert "1000 of 1000 tasks failed" in lines[-1].getMessage()


class CountingState:
    """Wraps the state store and counts the calls that reach it."""

    def __init__(self, store):
        self.store = store
        self.calls = 0

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if callable(attr):

            def counted(*args, **kwargs):
                self.calls += 1
                return attr(*args, **kwargs)

            return counted
        return attr


def test_health_does_not_walk_every_project(client):
    runtime = client.app.state.runtime
    for i in range(300):  # forged project ids, each stored by /setup
        assert client.post("/setup", json={"project": f"{1000 + i}.1", "schema": TEXT_CHOICES}).status_code == 200
    counting = CountingState(runtime.state)
    runtime.state = counting
    try:
        health = client.get("/health").json()
        assert health["status"] == "UP" and health["trained_projects"] == []
        assert counting.calls <= 2, counting.calls
    finally:
        runtime.state = counting.store


def test_trained_projects_index_is_built_for_an_older_store(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    (tmp_path / "m").mkdir()
    st = rt.project_state("7")
    st.set("model_version", "reference-old")  # as promotion wrote it before the index existed
    st.set("model_dir", str(tmp_path / "m"))
    with serve_in_process(rt) as c:
        assert c.get("/health").json()["trained_projects"] == ["7"]


def _big_body() -> bytes:
    """Over COOPERATIVE_BODY_BYTES: well-formed tasks with a bulky meta, malformed ones of each
    kind, and tasks without the data key the config reads."""
    tasks: list = []
    for i in range(6000):
        kind = i % 7
        if kind == 1:
            tasks.append({"id": i})  # no data
        elif kind == 2:
            tasks.append({"id": f"t{i}", "data": {"text": "positive"}})  # a string id
        elif kind == 3:
            tasks.append({"id": i, "data": "positive"})  # data not an object
        elif kind == 4:
            tasks.append(i)  # not an object
        elif kind == 5:
            tasks.append({"id": i, "data": {"other": "x"}})  # no "text" key
        else:
            tasks.append({"id": i, "data": {"text": "positive" if i % 2 else "negative"}, "meta": {"pad": "x" * 600}})
    return json.dumps({"tasks": tasks, "project": "1.1"}).encode()


def test_a_big_body_is_answered_as_a_small_one_would_be(client, caplog, monkeypatch):
    from prelabel.server import predict_endpoint as server_app

    body = _big_body()
    assert len(body) > server_app.COOPERATIVE_BODY_BYTES
    with caplog.at_level(logging.ERROR, logger="prelabel.server"):
        big = client.post("/predict", content=body, headers=J)
    bad_lines = [r.getMessage() for r in caplog.records if "tasks are malformed" in r.getMessage()]
    monkeypatch.setattr(server_app, "COOPERATIVE_BODY_BYTES", 1 << 30)  # the one-call parse
    monkeypatch.setattr(server_app, "SLICE", 1 << 30)  # and the one-call answer
    whole = client.post("/predict", content=body, headers=J)
    assert big.status_code == whole.status_code == 200

    def without_region_ids(answer: dict) -> list:  # region ids are random
        results = per_task_results(answer)
        for item in results:
            for region in item["result"]:
                region.pop("id")
        return results

    assert without_region_ids(big.json()) == without_region_ids(whole.json())
    results = per_task_results(big.json())
    assert len(results) == 6000
    assert "is malformed" in results[1]["error"] and "is malformed" in results[4]["error"]
    assert "no data key" in results[5]["error"] and results[6]["result"] and "error" not in results[6]
    malformed = sum(i % 7 in (1, 2, 3, 4) for i in range(6000))
    assert len(bad_lines) == 1 and f"{malformed} of 6000 tasks are malformed" in bad_lines[0], bad_lines


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"tasks": 5, "pad": "' + b"x" * (2 << 20) + b'"}', 422, "tasks: must be a list of tasks, got a number"),
        (b'{"pad": "' + b"x" * (2 << 20) + b'"}', 422, "tasks: field required"),
        (b'{"tasks": [], "pad": "' + b"x" * (2 << 20) + b'"}', 422, "tasks: must be a non-empty list of tasks"),
        (
            b'{"tasks": [{"id": 1, "data": {}}], "params": 3, "pad": "' + b"x" * (2 << 20) + b'"}',
            422,
            "params: must be an object",
        ),
        (b'{"tasks": [{"id": 1, "data": {"text": "' + b"x" * (2 << 20) + b'"}', 400, "malformed JSON body"),
    ],
)
def test_a_big_body_that_is_wrong_says_what_is_wrong(client, body, status, message):
    resp = client.post("/predict", content=body, headers=J)
    assert resp.status_code == status and message in resp.json()["error"], resp.text[:300]


def test_a_big_body_task_keeps_its_whole_dict():
    import asyncio

    from prelabel.server.predict_endpoint import PredictEndpoint

    body, _ = asyncio.run(PredictEndpoint._parse_cooperatively(None, _big_body()))
    first = body["tasks"][0]
    assert first.id == 0 and first.data == {"text": "negative"}
    assert first.raw["meta"] == {"pad": "x" * 600} and first.raw["data"] is first.data
