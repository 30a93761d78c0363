"""label-studio-ml models served by prelabel: instance lifecycle, versions, fit as a job,
get/set in prelabel's state, media through core, upstream response shapes."""

import contextlib
import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prelabel.compat import LabelStudioMLBase, ModelResponse, PredictionValue, adapt, load_model_file
from prelabel.testing import configs, make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.client import wait_job as client_wait_job

MODELS = Path(__file__).parent / "models"
SCAFFOLD = load_model_file(str(MODELS / "scaffold_model.py"))
SKLEARN = load_model_file(str(MODELS / "sklearn_text_classifier.py"))
NER = load_model_file(str(MODELS / "spacy_ner.py"))
TEXTS = [
    {"id": 1, "data": {"text": "a positive day"}},
    {"id": 2, "data": {"text": "so negative"}},
    {"id": 3, "data": {"text": "nothing"}},
]


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """serve(backend_class, home=...) -> (client, runtime); several may share one home, like
    processes sharing PRELABEL_HOME."""
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    with contextlib.ExitStack() as stack:

        def _serve(backend_class, home=None, **core):
            runtime = make_runtime(backend_class, home or tmp_path / "home", **core)
            stack.callback(runtime.close)
            return stack.enter_context(serve_in_process(runtime)), runtime

        yield _serve


class FakeLabelStudio:
    """Loopback HTTP server: GET routes -> (status, bytes); records request headers."""

    def __init__(self, routes: dict[str, tuple[int, bytes]]):
        self.routes = routes
        self.requests: list[tuple[str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append((self.path, dict(self.headers)))
                status, body = fake.routes.get(self.path.split("?")[0], (404, b"{}"))
                if fake.token and self.headers.get("Authorization") != f"Token {fake.token}":
                    status, body = 401, b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.token: str | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_ls():
    servers = []

    def _make(routes, token=None):
        server = FakeLabelStudio(routes)
        server.token = token
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.close()


def setup(client, project="1.1700000000", config=configs.TEXT_CHOICES, **extra):
    resp = client.post("/setup", json={"project": project, "schema": config, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()["model_version"]


def predict(client, tasks, project="1.1700000000", config=configs.TEXT_CHOICES, **params):
    resp = client.post(
        "/predict",
        json={
            "tasks": tasks,
            "project": project,
            "label_config": config,
            "params": {"login": None, "password": None, "context": None, **params},
        },
    )
    assert resp.status_code == 200, resp.text
    return per_task_results(resp.json())


wait_job = functools.partial(client_wait_job, timeout=30.0)


def webhook(client, action, project_id=1, config=configs.TEXT_CHOICES, **body):
    return client.post(
        "/webhook", json={"action": action, "project": {"id": project_id, "label_config": config}, **body}
    )


# -- predict ---------------------------------------------------------------------------------
def test_ner_predictions_one_per_task_with_the_setup_version(serve, caplog):
    client, _ = serve(NER)
    version = setup(client, config=configs.TEXT_NER)
    assert version == "0.0.1"  # the model's setup() sets none: upstream's initial version
    tasks = [
        {"id": 1, "data": {"text": "Ada Lovelace met Alan Turing in London."}},
        {"id": 2, "data": {"text": "Acme Corp opened an office in Paris in 1999."}},
        {"id": 3, "data": {"text": "nothing to see here"}},
    ]
    results = predict(client, tasks, config=configs.TEXT_NER)
    assert len(results) == 3
    # the model stamps its own version (SPACY_MODEL); Label Studio needs /setup's
    assert {r["model_version"] for r in results} == {version}
    assert "en_core_web_sm" in caplog.text and "model_version" in caplog.text
    spans = [
        [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in item["result"]] for item in results
    ]
    assert spans[0] == [(0, 12, "Person"), (17, 28, "Person"), (32, 38, "Location")]
    # ORG and GPE map through predicted_values; DATE is not a project label and is dropped
    assert spans[1] == [(0, 9, "Organization"), (30, 35, "Location")]
    assert spans[2] == []
    assert results[0]["score"] == 0.0  # PredictionValue's default score, as upstream stores it


def test_predict_gets_tasks_context_and_credentials_as_upstream(serve):
    seen = {}

    class Echo(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            seen.update(tasks=tasks, context=context, kwargs=kwargs)
            return [{"result": [], "score": 0.25} for _ in tasks]

    client, _ = serve(adapt(Echo))
    context = {
        "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}}]
    }
    task = {"id": 4, "data": {"text": "x"}, "annotations": [], "meta": {"k": 1}}
    results = predict(client, [task], login="dl_user", password="dl_pass", context=context)
    assert seen["tasks"] == [task]
    assert seen["context"] == context
    assert seen["kwargs"] == {"login": "dl_user", "password": "dl_pass"}
    assert results == [{"result": [], "score": 0.25, "model_version": "0.0.1"}]


@pytest.mark.parametrize("shape", ["response_of_lists", "dict_with_predictions", "bare_regions", "too_few"])
def test_upstream_response_shapes_become_one_prediction_per_task(serve, shape):
    region = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["neutral"]}}

    class Shapes(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            if shape == "response_of_lists":  # several predictions per task: the first is kept
                return ModelResponse(
                    predictions=[
                        [PredictionValue(result=[region], score=0.9), PredictionValue(result=[], score=0.1)]
                        for _ in tasks
                    ]
                )
            if shape == "dict_with_predictions":
                return {"predictions": [{"result": [region], "score": 0.9} for _ in tasks]}
            if shape == "bare_regions":
                return [[region] for _ in tasks]
            return [{"result": [region]}]

    client, _ = serve(adapt(Shapes))
    results = predict(client, TEXTS)
    assert len(results) == 3
    if shape == "too_few":  # Label Studio would store nothing; here only the missing tasks fail
        assert results[0]["result"] == [region] and "error" not in results[0]
        assert all("returned 1 results for 3 tasks" in r["error"] for r in results[1:])
        return
    assert all(r["result"] == [region] and "error" not in r for r in results)


def test_a_failing_predict_fails_only_its_tasks(serve):
    class Picky(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            if any("bad" in t["data"]["text"] for t in tasks):
                raise ValueError("cannot read bad text")
            return [{"result": []} for _ in tasks]

    client, _ = serve(adapt(Picky))
    results = predict(client, [TEXTS[0], {"id": 9, "data": {"text": "bad"}}, TEXTS[1]])
    assert ["error" in r for r in results] == [False, True, False]
    assert "cannot read bad text" in results[1]["error"]


# -- instance lifecycle ----------------------------------------------------------------------
def test_one_instance_per_project_and_setup_runs_once(serve, monkeypatch):
    calls = []
    original = SCAFFOLD.model_class.setup

    def counting_setup(self):
        calls.append(self.project_id)
        original(self)

    monkeypatch.setattr(SCAFFOLD.model_class, "setup", counting_setup)
    client, runtime = serve(SCAFFOLD)
    for project in ("1.1700000000", "2.1700000001"):
        for _ in range(2):
            assert setup(client, project) == "0.0.1"
            assert len(predict(client, TEXTS, project)) == 3
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}}).status_code == 200
    assert sorted(calls) == ["1", "2"]
    assert set(runtime.backend.instances()) == {"1", "2"}
    # a changed label config gets a new instance, built with the new config
    setup(client, "1.1700000000", configs.TEXT_CHOICES_MULTIPLE)
    assert sorted(calls) == ["1", "1", "2"]
    assert runtime.backend.instances()["1"].label_config == configs.TEXT_CHOICES_MULTIPLE


def test_a_config_without_controls_is_refused_before_any_instance(serve, monkeypatch):
    calls = []
    monkeypatch.setattr(SCAFFOLD.model_class, "setup", lambda self: calls.append(self.project_id))
    client, runtime = serve(SCAFFOLD)
    no_controls = '<View><Text name="text" value="$text"/></View>'
    resp = client.post("/setup", json={"project": "1.1", "schema": no_controls})
    assert resp.status_code == 400 and "no control tags" in resp.json()["error"]
    resp = client.post("/predict", json={"tasks": TEXTS, "project": "1.1", "label_config": no_controls})
    assert resp.status_code == 400
    assert calls == [] and runtime.backend.instances() == {}


# -- fit as a job ----------------------------------------------------------------------------
def test_fit_runs_as_a_job_not_in_the_webhook(serve, monkeypatch):
    release, running = threading.Event(), threading.Event()
    seen = {}
    original = SCAFFOLD.model_class.fit

    def slow_fit(self, event, data, **kwargs):
        seen.update(event=event, data=data, thread=threading.current_thread().name)
        running.set()
        assert release.wait(30)
        return original(self, event, data, **kwargs)

    monkeypatch.setattr(SCAFFOLD.model_class, "fit", slow_fit)
    client, _ = serve(SCAFFOLD)
    assert setup(client) == "0.0.1"
    project = {"id": 1, "label_config": configs.TEXT_CHOICES, "title": "p", "task_data_password": "s3cret"}
    started = time.perf_counter()
    resp = client.post("/webhook", json={"action": "START_TRAINING", "project": project})
    assert resp.status_code == 201, resp.text
    assert time.perf_counter() - started < 1.0
    assert running.wait(10)
    job_id = resp.json()["job"]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "running"
    assert setup(client) == "0.0.1"  # the old version serves until fit() finishes
    release.set()
    job = wait_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert seen["thread"].startswith("prelabel-train")
    assert seen["event"] == "START_TRAINING"
    assert seen["data"] == {"project": {**project, "task_data_password": None}}  # no secret kept in /jobs
    assert "s3cret" not in client.get("/jobs").text
    assert job["result"]["model_version"] == "0.1.0" and job["result"]["previous_model_version"] == "0.0.1"
    assert setup(client) == "0.1.0"
    assert {r["model_version"] for r in predict(client, TEXTS)} == {"0.1.0"}
    assert "0.1.0" in client.get("/versions").json()["versions"]


def test_annotation_events_call_fit_with_the_webhook_body(serve, monkeypatch):
    seen = []
    monkeypatch.setattr(SCAFFOLD.model_class, "fit", lambda self, event, data, **kw: seen.append((event, data)))
    client, _ = serve(SCAFFOLD)
    annotation = {"id": 5, "result": [], "project": 1, "task": 3}
    resp = webhook(client, "ANNOTATION_CREATED", annotation=annotation, task={"id": 3, "data": {"text": "x"}})
    assert resp.status_code == 201, resp.text
    assert wait_job(client, resp.json()["job"])["status"] == "succeeded"
    event, data = seen[0]
    assert event == "ANNOTATION_CREATED"
    assert data["annotation"] == annotation and data["task"]["id"] == 3 and data["project"]["id"] == 1
    assert "action" not in data
    # events outside the model's TRAIN_EVENTS queue nothing
    for action in ("PROJECT_UPDATED", "ANNOTATIONS_DELETED", "TASKS_CREATED"):
        resp = webhook(client, action)
        assert resp.status_code == 200 and "job" not in resp.json(), resp.text
    assert len(seen) == 1 and len(client.get("/jobs").json()["jobs"]) == 1


def test_untrainable_model_refuses_training(serve):
    client, _ = serve(NER)
    assert not NER.trainable
    resp = webhook(client, "START_TRAINING", config=configs.TEXT_NER)
    assert resp.status_code == 400 and "not trainable" in resp.json()["error"]
    assert webhook(client, "ANNOTATION_CREATED", config=configs.TEXT_NER).status_code == 200


# -- state -----------------------------------------------------------------------------------
def test_get_set_live_in_prelabel_state_and_processes_agree(serve, tmp_path):
    home = tmp_path / "shared-home"
    a, runtime_a = serve(SCAFFOLD, home=home)
    b, runtime_b = serve(SCAFFOLD, home=home)  # a second process on the same state
    assert setup(a) == setup(b) == "0.0.1"
    job = wait_job(a, webhook(a, "START_TRAINING").json()["job"])
    assert job["status"] == "succeeded", job
    assert runtime_a.state.get("label_studio_ml:1", "my_data") == "my_new_data_value"
    # the other process sees the new version and values at once: no per-process cache
    assert setup(b) == "0.1.0"
    assert runtime_b.backend.instances()["1"].get("my_data") == "my_new_data_value"
    assert {r["model_version"] for r in predict(b, TEXTS)} == {"0.1.0"}
    # a process started later runs setup(), which sets the fixed "0.0.1" again: fit's version stays
    c, _ = serve(SCAFFOLD, home=home)
    assert setup(c) == "0.1.0"
    assert setup(a) == "0.1.0"


def test_fit_runs_on_a_worker_and_state_is_in_redis(serve, redis_url, tmp_path):
    """With REDIS_URL, the train job waits in the RQ queue for `prelabel worker model.py`."""
    from prelabel.jobs.rq import work

    client, server = serve(SCAFFOLD, home=tmp_path / "server", redis_url=redis_url)
    assert setup(client) == "0.0.1"
    job_id = webhook(client, "START_TRAINING").json()["job"]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "queued"  # the server does not run it
    worker = make_runtime(SCAFFOLD, tmp_path / "worker", redis_url=redis_url)
    try:
        worker.start()
        work(worker, burst=True)
        assert set(worker.backend.instances()) == {"1"}  # fit() ran on the worker's instance
    finally:
        worker.close()
    assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
    assert setup(client) == "0.1.0"
    assert server.state.get("label_studio_ml:1", "my_data") == "my_new_data_value"
    assert not (tmp_path / "server" / "state.sqlite3").exists()


def test_a_changed_version_in_setup_wins(serve, tmp_path, monkeypatch):
    home = tmp_path / "home2"
    a, _ = serve(SCAFFOLD, home=home)
    setup(a)
    assert wait_job(a, webhook(a, "START_TRAINING").json()["job"])["status"] == "succeeded"
    assert setup(a) == "0.1.0"
    # new code: setup() now sets another version; a new process must serve it
    monkeypatch.setattr(SCAFFOLD.model_class, "setup", lambda self: self.set("model_version", "1.0.0"))
    b, _ = serve(SCAFFOLD, home=home)
    assert setup(b) == "1.0.0"


# -- the text classifier: training data from the legacy /train call or Label Studio -------------
def _annotated(tid, text, label):
    return {
        "id": tid,
        "data": {"text": text},
        "annotations": [
            {
                "id": tid,
                "result": [
                    {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                ],
            }
        ],
    }


TRAINING = [
    _annotated(1, "great wonderful film", "positive"),
    _annotated(2, "awful boring film", "negative"),
    _annotated(3, "it is a film", "neutral"),
]


def _choices(results):
    return [r["result"][0]["value"]["choices"][0] for r in results]


def test_text_classifier_trains_from_the_legacy_train_call(serve, tmp_path):
    client, _ = serve(SKLEARN)
    running, _ = serve(SKLEARN)  # another process, already serving the untrained model
    assert setup(client) == "SklearnTextClassifier-v0.0.1"
    tasks = [{"id": 1, "data": {"text": "wonderful"}}, {"id": 2, "data": {"text": "boring"}}]
    assert _choices(predict(running, tasks)) != ["positive", "negative"]
    resp = client.post("/train", json={"annotations": TRAINING, "project": "1.1700000000"})
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "succeeded", job
    assert job["result"]["fit_result"] == {"train_examples": 3}
    assert setup(client) == "SklearnTextClassifier-v0.1.0"
    assert _choices(predict(client, tasks)) == ["positive", "negative"]
    assert (tmp_path / "model-1.pkl").is_file()  # written to MODEL_DIR
    # the other process sees the new version and reloads the pickled model; so does a new one
    for other in (running, serve(SKLEARN)[0]):
        results = predict(other, tasks)
        assert _choices(results) == ["positive", "negative"]
        assert {r["model_version"] for r in results} == {"SklearnTextClassifier-v0.1.0"}


def test_text_classifier_fetches_annotations_from_label_studio(serve, fake_ls, monkeypatch):
    ls = fake_ls({"/api/projects/1/export": (200, json.dumps(TRAINING).encode())}, token="k" * 40)
    monkeypatch.setenv("LABEL_STUDIO_HOST", ls.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k" * 40)
    client, _ = serve(SKLEARN)
    setup(client)
    # an annotation event: 3 annotated tasks is not a multiple of 10, so fit() skips training
    resp = webhook(client, "ANNOTATION_CREATED", annotation={"id": 9, "project": 1, "result": []})
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "succeeded" and job["result"]["fit_result"] is None
    assert setup(client) == "SklearnTextClassifier-v0.0.1"
    # START_TRAINING: data is {"project": {...}}; fit() reads its id and asks Label Studio
    job = wait_job(client, webhook(client, "START_TRAINING").json()["job"])
    assert job["status"] == "succeeded", job
    assert len(ls.requests) == 2 and ls.requests[-1][0].startswith("/api/projects/1/export")
    assert setup(client) == "SklearnTextClassifier-v0.1.0"
    assert _choices(predict(client, [{"id": 5, "data": {"text": "awful"}}])) == ["negative"]


def test_fit_that_keeps_the_version_is_flagged(serve):
    class Stubborn(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            return [{"result": []} for _ in tasks]

        def fit(self, event, data, **kwargs):
            return {"examples": 0}

    client, _ = serve(adapt(Stubborn))
    setup(client)
    job = wait_job(client, webhook(client, "START_TRAINING").json()["job"])
    assert job["status"] == "succeeded"
    assert "bump_model_version" in job["result"]["warning"]


def test_a_failing_fit_is_a_failed_job_and_keeps_the_version(serve):
    class Broken(LabelStudioMLBase):
        def fit(self, event, data, **kwargs):
            self.set("model_version", "0.2.0")
            raise RuntimeError("out of memory")

    client, _ = serve(adapt(Broken))
    setup(client)
    job = wait_job(client, webhook(client, "START_TRAINING").json()["job"])
    assert job["status"] == "failed" and "out of memory" in job["error"]
    assert setup(client) == "0.0.1"


# -- media -----------------------------------------------------------------------------------
def test_get_local_path_downloads_with_the_projects_label_studio_token(serve, fake_ls):
    ls = fake_ls({"/data/upload/1/note.txt": (200, b"hello from label studio")}, token="t" * 40)

    class Reader(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            out = []
            for task in tasks:
                data = self.preload_task_data(task, dict(task["data"]))  # reads the file behind the URL
                out.append(
                    {
                        "result": [
                            {
                                "from_name": "answer",
                                "to_name": "text",
                                "type": "textarea",
                                "value": {"text": [data["text"]]},
                            }
                        ]
                    }
                )
            return out

    client, _ = serve(adapt(Reader))
    setup(
        client,
        config=configs.TEXT_TEXTAREA.replace('name="label"', 'name="answer"'),
        hostname=ls.url,
        access_token="t" * 40,
    )
    results = predict(
        client,
        [{"id": 1, "data": {"text": "/data/upload/1/note.txt"}}],
        config=configs.TEXT_TEXTAREA.replace('name="label"', 'name="answer"'),
    )
    assert results[0]["result"][0]["value"]["text"] == ["hello from label studio"]
    assert ls.requests[0][1]["Authorization"] == "Token " + "t" * 40
