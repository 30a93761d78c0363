"""ModelScope's settings and seed 001's troubleshooting list: one actionable message each."""

from __future__ import annotations

import logging
import socket

import pytest
from click.testing import CliRunner
from modelscope_qwen_configs import CODE_COMMENT
from prelabel_modelscope_qwen import ModelScopeQwenBackend, Settings

from prelabel.cli import cli
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.fake_openai import Reply


def test_settings_defaults_and_full_url(monkeypatch):
    monkeypatch.delenv("MODELSCOPE_API_URL")
    s = Settings()
    assert s.base_url == "https://api-inference.modelscope.cn/v1"
    assert s.model == "Qwen/Qwen3-Coder-480B-A35B-Instruct" and s.timeout == 60.0
    monkeypatch.setenv("MODELSCOPE_API_URL", "https://api-inference.modelscope.cn/v1/chat/completions")
    monkeypatch.setenv("MODELSCOPE_MODEL", "Qwen/Qwen3-32B")
    s = Settings()
    assert s.base_url == "https://api-inference.modelscope.cn/v1" and s.model == "Qwen/Qwen3-32B"
    assert ModelScopeQwenBackend.default_port == 9090


def test_1_key_missing_stops_serve(monkeypatch):
    monkeypatch.delenv("MODELSCOPE_API_KEY")
    result = CliRunner().invoke(cli, ["serve", "modelscope_qwen"])
    assert result.exit_code == 1 and "MODELSCOPE_API_KEY is required" in result.output


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def predict(tmp_path, monkeypatch):
    def run(data, env=None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        rt = make_runtime(ModelScopeQwenBackend, tmp_path / "home")
        with serve_in_process(rt) as c:
            resp = c.post("/predict", json={"tasks": [{"id": 7, "data": data}], "label_config": CODE_COMMENT})
        rt.close()
        assert resp.status_code == 200, resp.text
        [item] = per_task_results(resp.json())
        return item

    return run


@pytest.mark.parametrize(
    "case,replies,env,needles",
    [
        (
            "2_auth_failed",
            [Reply.unauthorized()],
            {},
            ["ModelScope refused the API key (401", "check MODELSCOPE_API_KEY"],
        ),
        (
            "4_no_model_access",
            [Reply.forbidden()],
            {},
            ["no access to model 'Qwen/Qwen3-Coder-480B-A35B-Instruct' (403", "set MODELSCOPE_MODEL"],
        ),
        (
            "5_timeout",
            [Reply.stall(5)] * 2,
            {"MODELSCOPE_API_TIMEOUT": "0.3", "LLM_MAX_RETRIES": "1"},
            ["ModelScope did not answer within 0.3s after 2 attempts", "raise MODELSCOPE_API_TIMEOUT"],
        ),
        (
            "6_malformed_response",
            [Reply.malformed()] * 2,
            {},
            ["ModelScope answered 2 times without the JSON asked for", "MODELSCOPE_MODEL"],
        ),
        (
            "8_quota_exhausted",
            [Reply.quota_exhausted()],
            {},
            ["ModelScope quota or balance is used up", "wait for the quota to reset"],
        ),
    ],
)
def test_troubleshooting_messages(predict, fake_openai, caplog, case, replies, env, needles):
    fake_openai.enqueue(*replies)
    with caplog.at_level(logging.ERROR):
        item = predict({"code": "print(1)"}, env)
    assert item["result"] == []
    for needle in needles:
        assert needle in item["error"]
        assert any(needle in r.getMessage() for r in caplog.records), f"{needle!r} not logged"


def test_3_network_unreachable(predict, caplog):
    port = _closed_port()
    with caplog.at_level(logging.ERROR):
        item = predict({"code": "x"}, {"MODELSCOPE_API_URL": f"http://127.0.0.1:{port}/v1", "LLM_MAX_RETRIES": "0"})
    assert f"cannot reach ModelScope at http://127.0.0.1:{port}/v1" in item["error"]
    assert "MODELSCOPE_API_URL" in item["error"]
    assert any("cannot reach ModelScope" in r.getMessage() for r in caplog.records)


def test_7_no_text_field(predict, fake_openai):
    item = predict({"content": "print(1)"})
    assert "has no data key 'code'" in item["error"] and "['content']" in item["error"]
    item = predict({"code": ""})
    assert "no text to label" in item["error"]
    assert fake_openai.chat_requests == []


def test_rate_limit_is_retried_transparently(predict, fake_openai):
    fake_openai.enqueue(Reply.rate_limited(0.05), Reply.server_error(502))
    item = predict({"code": "x = 1"})
    assert "error" not in item and item["result"][0]["type"] == "textarea"
    assert len(fake_openai.chat_requests) == 3


def test_doctor(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    config = tmp_path / "c.xml"
    config.write_text(CODE_COMMENT)
    result = CliRunner().invoke(cli, ["doctor", "modelscope_qwen", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Qwen/Qwen3-Coder-480B-A35B-Instruct is offered" in result.output
    assert "Qwen/Qwen3-Coder-480B-A35B-Instruct labeled a sentiment task" in result.output
    fake_openai.enqueue(Reply.forbidden())
    result = CliRunner().invoke(cli, ["doctor", "modelscope_qwen"])
    assert result.exit_code == 1 and "403" in result.output


def test_the_daily_free_allowance_used_up_is_reported_not_retried(tmp_path, monkeypatch):
    from prelabel.testing.fake_openai import FakeOpenAI

    with FakeOpenAI(profile="modelscope", daily_limit=1) as fake:
        monkeypatch.setenv("MODELSCOPE_API_URL", fake.base_url)
        rt = make_runtime(ModelScopeQwenBackend, tmp_path / "home")
        with serve_in_process(rt) as c:
            tasks = [{"id": 1, "data": {"code": "a = 1"}}, {"id": 2, "data": {"code": "b = 2"}}]
            results = per_task_results(c.post("/predict", json={"tasks": tasks, "label_config": CODE_COMMENT}).json())
        rt.close()
        assert len(fake.chat_requests) == 2  # one each: a used-up daily allowance is not retried
    errors = [r.get("error") for r in results]
    assert sum(1 for e in errors if e and "quota or balance is used up" in e) == 1, errors
