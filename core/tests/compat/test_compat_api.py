"""``label_studio_ml.api.init_app`` (prelabel-compat): the API surface upstream's example tests
use, exercised with a model of our own (wsgi_model/): Flask's test client calls, the response
attributes they read, /setup, /webhook, Basic auth, and mocks applied in the test's process."""

import importlib.util
import json
import time
from pathlib import Path
from unittest import mock

import pytest

from prelabel.testing import configs
from prelabel.testing.client import per_task_results

pytest.importorskip("label_studio_ml.api", reason='needs prelabel-compat: pip install -e "core[compat]" -e compat')

from label_studio_ml.api import init_app

WSGI_MODEL = Path(__file__).parent / "wsgi_model" / "model.py"


def _load(name: str = "compat_wsgi_model"):
    spec = importlib.util.spec_from_file_location(name, WSGI_MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


model_module = _load()
KeywordSentiment = model_module.KeywordSentiment


@pytest.fixture(autouse=True)
def _no_home(monkeypatch):
    monkeypatch.delenv("PRELABEL_HOME", raising=False)  # the test client's own temporary home is tested
    monkeypatch.delenv("BASIC_AUTH_USER", raising=False)
    monkeypatch.delenv("BASIC_AUTH_PASS", raising=False)


@pytest.fixture
def client():
    app = init_app(model_class=KeywordSentiment)
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield client


def _predict_body(texts, config=configs.TEXT_CHOICES, **extra):
    return {"tasks": [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(texts)], "label_config": config, **extra}


def test_post_with_data_and_content_type_as_upstream_tests_do(client):
    response = client.post(
        "/predict", data=json.dumps(_predict_body(["a great day", "rain again"])), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.status == "200 OK"
    body = json.loads(response.data)  # .data is the raw body
    assert response.json == body == response.get_json()
    assert response.is_json and response.mimetype == "application/json"
    results = body["results"]
    assert [r["result"][0]["value"]["choices"] for r in results] == [["positive"], ["negative"]]
    assert [r["model_version"] for r in results] == ["KeywordSentiment-v1"] * 2
    assert results[0]["score"] == pytest.approx(1 / 3, abs=1e-3)


def test_post_with_json_keyword_and_interactive_context(client):
    context = {
        "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["neutral"]}}]
    }
    body = _predict_body(
        ["a great day"], project="7.1712586036", params={"login": None, "password": None, "context": context}
    )
    response = client.post("/predict", json=body)
    assert response.status_code == 200
    assert response.json["results"][0]["result"][0]["value"]["choices"] == ["neutral"]


def test_patches_in_the_test_reach_the_model(client):
    """Upstream's llm_interactive test patches its LLM client with mock.patch; the model runs
    in the test's process, so the patch applies."""
    with mock.patch.object(model_module, "score_words", return_value=0.0) as patched:
        response = client.post("/predict", json=_predict_body(["a great day"]))
        patched.assert_called_once_with(["a", "great", "day"])
    assert response.json["results"][0]["result"][0]["value"]["choices"] == ["negative"]


def test_setup_health_webhook_and_errors(client):
    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "UP"
    assert health.json["model_class"] == "KeywordSentiment"
    setup = client.post("/setup", json={"project": "3.1700000000", "schema": configs.TEXT_CHOICES})
    assert setup.status_code == 200 and setup.json["model_version"] == "KeywordSentiment-v1"
    hook = client.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": 3, "label_config": configs.TEXT_CHOICES}}
    )
    assert hook.status_code == 201, hook.text
    job, deadline = hook.json["job"], time.monotonic() + 60
    while (state := client.get(f"/jobs/{job}").json)["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)  # polling the job's state
    assert state["status"] == "succeeded", state
    assert state["result"]["fit_result"] == {"event": "START_TRAINING"}
    setup = client.post("/setup", json={"project": "3.1700000000", "schema": configs.TEXT_CHOICES})
    assert setup.json["model_version"] == "KeywordSentiment-v2"
    bad = client.post("/predict", data="{not json", content_type="application/json")
    assert 400 <= bad.status_code < 500 and bad.json is not None
    text = client.get("/metrics")
    assert text.status_code == 200 and text.json is None and "prelabel" in text.get_data(as_text=True)


def test_regions_outside_the_config_are_dropped_with_a_task_error(client):
    other = configs.TEXT_CHOICES.replace('"positive"', '"upbeat"')
    response = client.post("/predict", json=_predict_body(["a great day", "rain"], config=other))
    first, second = per_task_results(response.json)
    assert first["result"] == []
    assert "dropped 1 region" in first["error"] and "['positive']" in first["error"]
    assert second["result"][0]["value"]["choices"] == ["negative"] and "error" not in second


def test_basic_auth_from_init_app_arguments():
    app = init_app(KeywordSentiment, basic_auth_user="ls", basic_auth_pass="s3cret")
    with app.test_client() as client:
        assert client.post("/predict", json=_predict_body(["good"])).status_code == 401
        ok = client.post(
            "/predict", json=_predict_body(["good"]), headers={"Authorization": "Basic bHM6czNjcmV0"}
        )  # ls:s3cret
        assert ok.status_code == 200


def test_test_client_state_is_temporary_unless_prelabel_home_is_set(tmp_path, monkeypatch):
    app = init_app(KeywordSentiment)
    client = app.test_client()
    client.get("/health")
    home = Path(client._home)
    assert (home / "state.sqlite3").is_file()
    client.close()
    assert not home.exists()
    monkeypatch.setenv("PRELABEL_HOME", str(tmp_path / "mine"))
    with app.test_client() as client:
        client.post("/setup", json={"project": "1.1", "schema": configs.TEXT_CHOICES})
    assert (tmp_path / "mine" / "state.sqlite3").is_file()


def test_init_app_refuses_what_is_not_a_model_class():
    from label_studio_ml.model import LabelStudioMLBase

    with pytest.raises(ValueError, match="not a subclass of LabelStudioMLBase"):
        init_app(dict)
    with pytest.raises(ValueError, match="not a subclass of LabelStudioMLBase"):
        init_app(LabelStudioMLBase)


def test_the_app_is_asgi(tmp_path, monkeypatch):
    """``uvicorn _wsgi:app`` serves what init_app returned."""
    from starlette.testclient import TestClient

    monkeypatch.setenv("PRELABEL_HOME", str(tmp_path))
    with TestClient(init_app(KeywordSentiment)) as client:
        resp = client.post("/setup", json={"project": "2.1", "schema": configs.TEXT_CHOICES})
    assert resp.status_code == 200 and resp.json()["model_version"] == "KeywordSentiment-v1"
