"""`prelabel doctor`: settings, plugin checks, Label Studio URL and token, label config."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from prelabel.cli import cli
from prelabel.settings import CoreSettings
from prelabel.testing import configs
from prelabel.testing.fake_openai import Reply

REFERENCE = "prelabel.testing.reference:ReferenceBackend"


class _LabelStudio(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/health":
            status, body = 200, {"status": "UP"}
        elif self.path == "/api/current-user/whoami" and self.headers.get("Authorization") == "Token good-token":
            status, body = 200, {"email": "admin@example.com"}
        else:
            status, body = 401, {"detail": "Authentication credentials were not provided."}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def label_studio():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LabelStudio)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PRELABEL_HOME", str(tmp_path / "home"))
    return monkeypatch


def doctor(*args):
    return CliRunner().invoke(cli, ["doctor", *args], catch_exceptions=False)


def write(tmp_path, xml):
    path = tmp_path / "config.xml"
    path.write_text(xml)
    return str(path)


def test_all_checks_pass(env, tmp_path, label_studio):
    env.setenv("LABEL_STUDIO_URL", label_studio)
    env.setenv("LABEL_STUDIO_API_KEY", "good-token")
    result = doctor(REFERENCE, "--config", write(tmp_path, configs.TEXT_CHOICES))
    assert result.exit_code == 0, result.output
    assert "fail" not in result.output
    assert "admin@example.com" in result.output and "Choices 'sentiment'" in result.output


def test_unsupported_config_fails(env, tmp_path):
    result = doctor(REFERENCE, "--config", write(tmp_path, configs.IMAGE_RECTANGLES))
    assert result.exit_code == 1
    assert "RectangleLabels on Image" in result.output


def test_invalid_or_missing_config_file_fails(env, tmp_path):
    assert doctor(REFERENCE, "--config", write(tmp_path, configs.INVALID_XML)).exit_code == 1
    result = doctor(REFERENCE, "--config", str(tmp_path / "nope.xml"))
    assert result.exit_code == 1 and "nope.xml" in result.output


def test_label_studio_token_refused(env, label_studio):
    env.setenv("LABEL_STUDIO_URL", label_studio)
    env.setenv("LABEL_STUDIO_API_KEY", "wrong")
    result = doctor(REFERENCE)
    assert result.exit_code == 1
    assert "refused LABEL_STUDIO_API_KEY (401)" in result.output.replace("\n", " ").replace("│", "")


def test_label_studio_unreachable(env):
    env.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    result = doctor(REFERENCE)
    assert result.exit_code == 1 and "cannot reach" in result.output


def test_label_studio_not_configured_is_skipped(env):
    result = doctor(REFERENCE)
    assert result.exit_code == 0, result.output
    assert "skip" in result.output and "LABEL_STUDIO_URL is not set" in result.output


def test_plugin_rows_from_the_backends_doctor_classmethod(env, monkeypatch):
    from prelabel.testing.reference import ReferenceBackend

    calls = []

    def rows(cls, settings, core):
        calls.append((cls.backend_id, type(settings).__name__, type(core).__name__))
        return [("model weights", False, "weights.bin is missing: set MODEL_PATH")]

    monkeypatch.setattr(ReferenceBackend, "doctor", classmethod(rows))
    result = doctor(REFERENCE)
    assert calls == [("reference", "BackendSettings", "CoreSettings")]
    assert result.exit_code == 1 and "weights.bin is missing" in result.output


def test_unknown_backend_is_a_clear_error(env):
    result = CliRunner().invoke(cli, ["doctor", "no_such_backend"])
    assert result.exit_code != 0 and "no backend named 'no_such_backend'" in result.output


# -- LLM backends: the model is offered, and one real labeling call works --------------------
def _llm_rows(fake, **kw):
    from acme_llm import AcmeBackend, AcmeSettings

    settings = AcmeSettings(acme_api_key="sk-test", acme_base_url=fake.base_url, llm_backoff_base=0.01, **kw)
    return {name: (ok, detail) for name, ok, detail in AcmeBackend.doctor(settings, CoreSettings())}


def test_llm_doctor_lists_models_and_labels_with_the_real_parameters(fake_openai):
    fake_openai.models = ["acme-1", "acme-2"]
    rows = _llm_rows(fake_openai, llm_temperature=0.3, llm_max_tokens=321)
    assert rows["model"] == (True, f"acme-1 is offered at {fake_openai.base_url} (2 models)")
    ok, detail = rows["labeling call"]
    assert ok and "acme-1 labeled a sentiment task ['positive']" in detail and "response_format json_schema" in detail
    [call] = fake_openai.chat_requests
    assert (call.body["temperature"], call.body["max_tokens"]) == (0.3, 321)  # what predict sends, not a ping


def test_llm_doctor_names_the_configured_model_and_those_on_offer(fake_openai):
    fake_openai.models = ["acme-2", "acme-3"]
    ok, detail = _llm_rows(fake_openai)["model"]
    assert not ok and "ACME_MODEL='acme-1' is not offered" in detail and "models on offer: acme-2, acme-3" in detail


def test_llm_doctor_without_a_model_list_relies_on_the_labeling_call(fake_openai):
    import prelabel.testing.fake_openai as fo

    original = fo.FakeOpenAI._dispatch

    async def no_models(self, method, path, *args):
        if path.endswith("/models"):
            return 404, b'{"error": {"message": "not found"}}', {}
        return await original(self, method, path, *args)

    fake_openai._dispatch = no_models.__get__(fake_openai)
    fake_openai.enqueue(*[Reply.malformed()] * 2)
    rows = _llm_rows(fake_openai)
    assert rows["model"][0] and "no model list" in rows["model"][1]
    ok, detail = rows["labeling call"]
    assert not ok and "without the JSON asked for" in detail
