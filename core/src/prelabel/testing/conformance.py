"""The conformance suite every plugin subclasses.

    class TestConformance(BackendConformanceTests):
        backend_class = MyBackend
        label_config = configs.IMAGE_RECTANGLES
        tasks = [{"id": 1, "data": {"image": data_uri(png_bytes())}}]

Each test's docstring says what to fix when it fails. Tests are written for both sides of a
capability (a trainable backend must train; an untrainable one must refuse training clearly),
so nothing is skipped. Overriding or deleting a standard test fails
``test_standard_tests_are_all_present`` unless the override is marked
``@pytest.mark.xfail(reason=...)``.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from prelabel.backend import Backend, capabilities_of, check_declaration
from prelabel.labelconfig import parse_label_config
from prelabel.testing import configs
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process, wait_job

HEAVY_MODULES = ("torch", "paddle", "ultralytics", "tensorflow", "transformers", "sam2")


class BackendConformanceTests:
    """Protocol and lifecycle tests for one backend class."""

    backend_class: ClassVar[type[Backend]]
    label_config: ClassVar[str] = configs.TEXT_CHOICES
    tasks: ClassVar[list[dict]] = [
        {"id": 1, "data": {"text": "a positive and happy day"}},
        {"id": 2, "data": {"text": "a negative and sad day"}},
        {"id": 3, "data": {"text": "nothing to say"}},
    ]
    settings: ClassVar[dict[str, Any]] = {}
    core_settings: ClassVar[dict[str, Any]] = {}
    # Annotated tasks (export format) for the training test of a trainable backend.
    training_tasks: ClassVar[list[dict]] = []
    unsupported_config: ClassVar[str] = configs.AUDIO_RATING
    project: ClassVar[str] = "7.1700000000"
    ready_timeout: ClassVar[float] = 300.0
    # how ``prelabel serve`` names this backend, when not by its backend_id (an installed
    # plugin package's entry point): ``pkg.module:Class``, or a label-studio-ml ``model.py``
    serve_as: ClassVar[str | None] = None

    # -- fixtures ---------------------------------------------------------------------------
    @pytest.fixture
    def runtime(self, tmp_path: Path):
        rt = make_runtime(self.backend_class, tmp_path / "home", self.settings, **self.core_settings)
        yield rt
        rt.close()

    @pytest.fixture
    def client(self, runtime):
        with serve_in_process(runtime, wait_ready=self.ready_timeout) as c:
            yield c

    def _setup(self, client) -> str:
        resp = client.post(
            "/setup",
            json={
                "project": self.project,
                "schema": self.label_config,
                "hostname": "http://127.0.0.1:9",
                "access_token": "x" * 40,
            },
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["model_version"]

    def _predict(self, client, tasks: list[dict], context: dict | None = None):
        return client.post(
            "/predict",
            json={
                "tasks": tasks,
                "project": self.project,
                "label_config": self.label_config,
                "params": {"login": None, "password": None, "context": context},
            },
        )

    # -- declaration ------------------------------------------------------------------------
    def test_declaration_is_valid(self):
        """backend_id, supports (control tag -> object tags), max_batch_size and, when
        trainable, fit() must be declared: the TypeError names what is missing."""
        check_declaration(self.backend_class)
        caps = capabilities_of(self.backend_class)
        assert caps["backend_id"] == self.backend_class.backend_id

    def test_import_is_light(self):
        """Importing the plugin must not import torch/paddle/ultralytics: move heavy imports
        into setup() or predict(), so `prelabel plugins` stays fast and robust."""
        module = self.backend_class.__module__
        code = f"import sys, {module}; print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "", f"importing {module} imported {out.stdout.strip()}"

    def test_entry_point_is_installed(self):
        """`prelabel serve <backend_id>` must find this class: declare it in pyproject.toml
        under ``[project.entry-points.prelabel]`` (a module with a ``prelabel_backends``
        hookimpl returning it) and reinstall the package (``pip install -e .``). A backend
        served otherwise names how in ``serve_as``, and must resolve by that."""
        from prelabel.plugins import load_backend_class

        cls = self.backend_class
        found = load_backend_class(self.serve_as or cls.backend_id)
        assert (found.__module__, found.__qualname__, found.backend_id) == (
            cls.__module__,
            cls.__qualname__,
            cls.backend_id,
        ), f"{self.serve_as or cls.backend_id!r} is {found}"

    def test_unknown_settings_are_refused(self):
        """A misspelt setting must fail loudly, not be ignored: keep ``extra="forbid"`` in the
        Settings class's model_config (BackendSettings has it; do not override it)."""
        import pydantic

        with pytest.raises(pydantic.ValidationError, match="no_such_setting"):
            self.backend_class.Settings(no_such_setting=1, **self.settings)

    def test_config_is_supported(self):
        """The suite's label_config must contain a control this backend supports."""
        config = parse_label_config(self.label_config)
        backend = self.backend_class.__new__(self.backend_class)
        assert backend.supported_controls(config), f"{config.describe()} is not supported"

    # -- health and setup -------------------------------------------------------------------
    def test_health_loading_then_up(self, runtime):
        """/health is 503 LOADING until setup() finished, then 200 UP with the version."""
        from fastapi.testclient import TestClient

        from prelabel.server.app import create_app

        with TestClient(create_app(runtime, start_setup=False)) as c:
            resp = c.get("/health")
            assert resp.status_code == 503 and resp.json()["status"] == "LOADING"
            early = c.post("/predict", json={"tasks": self.tasks[:1], "label_config": self.label_config})
            assert early.status_code == 503 and early.headers["retry-after"]
            runtime.start()
            resp = c.get("/health")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["status"] == "UP"
            assert body["plugin"] == self.backend_class.backend_id
            assert body["model_version"]

    def test_setup_returns_model_version(self, client):
        """/setup must return {"model_version": ...} for a supported config."""
        assert isinstance(self._setup(client), str)

    def test_setup_refuses_unsupported_config(self, client):
        """A config with no supported control is a 400 naming what the backend supports."""
        resp = client.post("/setup", json={"project": self.project, "schema": self.unsupported_config})
        assert resp.status_code == 400
        message = resp.json()["error"]
        assert self.backend_class.backend_id in message
        assert any(tag in message for tag in self.backend_class.supports)
        assert parse_label_config(self.unsupported_config).controls[0].tag in message

    def test_setup_refuses_invalid_xml(self, client):
        """A label config that is not XML is a 400 naming the label config: core parses it;
        a backend that parses configs itself in setup() must raise LabelConfigError too."""
        resp = client.post("/setup", json={"project": self.project, "schema": configs.INVALID_XML})
        assert resp.status_code == 400
        assert "label config" in resp.json()["error"]

    # -- predict ----------------------------------------------------------------------------
    def test_predict_one_result_per_task_in_order(self, client):
        """Exactly one result per task, in order, each carrying /setup's model_version and
        valid against the label config; otherwise Label Studio stores nothing."""
        version = self._setup(client)
        resp = self._predict(client, self.tasks)
        assert resp.status_code == 200, resp.text
        results = per_task_results(resp.json())
        assert len(results) == len(self.tasks)
        config = parse_label_config(self.label_config)
        for item in results:
            assert item["model_version"] == version
            assert isinstance(item["result"], list)
            assert "error" not in item, item["error"]
            if item["result"]:
                ok, errors = True, config.interface.validate_prediction(item, return_errors=True)
                assert not errors, errors
                assert ok

    def test_predict_batched_equals_one_by_one(self, client):
        """A task's result must not depend on the other tasks of its request: Label Studio
        sends whatever tasks the user selected together. Predict each input on its own,
        never from the batch as a whole (one model call per image size where the model pads
        a batch to one shape). Region ids and float noise (3 decimals) aside."""
        self._setup(client)
        together = per_task_results(self._predict(client, self.tasks).json())
        alone = [per_task_results(self._predict(client, [task]).json())[0] for task in self.tasks]
        assert [_comparable(r) for r in together] == [_comparable(r) for r in alone]

    def test_predict_isolates_a_task_missing_its_data(self, client):
        """A task without the data key the config reads gets an empty result with an error;
        the other tasks are predicted as usual."""
        self._setup(client)
        bad = {"id": 999, "data": {"no_such_key": "x"}}
        tasks = [self.tasks[0], bad, self.tasks[-1]]
        resp = self._predict(client, tasks)
        assert resp.status_code == 200, resp.text
        results = per_task_results(resp.json())
        assert len(results) == 3
        assert results[1]["result"] == [] and "no data key" in results[1]["error"]
        assert "error" not in results[0] and "error" not in results[2]

    def test_predict_isolates_a_malformed_task(self, client):
        """A task that is not a task (no data object) fails alone."""
        resp = self._predict(client, [self.tasks[0], {"id": 5}, 7, {"id": "x", "data": {}}, {"data": [1]}])
        assert resp.status_code == 200, resp.text
        results = per_task_results(resp.json())
        assert len(results) == 5
        assert "error" not in results[0]
        for item in results[1:]:
            assert item["result"] == [] and "malformed" in item["error"]

    def test_predict_interactive_body(self, client):
        """The interactive body (one task, params.context) returns one result."""
        self._setup(client)
        context = {"result": []}
        resp = self._predict(client, self.tasks[:1], context=context)
        assert resp.status_code == 200, resp.text
        assert len(per_task_results(resp.json())) == 1

    def test_predict_bad_bodies_are_4xx(self, client):
        """Malformed JSON, wrong types and empty task lists are 4xx with a message, never 500."""
        cases = [
            client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}),
            client.post("/predict", json={"tasks": "nope"}),
            client.post("/predict", json={"tasks": []}),
            client.post("/predict", json=[{"id": 1}]),
            client.post("/predict", json={"tasks": self.tasks[:1], "label_config": configs.INVALID_XML}),
            client.post("/predict", json={"tasks": self.tasks[:1], "label_config": self.unsupported_config}),
        ]
        for resp in cases:
            assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
            assert resp.json()["error"]

    def test_predict_without_config_for_unknown_project(self, client):
        """No label_config and a project /setup never saw: a 400 that says to connect it,
        unless the backend declares a default_label_config."""
        resp = client.post("/predict", json={"tasks": self.tasks[:1], "project": "424242.1"})
        if self.backend_class.default_label_config:
            assert resp.status_code == 200, resp.text
        else:
            assert resp.status_code == 400
            assert "label config" in resp.json()["error"]

    def test_predict_uses_config_stored_by_setup(self, client):
        """After /setup, /predict without label_config uses the stored config."""
        self._setup(client)
        resp = client.post("/predict", json={"tasks": self.tasks[:1], "project": self.project})
        assert resp.status_code == 200, resp.text
        assert len(per_task_results(resp.json())) == 1

    # -- webhook, training, versions --------------------------------------------------------
    def test_webhook_answers_within_label_studios_timeout(self, client):
        """Label Studio waits 1 s for a webhook: record the event, never train in the request."""
        project = {"id": int(self.project.split(".")[0]), "label_config": self.label_config}
        started = time.perf_counter()
        resp = client.post(
            "/webhook",
            json={
                "action": "ANNOTATION_CREATED",
                "project": project,
                "annotation": {"id": 1, "result": []},
                "task": self.tasks[0],
            },
        )
        assert resp.status_code < 300, resp.text
        assert time.perf_counter() - started < 1.0
        assert client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": project}).status_code == 200

    def test_webhook_bad_bodies_are_4xx(self, client):
        """A webhook without an action, or not JSON, is a 4xx: core answers it; a plugin's
        train_on_event must not raise on an event it does not know (return None)."""
        for resp in (
            client.post("/webhook", json={"project": {"id": 1}}),
            client.post("/webhook", content=b"[", headers={"content-type": "application/json"}),
        ):
            assert 400 <= resp.status_code < 500, resp.text

    def test_training(self, client):
        """Trainable: START_TRAINING queues a job that promotes a new version, which /setup
        and /predict then report. Not trainable: START_TRAINING is a 400 saying so."""
        project = {"id": int(self.project.split(".")[0]), "label_config": self.label_config}
        before = self._setup(client)
        if not self.backend_class.trainable:
            resp = client.post("/webhook", json={"action": "START_TRAINING", "project": project})
            assert resp.status_code == 400 and "not trainable" in resp.json()["error"]
            return
        assert self.training_tasks, "set training_tasks (annotated tasks) for a trainable backend"
        resp = client.post(
            "/train",
            json={"annotations": self.training_tasks, "project": self.project, "label_config": self.label_config},
        )
        assert resp.status_code == 201, resp.text
        job = wait_job(client, resp.json()["job"])
        assert job["status"] == "succeeded", job
        after = self._setup(client)
        assert after != before and after == job["result"]["model_version"]
        assert after in client.get("/versions").json()["versions"]
        results = per_task_results(self._predict(client, self.tasks).json())
        assert all(r["model_version"] == after for r in results)

    def test_versions(self, client):
        """GET /versions lists the version /setup reported (Label Studio shows that list)."""
        version = self._setup(client)
        assert version in client.get("/versions").json()["versions"]

    def test_jobs_endpoints(self, client):
        """/jobs lists nothing at first, an unknown job is a 404 and an unknown kind a 400
        naming the known ones: do not shadow /jobs in add_routes; add kinds through core."""
        assert client.get("/jobs").json() == {"jobs": []}
        assert client.get("/jobs/nope").status_code == 404
        assert client.post("/jobs", json={"kind": "no-such-kind", "project": 1}).status_code == 400

    # -- cross-cutting ----------------------------------------------------------------------
    def test_metrics(self, client):
        """/metrics counts requests and predicted tasks: return one entry per task from
        predict (core counts them), and register extra metrics on ``metrics.registry``."""
        self._setup(client)
        self._predict(client, self.tasks)
        text = client.get("/metrics").text
        assert "prelabel_requests_total" in text
        assert f"prelabel_tasks_total {float(len(self.tasks))}" in text

    def test_request_id_is_echoed(self, client):
        """Every response carries X-Request-ID (an incoming one honoured), as core's
        middleware sets it: do not wrap the app or answer outside it."""
        resp = client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert resp.headers["x-request-id"] == "abc-123"
        assert len(client.get("/health").headers["x-request-id"]) >= 16

    def test_basic_auth_on_every_endpoint(self, tmp_path):
        """With BASIC_AUTH_USER/PASS set, every endpoint refuses requests without them."""
        rt = make_runtime(
            self.backend_class,
            tmp_path / "auth",
            self.settings,
            **{**self.core_settings, "basic_auth_user": "ml", "basic_auth_pass": "secret"},
        )
        good = {"Authorization": "Basic " + base64.b64encode(b"ml:secret").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"ml:wrong").decode()}
        with serve_in_process(rt, wait_ready=self.ready_timeout) as c:
            for method, path in [
                ("GET", "/health"),
                ("POST", "/setup"),
                ("POST", "/predict"),
                ("POST", "/webhook"),
                ("POST", "/train"),
                ("GET", "/versions"),
                ("GET", "/jobs"),
                ("GET", "/metrics"),
                ("GET", "/openapi.json"),
            ]:
                assert c.request(method, path).status_code == 401, path
                assert c.request(method, path, headers=bad).status_code == 401, path
            assert c.get("/health", headers=good).status_code == 200
            resp = c.post("/setup", headers=good, json={"project": self.project, "schema": self.label_config})
            assert resp.status_code == 200
        rt.close()

    def test_openapi_is_served(self, client):
        """/openapi.json documents the protocol's endpoints: routes from add_routes must not
        replace core's paths."""
        paths = client.get("/openapi.json").json()["paths"]
        for path in ("/health", "/setup", "/predict", "/webhook", "/versions", "/jobs"):
            assert path in paths

    def test_standard_tests_are_all_present(self):
        """A subclass may only replace a standard test with an xfail(reason=...) override."""
        problems = []
        for name, original in STANDARD_TESTS.items():
            current = getattr(type(self), name, None)
            if current is original:
                continue
            marks = getattr(current, "pytestmark", [])
            if any(m.name == "xfail" and m.kwargs.get("reason") for m in marks):
                continue
            problems.append(name)
        assert not problems, f"standard tests removed or overridden without xfail(reason=...): {problems}"


def _comparable(value: Any) -> Any:
    """A prediction without its region ids, floats rounded to 3 decimals."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


STANDARD_TESTS = {name: fn for name, fn in vars(BackendConformanceTests).items() if name.startswith("test_")}
