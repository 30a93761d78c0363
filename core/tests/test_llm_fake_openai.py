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
    schema = {
        "type": "object",
        "properties": {
            "c": {"type": ["string", "null"], "enum": ["x", None]},
            "m": {"type": "array", "items": {"enum": ["p", "q"]}},
            "s": {"type": "array", "items": {"type": "object"}},
            "r": {"type": ["integer", "null"], "minimum": 1},
        },
    }
    rf = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    body = chat(
        fake_openai.base_url, {"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": rf}
    ).json()
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "prelabel.testing.fake_openai", "--latency", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert chat(base_url).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


# -- provider profiles: each rule cites its page in prelabel.testing.provider_profiles ----------------
def kimi(model="kimi-k2.6", **extra):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_moonshot_profile_lists_current_models_and_404s_retired_ids():
    with FakeOpenAI(profile="moonshot") as fake:
        ids = [m["id"] for m in httpx.get(f"{fake.base_url}/models").json()["data"]]
        assert "kimi-k2.6" in ids and "kimi-k2-0905-preview" not in ids
        resp = chat(fake.base_url, kimi("kimi-k2-0905-preview"))
        assert resp.status_code == 404 and "kimi-k2-0905-preview" in resp.json()["error"]["message"]


def test_moonshot_profile_locks_sampling_parameters_with_the_providers_message():
    with FakeOpenAI(profile="moonshot") as fake:
        resp = chat(fake.base_url, kimi(temperature=0.0))
        assert resp.status_code == 400
        assert resp.json()["error"]["message"] == "invalid temperature: only 1 is allowed for this model"
        disabled = {"thinking": {"type": "disabled"}}
        assert chat(fake.base_url, kimi(temperature=0.6, **disabled)).status_code == 200  # the non-thinking value
        assert chat(fake.base_url, kimi(top_p=0.5, **disabled)).status_code == 400
        assert chat(fake.base_url, kimi("moonshot-v1-8k", temperature=0.3)).status_code == 200  # modifiable


def test_moonshot_profile_thinks_by_default_and_runs_out_of_tokens():
    with FakeOpenAI(profile="moonshot") as fake:
        on = chat(fake.base_url, kimi()).json()
        assert on["choices"][0]["message"]["reasoning_content"]
        assert on["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
        off = chat(fake.base_url, kimi(thinking={"type": "disabled"})).json()
        assert "reasoning_content" not in off["choices"][0]["message"]
        assert "completion_tokens_details" not in off["usage"]
        cut = chat(fake.base_url, kimi(max_tokens=20)).json()["choices"][0]
        assert cut["finish_reason"] == "length" and cut["message"]["content"] == ""


def test_modelscope_profile_rate_limit_headers_count_down_to_a_429():
    with FakeOpenAI(profile="modelscope", daily_limit=2) as fake:
        body = kimi("Qwen/Qwen3-Coder-480B-A35B-Instruct")
        first, second, third = (chat(fake.base_url, body) for _ in range(3))
        assert first.headers["modelscope-ratelimit-requests-remaining"] == "1"
        assert second.status_code == 200 and second.headers["modelscope-ratelimit-requests-remaining"] == "0"
        assert third.status_code == 429 and third.headers["modelscope-ratelimit-requests-remaining"] == "0"


def test_json_schema_status_answers_like_llama_cpp(fake_openai):
    fake_openai.json_schema_status = 500
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    }
    assert chat(fake_openai.base_url, body).status_code == 500
    assert chat(fake_openai.base_url, {**body, "response_format": {"type": "json_object"}}).status_code == 200
