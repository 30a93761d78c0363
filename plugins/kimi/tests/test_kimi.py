"""Kimi's own behaviour: seed 000's settings, health, curl example, errors and doctor."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from prelabel_kimi import DEFAULT_LABEL_CONFIG, KimiBackend, Settings

from prelabel.cli import cli
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.fake_openai import Reply


@pytest.fixture
def client(tmp_path):
    rt = make_runtime(KimiBackend, tmp_path / "home")  # settings from the environment (conftest.py)
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def test_settings_defaults_and_variables(monkeypatch):
    monkeypatch.delenv("MOONSHOT_BASE_URL")
    s = Settings()
    assert (s.model, s.base_url, s.timeout, s.max_concurrent, s.llm_thinking) == (
        "kimi-k2.6",
        "https://api.moonshot.cn/v1",
        120.0,
        10,
        False,
    )
    monkeypatch.setenv("MOONSHOT_MODEL", "kimi-k2.5")
    monkeypatch.setenv("KIMI_API_TIMEOUT", "30")
    monkeypatch.setenv("MAX_CONCURRENT", "25")
    s = Settings()
    assert (s.model, s.timeout, s.max_concurrent, s.api_key) == ("kimi-k2.5", 30.0, 25, "sk-test")


def test_missing_key_stops_serve_naming_the_variable(monkeypatch):
    monkeypatch.delenv("MOONSHOT_API_KEY")
    result = CliRunner().invoke(cli, ["serve", "kimi"])
    assert result.exit_code == 1
    assert "MOONSHOT_API_KEY is required: set the environment variable MOONSHOT_API_KEY" in result.output


def test_serve_reads_worker_count_bind_port_and_log_level(monkeypatch, tmp_path):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    monkeypatch.setenv("WORKER_COUNT", "3")
    monkeypatch.setenv("BIND_PORT", "18751")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("PRELABEL_SERVE_BACKEND", "")  # serve sets these for its workers; restored after
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(cli, ["serve", "kimi"])
        assert result.exit_code == 0, result.output
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:], root.level = handlers, level
    assert seen["workers"] == 3 and seen["port"] == 18751
    assert seen["app"] == "prelabel.server.app:app_from_env" and seen["factory"] is True


def test_health_shows_the_model_as_in_seed_000(client):
    body = client.get("/health").json()
    assert body["status"] == "UP" and body["model"] == "kimi-k2.6"
    assert body["model_version"].startswith("kimi-k2.6-") and body["thinking"] is False
    assert (body["model_family"], body["response_format"]) == ("kimi-k2.6", "json_schema")


SENTIMENT = """<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">
  <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/></Choices></View>"""


def _sentiment_reader(req):
    """Answers like a model that reads the review in the prompt."""
    review = req.prompt.split("<text>")[1].split("</text>")[0].lower()
    return {"sentiment": "negative" if any(w in review for w in ("broke", "awful")) else "positive"}


def test_a_new_user_with_only_key_and_url_labels_sentiment_without_thinking(client, fake_openai):
    fake_openai.responder = _sentiment_reader
    setup = client.post("/setup", json={"project": "7.1", "schema": SENTIMENT})
    assert setup.status_code == 200, setup.text
    tasks = [{"id": 1, "data": {"text": "I love it, works great"}}, {"id": 2, "data": {"text": "It broke in a day"}}]
    resp = client.post("/predict", json={"tasks": tasks, "project": "7.1", "label_config": SENTIMENT})
    results = per_task_results(resp.json())
    assert [r["result"][0]["value"]["choices"] for r in results] == [["positive"], ["negative"]]
    assert all(r["model_version"] == setup.json()["model_version"] for r in results)
    for req in fake_openai.chat_requests:
        assert req.body["model"] == "kimi-k2.6" and req.body["thinking"] == {"type": "disabled"}
        assert not {"temperature", "top_p", "n", "presence_penalty", "frequency_penalty"} & set(req.body)
        assert req.response_format == "json_schema"
    assert len(fake_openai.chat_requests) == 2  # no 400, no retry, no step-down


def test_thinking_setting_turns_kimi_thinking_on(tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("LLM_THINKING", "true")
    fake_openai.responder = _sentiment_reader
    rt = make_runtime(KimiBackend, tmp_path / "home")
    with serve_in_process(rt) as c:
        assert c.get("/health").json()["thinking"] is True
        resp = c.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "great"}}], "label_config": SENTIMENT})
    rt.close()
    assert per_task_results(resp.json())[0]["result"][0]["value"]["choices"] == ["positive"]
    assert fake_openai.chat_requests[0].body["thinking"] == {"type": "enabled"}


def test_thinking_that_runs_out_of_tokens_is_a_task_error_naming_the_setting(tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("LLM_THINKING", "true")
    monkeypatch.setenv("LLM_MAX_TOKENS", "50")
    rt = make_runtime(KimiBackend, tmp_path / "home")
    with serve_in_process(rt) as c:
        resp = c.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "great"}}], "label_config": SENTIMENT})
    rt.close()
    [item] = per_task_results(resp.json())
    assert item["result"] == [] and "raise LLM_MAX_TOKENS" in item["error"]


def test_seed_000_curl_example_tasks_only(client, fake_openai):
    fake_openai.responder = lambda req: {"label": "一段关于标注的文本"}
    resp = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "这是一段需要标注的文本内容"}}]})
    assert resp.status_code == 200, resp.text
    [item] = per_task_results(resp.json())
    [region] = item["result"]
    assert (region["from_name"], region["to_name"], region["type"]) == ("label", "text", "textarea")
    assert region["value"] == {"text": ["一段关于标注的文本"]}
    assert item["model_version"].startswith("kimi-k2.6-")
    req = fake_openai.chat_requests[0]
    assert req.body["model"] == "kimi-k2.6" and req.headers["authorization"] == "Bearer sk-test"
    assert "这是一段需要标注的文本内容" in req.prompt and "模型生成的标注内容" in req.prompt


def test_default_config_is_seed_000s():
    assert '<TextArea name="label" toName="text"' in DEFAULT_LABEL_CONFIG
    assert KimiBackend.default_port == 8751


@pytest.mark.parametrize(
    "reply,needle",
    [
        (Reply.unauthorized(), "Moonshot refused the API key (401"),
        (Reply.forbidden(), "no access to model 'kimi-k2.6' (403"),
        (Reply.quota_exhausted(), "Moonshot quota or balance is used up"),
    ],
)
def test_provider_errors_name_what_to_fix(client, fake_openai, reply, needle):
    fake_openai.enqueue(reply)
    resp = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}]})
    [item] = per_task_results(resp.json())
    assert needle in item["error"] and item["result"] == []


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # the doctor table keeps each row on one line


def test_doctor_passes_against_the_provider(fake_openai, tmp_path, wide):
    config = tmp_path / "c.xml"
    config.write_text(DEFAULT_LABEL_CONFIG)
    result = CliRunner().invoke(cli, ["doctor", "kimi", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "kimi-k2.6 is offered" in result.output and "TextArea 'label'" in result.output
    assert "kimi-k2.6 labeled a sentiment task ['positive']" in result.output and "thinking off" in result.output
    assert fake_openai.requests[0].path == "/v1/models"
    [call] = fake_openai.chat_requests  # the real labeling call, with the parameters predict sends
    assert call.body["thinking"] == {"type": "disabled"} and "temperature" not in call.body
    assert call.body["max_tokens"] == 2000 and call.response_format == "json_schema"


def test_doctor_with_a_retired_model_names_the_models_on_offer(fake_openai, monkeypatch, wide):
    monkeypatch.setenv("MOONSHOT_MODEL", "kimi-k2-0905-preview")
    result = CliRunner().invoke(cli, ["doctor", "kimi"])
    assert result.exit_code == 1, result.output
    assert "MOONSHOT_MODEL='kimi-k2-0905-preview' is not offered" in result.output
    assert "models on offer: kimi-k2.6, kimi-k2.5" in result.output
    assert fake_openai.chat_requests == []  # no labeling call for a model that is not there


def test_doctor_fails_on_a_refused_key(fake_openai, wide):
    fake_openai.api_key = "sk-other"
    result = CliRunner().invoke(cli, ["doctor", "kimi"])
    assert result.exit_code == 1
    assert "MOONSHOT_API_KEY" in result.output and "401" in result.output


def test_doctor_reports_missing_key(monkeypatch):
    monkeypatch.delenv("MOONSHOT_API_KEY")
    result = CliRunner().invoke(cli, ["doctor", "kimi"])
    assert result.exit_code == 1 and "MOONSHOT_API_KEY is required" in result.output
