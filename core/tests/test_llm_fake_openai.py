"""The fake OpenAI-compatible server itself: real HTTP on loopback, scripted misbehaviour."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest

from prelabel.testing.fake_openai import FakeOpenAI, Reply, answer_for_schema


def chat(base_url, body=None, **kw):
    body = body or {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    kw.setdefault("timeout", 5)
    return httpx.post(f"{base_url}/chat/completions", json=body, **kw)


def test_models_and_chat_are_openai_shaped(fake_openai):
    models = httpx.get(f"{fake_openai.base_url}/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "fake-model"
    body = chat(fake_openai.base_url).json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert [r.method for r in fake_openai.requests] == ["GET", "POST"]
    assert fake_openai.chat_requests[0].prompt == "hi"
    assert httpx.get(f"{fake_openai.base_url}/nothing").status_code == 404


def test_answers_fit_the_requested_schema(fake_openai):
    schema = {"type": "object", "properties": {"c": {"type": ["string", "null"], "enum": ["x", None]},
                                               "m": {"type": "array", "items": {"enum": ["p", "q"]}},
                                               "s": {"type": "array", "items": {"type": "object"}},
                                               "r": {"type": ["integer", "null"], "minimum": 1}}}
    rf = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    body = chat(fake_openai.base_url, {"model": "m", "messages": [{"role": "user", "content": "x"}],
                                        "response_format": rf}).json()
    assert body["choices"][0]["message"]["content"] == '{"c": "x", "m": ["p"], "s": [], "r": 1}'
    assert answer_for_schema({"type": "string"}) == "fake answer"


def test_queue_scripts_failures_in_order(fake_openai):
    fake_openai.enqueue(Reply.rate_limited(2), Reply.server_error(503), Reply.fenced({"a": 1}), "plain")
    first = chat(fake_openai.base_url)
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert chat(fake_openai.base_url).status_code == 503
    fenced = chat(fake_openai.base_url).json()["choices"][0]["message"]["content"]
    assert fenced.startswith("Here is the result:\n```json\n") and '{"a": 1}' in fenced
    assert chat(fake_openai.base_url).json()["choices"][0]["message"]["content"] == "plain"


def test_latency_and_stall(fake_openai):
    fake_openai.latency = 0.2
    started = time.perf_counter()
    chat(fake_openai.base_url)
    assert time.perf_counter() - started >= 0.2
    fake_openai.latency = 0
    fake_openai.enqueue(Reply.stall(5))
    with pytest.raises(httpx.ReadTimeout):
        chat(fake_openai.base_url, timeout=0.3)


def test_api_key_and_json_schema_rejection(fake_openai):
    fake_openai.api_key = "sk-right"
    assert chat(fake_openai.base_url).status_code == 401
    ok = chat(fake_openai.base_url, headers={"Authorization": "Bearer sk-right"})
    assert ok.status_code == 200
    fake_openai.reject_json_schema = True
    body = {"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {}}}
    assert chat(fake_openai.base_url, body, headers={"Authorization": "Bearer sk-right"}).status_code == 400


def test_stop_releases_stalled_requests_quickly():
    fake = FakeOpenAI().start()
    fake.enqueue(Reply.stall(30))
    got = []
    t = threading.Thread(target=lambda: got.append(chat(fake.base_url, timeout=10).status_code), daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while not fake.chat_requests and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the request to arrive, not a readiness delay
    assert fake.chat_requests, "the stalled request never arrived"
    started = time.perf_counter()
    fake.stop()
    t.join(5)
    assert not t.is_alive() and time.perf_counter() - started < 2
    assert got == [503]


def test_runs_standalone():
    proc = subprocess.Popen([sys.executable, "-m", "prelabel.testing.fake_openai", "--latency", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert chat(base_url).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
