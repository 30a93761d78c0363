"""prelabel.llm.engine against the fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from acme_llm import AcmeSettings
from prometheus_client import CollectorRegistry

from prelabel.llm import LLMEngine, LLMError, extract_json
from prelabel.testing.fake_openai import Reply

SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": ["yes", "no"]}}}


def make(fake, registry=None, **kw) -> LLMEngine:
    kw.setdefault("llm_backoff_base", 0.01)
    settings = AcmeSettings(acme_api_key="sk-test", acme_base_url=fake.base_url, **kw)
    return LLMEngine(settings, registry if registry is not None else CollectorRegistry())


def ask(engine, text="hello", schema=SCHEMA):
    return engine.ask([{"role": "user", "content": text}], schema, extract_json)


def run(coro):
    return asyncio.run(coro)


def test_answer_is_parsed_and_request_is_openai_shaped(fake_openai):
    engine = make(fake_openai)
    outcome = run(ask(engine))
    assert outcome.value == {"label": "yes"} and outcome.attempts == 1 and not outcome.cached
    assert outcome.usage.prompt_tokens > 0 and outcome.usage.completion_tokens > 0
    req = fake_openai.chat_requests[0]
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.body["model"] == "acme-1" and req.body["messages"][0]["content"] == "hello"
    assert req.body["response_format"]["type"] == "json_schema"
    assert req.body["response_format"]["json_schema"]["schema"] == SCHEMA


def test_at_most_max_concurrent_calls_in_flight(fake_openai):
    fake_openai.latency = 0.2  # long enough that every slot fills even on a busy machine
    engine = make(fake_openai, max_concurrent=3)

    async def many():
        return await asyncio.gather(*(ask(engine, f"task {i}") for i in range(12)))

    assert len(run(many())) == 12
    assert fake_openai.max_active == 3


def test_one_pooled_keep_alive_client(fake_openai):
    engine = make(fake_openai)

    async def sequential():
        client = engine.state().client
        for i in range(4):
            await ask(engine, f"t{i}")
        assert engine.state().client is client

    run(sequential())
    assert len({r.client_port for r in fake_openai.chat_requests}) == 1  # one connection, reused


def test_http2_is_offered(fake_openai, monkeypatch):
    import openai

    seen = {}
    original = openai.DefaultAsyncHttpxClient

    def spy(**kwargs):
        seen.update(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(openai, "DefaultAsyncHttpxClient", spy)
    run(ask(make(fake_openai)))
    assert seen["http2"] is True
    seen.clear()
    run(ask(make(fake_openai, llm_http2=False), "other"))
    assert seen["http2"] is False


def test_429_waits_for_retry_after(fake_openai):
    registry = CollectorRegistry()
    engine = make(fake_openai, registry=registry)
    fake_openai.enqueue(Reply.rate_limited(retry_after=0.4))
    started = time.perf_counter()
    outcome = run(ask(engine))
    assert time.perf_counter() - started >= 0.4
    assert outcome.attempts == 2 and len(fake_openai.chat_requests) == 2
    gap = fake_openai.chat_requests[1].received_at - fake_openai.chat_requests[0].received_at
    assert gap >= 0.4
    assert registry.get_sample_value("prelabel_llm_retries_total", {"reason": "429"}) == 1


def test_retry_after_longer_than_the_backoff_limit_gives_up(fake_openai):
    engine = make(fake_openai, llm_backoff_max=1.0)
    fake_openai.enqueue(Reply.rate_limited(retry_after=60))
    with pytest.raises(LLMError) as info:
        run(ask(engine))
    assert info.value.kind == "rate_limit" and "MAX_CONCURRENT" in str(info.value)
    assert len(fake_openai.chat_requests) == 1


def test_5xx_is_retried(fake_openai):
    engine = make(fake_openai)
    fake_openai.enqueue(Reply.server_error(500), Reply.server_error(503))
    outcome = run(ask(engine))
    assert outcome.attempts == 3 and outcome.value == {"label": "yes"}


def test_5xx_every_time_is_a_server_error_after_all_attempts(fake_openai):
    engine = make(fake_openai, llm_max_retries=2)
    fake_openai.enqueue(*[Reply.server_error(502)] * 3)
    with pytest.raises(LLMError) as info:
        run(ask(engine))
    assert info.value.kind == "server" and "after 3 attempts" in str(info.value)
    assert len(fake_openai.chat_requests) == 3


def test_backoff_is_exponential_with_jitter_and_capped(fake_openai, monkeypatch):
    import random

    engine = make(fake_openai, llm_backoff_base=0.5, llm_backoff_max=3.0)
    err = RuntimeError("no response attached")
    monkeypatch.setattr(random, "uniform", lambda a, b: b)  # the top of each jitter range
    assert [engine._delay(err, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    monkeypatch.setattr(random, "uniform", lambda a, b: a)  # the bottom
    assert [engine._delay(err, n) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]


def test_a_stall_past_the_timeout_is_retried_then_reported(fake_openai):
    engine = make(fake_openai, acme_timeout=0.3, llm_max_retries=1)
    fake_openai.enqueue(Reply.stall(5), Reply.stall(5))
    started = time.perf_counter()
    with pytest.raises(LLMError) as info:
        run(ask(engine))
    assert time.perf_counter() - started < 3
    assert info.value.kind == "timeout"
    assert "did not answer within 0.3s after 2 attempts" in str(info.value) and "ACME_TIMEOUT" in str(info.value)


def test_timeout_then_success(fake_openai):
    engine = make(fake_openai, acme_timeout=1.0)  # room for the good answer on a busy machine
    fake_openai.enqueue(Reply.stall(10))
    assert run(ask(engine)).attempts == 2


@pytest.mark.parametrize(
    "reply,kind,needle",
    [
        (Reply.unauthorized(), "auth", "check ACME_API_KEY"),
        (Reply.forbidden(), "forbidden", "no access to model 'acme-1'"),
        (Reply.quota_exhausted(), "quota", "quota or balance is used up"),
        (Reply(404, error={"message": "model not found"}), "not_found", "check ACME_MODEL"),
        (Reply.bad_request("context too long"), "bad_request", "context too long"),
    ],
)
def test_failures_that_are_not_retried(fake_openai, reply, kind, needle):
    engine = make(fake_openai, llm_response_format="json_object")
    fake_openai.enqueue(reply)
    with pytest.raises(LLMError) as info:
        run(ask(engine))
    assert info.value.kind == kind and needle in str(info.value)
    assert len(fake_openai.chat_requests) == 1


def test_unreachable_provider(fake_openai):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    settings = AcmeSettings(
        acme_api_key="k", acme_base_url=f"http://127.0.0.1:{port}/v1", llm_max_retries=1, llm_backoff_base=0.01
    )
    with pytest.raises(LLMError) as info:
        run(LLMEngine(settings).ask([{"role": "user", "content": "x"}], None, extract_json))
    assert info.value.kind == "network"
    assert f"cannot reach Acme at http://127.0.0.1:{port}/v1 after 2 attempts" in str(info.value)
    assert "ACME_BASE_URL" in str(info.value)


def test_fenced_answer_is_parsed(fake_openai):
    fake_openai.enqueue(Reply.fenced({"label": "no"}))
    assert run(ask(make(fake_openai))).value == {"label": "no"}


def test_malformed_answer_is_asked_again_once(fake_openai):
    engine = make(fake_openai)
    fake_openai.enqueue(Reply.malformed())
    assert run(ask(engine)).value == {"label": "yes"}
    fake_openai.enqueue(Reply.malformed(), Reply.malformed("still prose"), Reply.malformed())
    with pytest.raises(LLMError) as info:
        run(ask(engine, "again"))
    assert info.value.kind == "malformed" and "without the JSON asked for" in str(info.value)
    assert len(fake_openai.chat_requests) == 4


def test_a_body_that_is_not_a_completion_is_malformed(fake_openai):
    engine = make(fake_openai, llm_max_retries=0)
    fake_openai.enqueue(Reply(raw=b"<html>gateway says hi</html>"))
    with pytest.raises(LLMError) as info:
        run(ask(engine))
    assert info.value.kind == "malformed"


def test_response_format_falls_back_and_remembers(fake_openai):
    fake_openai.reject_json_schema = True
    engine = make(fake_openai)
    prompt = "Answer following this JSON schema: " + json.dumps(SCHEMA)  # json_object: the schema is in the prompt
    assert run(ask(engine, prompt)).value == {"label": "yes"}
    assert [r.response_format for r in fake_openai.chat_requests] == ["json_schema", "json_object"]
    assert engine.response_format == "json_object"
    run(ask(engine, prompt + " (next)"))
    assert fake_openai.chat_requests[-1].response_format == "json_object"
    assert len(fake_openai.chat_requests) == 3


def test_a_real_bad_request_is_not_hidden_by_the_fallback(fake_openai):
    engine = make(fake_openai)
    fake_openai.enqueue(*[Reply.bad_request("prompt too long")] * 3)
    with pytest.raises(LLMError) as info:
        run(ask(engine))
    assert "prompt too long" in str(info.value)
    assert engine.response_format == "json_schema"  # nothing learned from a request that fails anyway
    assert fake_openai.chat_requests[-1].response_format is None


def test_identical_requests_are_sent_once(fake_openai):
    fake_openai.latency = 0.05
    registry = CollectorRegistry()
    engine = make(fake_openai, registry=registry)

    async def burst():
        return await asyncio.gather(*(ask(engine, "same") for _ in range(5)))

    outcomes = run(burst())
    assert len(fake_openai.chat_requests) == 1
    assert sum(not o.cached for o in outcomes) == 1
    again = run(ask(engine, "same"))
    assert again.cached and again.usage.total_tokens == 0 and len(fake_openai.chat_requests) == 1
    assert registry.get_sample_value("prelabel_llm_calls_total", {"outcome": "cached"}) == 5
    run(ask(engine, "same", schema={"type": "object", "properties": {}}))
    assert len(fake_openai.chat_requests) == 2  # another schema is another request


def test_cache_is_bounded(fake_openai):
    engine = make(fake_openai, llm_cache_size=2)
    for text in ("a", "b", "c", "a"):
        run(ask(engine, text))
    assert len(engine.cache) == 2 and len(fake_openai.chat_requests) == 4
    off = make(fake_openai, llm_cache_size=0)
    run(ask(off, "z"))
    run(ask(off, "z"))
    assert len(fake_openai.chat_requests) == 6


def test_failures_are_not_cached(fake_openai):
    engine = make(fake_openai)
    fake_openai.enqueue(Reply.unauthorized())
    with pytest.raises(LLMError):
        run(ask(engine))
    assert run(ask(engine)).value == {"label": "yes"}


def test_token_totals_are_counted(fake_openai):
    registry = CollectorRegistry()
    engine = make(fake_openai, registry=registry)
    a, b = run(ask(engine, "one")), run(ask(engine, "two"))
    labels = {"model": "acme-1", "kind": "prompt"}
    assert registry.get_sample_value("prelabel_llm_tokens_total", labels) == (
        a.usage.prompt_tokens + b.usage.prompt_tokens
    )
    labels["kind"] = "completion"
    assert registry.get_sample_value("prelabel_llm_tokens_total", labels) == (
        a.usage.completion_tokens + b.usage.completion_tokens
    )
    assert registry.get_sample_value("prelabel_llm_calls_total", {"outcome": "ok"}) == 2


def test_list_models_reads_get_models_without_retries(fake_openai):
    fake_openai.models = ["acme-1", "acme-2"]
    engine = make(fake_openai)
    assert run(engine.list_models()) == ["acme-1", "acme-2"]
    fake_openai.api_key = "sk-other"
    with pytest.raises(LLMError) as info:
        run(make(fake_openai).list_models())
    assert info.value.kind == "auth" and "ACME_API_KEY" in str(info.value)
    assert [r.path for r in fake_openai.requests] == ["/v1/models", "/v1/models"]


def test_settings_roles_and_base_url_normalisation():
    s = AcmeSettings(acme_api_key="k", acme_base_url="https://x.example/v1/chat/completions/")
    assert s.base_url == "https://x.example/v1" and s.env_name("timeout") == "ACME_TIMEOUT"
    assert s.env_name("max_concurrent") == "MAX_CONCURRENT" and s.env_name("llm_max_retries") == "LLM_MAX_RETRIES"
    bad = AcmeSettings(acme_api_key=" ", acme_base_url="ftp://x", acme_timeout=0)
    problems = " | ".join(bad.problems())
    assert "ACME_API_KEY is empty" in problems and "ACME_BASE_URL='ftp://x' is not an http(s) URL" in problems
    assert "ACME_TIMEOUT must be a positive" in problems


def test_client_is_made_in_setup_and_adopted_by_the_serving_loop(fake_openai):
    engine = make(fake_openai)
    engine.prepare()
    made = engine._state.client

    async def used_client():
        await ask(engine, "x")
        return engine.state().client

    assert run(used_client()) is made
    assert run(used_client()) is not made  # another event loop cannot share its connections
