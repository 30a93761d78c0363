"""`prelabel doctor`: settings, plugin checks, Label Studio URL and token, label config."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

import prelabel.cli
from prelabel import hookimpl
from prelabel.cli import cli
from prelabel.plugins import make_plugin_manager
from prelabel.testing import configs

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


def test_plugin_rows_from_the_doctor_checks_hook(env, monkeypatch):
    calls = []

    class Plugin:
        @hookimpl
        def doctor_checks(self, backend_class, settings):
            calls.append((backend_class.backend_id, type(settings).__name__))
            return [("model weights", False, "weights.bin is missing: set MODEL_PATH")]

    monkeypatch.setattr(prelabel.cli, "make_plugin_manager",
                        lambda: make_plugin_manager(load_entrypoints=False, plugins=[Plugin()]))
    result = doctor(REFERENCE)
    assert calls == [("reference", "BackendSettings")]
    assert result.exit_code == 1 and "weights.bin is missing" in result.output


def test_unknown_backend_is_a_clear_error(env):
    result = CliRunner().invoke(cli, ["doctor", "no_such_backend"])
    assert result.exit_code != 0 and "no backend named 'no_such_backend'" in result.output
