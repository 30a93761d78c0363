"""Kimi's own behaviour: seed 000's settings, health, curl example, errors and doctor."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from prelabel_kimi import DEFAULT_LABEL_CONFIG, KimiBackend, Settings

from prelabel.cli import cli
from prelabel.testing import make_runtime, serve_in_process
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
    assert (s.model, s.base_url, s.timeout, s.max_concurrent) == (
        "kimi-k2-0905-preview", "https://api.moonshot.cn/v1", 120.0, 10)
    monkeypatch.setenv("MOONSHOT_MODEL", "kimi-k2-turbo-preview")
    monkeypatch.setenv("KIMI_API_TIMEOUT", "30")
    monkeypatch.setenv("MAX_CONCURRENT", "25")
    s = Settings()
    assert (s.model, s.timeout, s.max_concurrent, s.api_key) == ("kimi-k2-turbo-preview", 30.0, 25, "sk-test")


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
    assert body["status"] == "UP" and body["model"] == "kimi-k2-0905-preview"


def test_seed_000_curl_example_tasks_only(client, fake_openai):
    fake_openai.responder = lambda req: {"label": "一段关于标注的文本"}
    resp = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "这是一段需要标注的文本内容"}}]})
    assert resp.status_code == 200, resp.text
    [item] = resp.json()["results"]
    [region] = item["result"]
    assert (region["from_name"], region["to_name"], region["type"]) == ("label", "text", "textarea")
    assert region["value"] == {"text": ["一段关于标注的文本"]}
    assert item["model_version"] == "kimi-k2-0905-preview"
    req = fake_openai.chat_requests[0]
    assert req.body["model"] == "kimi-k2-0905-preview" and req.headers["authorization"] == "Bearer sk-test"
    assert "这是一段需要标注的文本内容" in req.prompt and "模型生成的标注内容" in req.prompt


def test_default_config_is_seed_000s():
    assert '<TextArea name="label" toName="text"' in DEFAULT_LABEL_CONFIG
    assert KimiBackend.default_port == 8751


@pytest.mark.parametrize("reply,needle", [
    (Reply.unauthorized(), "Moonshot refused the API key (401"),
    (Reply.forbidden(), "no access to model 'kimi-k2-0905-preview' (403"),
    (Reply.quota_exhausted(), "Moonshot quota or balance is used up"),
])
def test_provider_errors_name_what_to_fix(client, fake_openai, reply, needle):
    fake_openai.enqueue(reply)
    resp = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}]})
    [item] = resp.json()["results"]
    assert needle in item["error"] and item["result"] == []


def test_doctor_passes_against_the_provider(fake_openai, tmp_path):
    config = tmp_path / "c.xml"
    config.write_text(DEFAULT_LABEL_CONFIG)
    result = CliRunner().invoke(cli, ["doctor", "kimi", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "kimi-k2-0905-preview answered" in result.output and "TextArea 'label'" in result.output
    assert fake_openai.chat_requests[-1].body["max_tokens"] == 1


def test_doctor_fails_on_a_refused_key(fake_openai):
    fake_openai.api_key = "sk-other"
    result = CliRunner().invoke(cli, ["doctor", "kimi"])
    assert result.exit_code == 1
    assert "MOONSHOT_API_KEY" in result.output and "401" in result.output


def test_doctor_reports_missing_key(monkeypatch):
    monkeypatch.delenv("MOONSHOT_API_KEY")
    result = CliRunner().invoke(cli, ["doctor", "kimi"])
    assert result.exit_code == 1 and "MOONSHOT_API_KEY is required" in result.output
