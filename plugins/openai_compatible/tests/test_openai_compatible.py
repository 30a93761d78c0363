"""openai_compatible's own behaviour against the fake OpenAI-compatible server."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from prelabel_openai_compatible import OpenAICompatibleBackend, Settings

from prelabel.cli import cli
from prelabel.testing import configs, make_runtime, serve_in_process
from prelabel.testing.client import per_task_results


@pytest.fixture
def client(tmp_path):
    rt = make_runtime(OpenAICompatibleBackend, tmp_path / "home")  # settings from the environment
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def predict(client, tasks, config=configs.TEXT_CHOICES):
    resp = client.post("/predict", json={"tasks": tasks, "label_config": config})
    assert resp.status_code == 200, resp.text
    return per_task_results(resp.json())


def test_settings_and_port(fake_openai):
    s = Settings()
    assert (s.base_url, s.model, s.api_key, s.timeout) == (fake_openai.base_url, "fake-model", "", 120.0)
    assert s.problems() == []  # no key needed by a server without authentication
    assert OpenAICompatibleBackend.default_port == 9096


@pytest.mark.parametrize("variable", ["LLM_BASE_URL", "LLM_MODEL"])
def test_serve_stops_naming_a_missing_variable(monkeypatch, variable):
    monkeypatch.delenv(variable)
    result = CliRunner().invoke(cli, ["serve", "openai_compatible"])
    assert result.exit_code == 1 and f"{variable} is required" in result.output


def test_no_key_then_a_key_only_to_that_server(client, fake_openai, monkeypatch, tmp_path):
    predict(client, [{"id": 1, "data": {"text": "good"}}])
    assert fake_openai.chat_requests[-1].headers["authorization"] == "Bearer no-key"
    monkeypatch.setenv("LLM_API_KEY", "local-secret")
    fake_openai.api_key = "local-secret"
    rt = make_runtime(OpenAICompatibleBackend, tmp_path / "h2")
    with serve_in_process(rt) as c:
        [item] = predict(c, [{"id": 2, "data": {"text": "bad"}}])
    rt.close()
    assert item["result"] and fake_openai.chat_requests[-1].headers["authorization"] == "Bearer local-secret"


def test_extra_body_reaches_the_server(fake_openai, monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_EXTRA_BODY", '{"chat_template_kwargs": {"enable_thinking": false}, "top_k": 20}')
    rt = make_runtime(OpenAICompatibleBackend, tmp_path / "home")
    with serve_in_process(rt) as c:
        predict(c, [{"id": 1, "data": {"text": "good"}}])
    rt.close()
    body = fake_openai.chat_requests[-1].body
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["top_k"] == 20


def test_a_server_that_answers_json_schema_with_500_still_labels_every_task(client, fake_openai):
    fake_openai.json_schema_status = 500  # llama-cpp-python's server, measured
    results = predict(client, [{"id": i, "data": {"text": f"text {i}"}} for i in range(4)])
    assert all(r["result"] and r["result"][0]["value"]["choices"] for r in results), results
    assert client.get("/health").json()["response_format"] == "json_object"


def test_doctor_lists_the_models_and_labels_once(fake_openai, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    result = CliRunner().invoke(cli, ["doctor", "openai_compatible"])
    assert result.exit_code == 0, result.output
    assert "fake-model is offered" in result.output and "fake-model labeled a sentiment task" in result.output
    monkeypatch.setenv("LLM_MODEL", "llama3")
    result = CliRunner().invoke(cli, ["doctor", "openai_compatible"])
    assert result.exit_code == 1 and "LLM_MODEL='llama3' is not offered" in result.output
    assert "models on offer: fake-model" in result.output
