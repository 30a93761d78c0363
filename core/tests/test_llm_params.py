"""Parameter rules, thinking and the format step-down against the provider profiles of the
fake server (prelabel.testing.provider_profiles: each rule there cites the provider's page)."""

from __future__ import annotations

import asyncio
import json

import pytest
from acme_llm import AcmeSettings
from prometheus_client import CollectorRegistry

from prelabel.llm import LLMEngine, LLMError, extract_json
from prelabel.llm.params import SAMPLING, rules_for
from prelabel.testing.fake_openai import FakeOpenAI, Reply

SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": ["yes", "no"]}}}
PROMPT = "Answer following this JSON schema: " + json.dumps(SCHEMA)


class MoonshotLike(AcmeSettings):
    provider = "Moonshot"
    provider_id = "moonshot"


class ModelScopeLike(AcmeSettings):
    provider = "ModelScope"
    provider_id = "modelscope"


@pytest.fixture
def moonshot():
    with FakeOpenAI(profile="moonshot") as fake:
        yield fake


@pytest.fixture
def modelscope():
    with FakeOpenAI(profile="modelscope", daily_limit=3) as fake:
        yield fake


def make(fake, cls=MoonshotLike, model="kimi-k2.6", **kw) -> LLMEngine:
    kw.setdefault("llm_backoff_base", 0.01)
    settings = cls(acme_api_key="sk-test", acme_base_url=fake.base_url, acme_model=model, **kw)
    return LLMEngine(settings, CollectorRegistry())


def ask(engine, text=PROMPT):
    return asyncio.run(engine.ask([{"role": "user", "content": text}], SCHEMA, extract_json))


def test_rules_per_provider_and_family():
    assert rules_for("moonshot", "kimi-k2.6").locked == SAMPLING
    assert rules_for("moonshot", "kimi-k2.6").thinking(False) == {"thinking": {"type": "disabled"}}
    assert rules_for("moonshot", "moonshot-v1-8k").locked == ()
    assert rules_for("moonshot", "kimi-k2-thinking").always_thinks
    assert rules_for("modelscope", "Qwen/Qwen3-32B").thinking(False) == {"enable_thinking": False}
    assert rules_for("modelscope", "Qwen/Qwen3-Coder-480B-A35B-Instruct").thinking is None
    assert rules_for("", "kimi-k2.6").family == "generic"  # another host may serve it otherwise


def test_kimi_k2_6_gets_only_the_parameters_it_accepts_and_no_thinking(moonshot):
    engine = make(moonshot)
    outcome = ask(engine)
    assert outcome.value == {"label": "yes"} and outcome.attempts == 1
    [req] = moonshot.chat_requests
    assert not set(SAMPLING) & set(req.body)  # locked: the provider's fixed values apply
    assert req.body["thinking"] == {"type": "disabled"}
    assert req.response_format == "json_schema" and outcome.usage.reasoning_tokens == 0


def test_thinking_setting_turns_it_on_and_reasoning_tokens_are_counted(moonshot):
    engine = make(moonshot, llm_thinking=True)
    outcome = ask(engine)
    assert moonshot.chat_requests[0].body["thinking"] == {"type": "enabled"}
    assert outcome.value == {"label": "yes"}  # the answer, not the reasoning_content
    assert 0 < outcome.usage.reasoning_tokens < outcome.usage.completion_tokens
    sample = engine.metrics.tokens.labels(model="kimi-k2.6", kind="reasoning")._value.get()
    assert sample == outcome.usage.reasoning_tokens


def test_length_with_empty_content_names_the_setting_to_raise(moonshot):
    engine = make(moonshot, llm_thinking=True, llm_max_tokens=40)  # all spent thinking
    with pytest.raises(LLMError) as info:
        ask(engine)
    message = str(info.value)
    assert info.value.kind == "truncated" and "raise LLM_MAX_TOKENS" in message and "LLM_THINKING=false" in message
    assert "LLM_MAX_TOKENS=40" in message and len(moonshot.chat_requests) == 1  # not asked again: same cut


def test_reasoning_content_is_never_taken_as_the_answer(fake_openai):
    body = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "acme-1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "", "reasoning_content": json.dumps({"label": "no"})},
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9},
    }
    fake_openai.enqueue(*[Reply(raw=json.dumps(body).encode())] * 2)
    with pytest.raises(LLMError) as info:
        ask(make(fake_openai, AcmeSettings, "acme-1"))
    assert info.value.kind == "malformed" and "empty" in str(info.value)


def test_retired_model_is_a_404_naming_the_variable(moonshot):
    with pytest.raises(LLMError) as info:
        ask(make(moonshot, model="kimi-k2-0905-preview"))
    assert info.value.kind == "not_found" and "ACME_MODEL" in str(info.value)
    assert "kimi-k2-0905-preview" in str(info.value)


def test_unknown_model_400_naming_a_parameter_fixes_it_once_and_remembers(moonshot):
    # a server of unknown make (no published rules) that locks temperature, as kimi-k2.6 does
    engine = make(moonshot, AcmeSettings)
    assert ask(engine).value == {"label": "yes"}
    sent = [r.body.get("temperature") for r in moonshot.chat_requests]
    assert sent == [0.0, 1]  # "only 1 is allowed for this model": that value, retried once
    assert engine.response_format == "json_schema"  # not misread as "format refused"
    ask(engine, PROMPT + " (next)")
    assert moonshot.chat_requests[-1].body["temperature"] == 1 and len(moonshot.chat_requests) == 3
    assert make(moonshot, AcmeSettings).describe_health()["parameter_fixes"] == {"temperature": "set to 1"}


def test_concurrent_calls_that_meet_the_same_400_all_retry_with_the_fix(moonshot):
    engine = make(moonshot, AcmeSettings, "kimi-k2.5")  # unknown make: learned, not published, rules

    async def many():
        return await asyncio.gather(
            *(engine.ask([{"role": "user", "content": f"{PROMPT} {i}"}], SCHEMA, extract_json) for i in range(6))
        )

    assert all(o.value == {"label": "yes"} for o in asyncio.run(many()))
    assert engine.response_format == "json_schema"  # no call took the 400 for "format refused"
    assert {r.response_format for r in moonshot.chat_requests} == {"json_schema"}


def test_a_refused_parameter_without_an_allowed_value_is_dropped(fake_openai):
    fake_openai.enqueue(Reply.bad_request("Unrecognized request argument supplied: max_tokens"))
    engine = make(fake_openai, AcmeSettings, "acme-x")
    assert ask(engine).value == {"label": "yes"}
    first, second = fake_openai.chat_requests
    assert "max_tokens" in first.body and "max_tokens" not in second.body
    assert second.response_format == "json_schema"


def test_a_400_naming_a_parameter_twice_is_not_retried_blindly(fake_openai):
    fake_openai.enqueue(*[Reply.bad_request("invalid temperature")] * 5)
    engine = make(fake_openai, AcmeSettings, "acme-y", llm_response_format="json_object")
    with pytest.raises(LLMError) as info:
        ask(engine)
    assert info.value.kind == "bad_request"
    # the first 400 drops temperature; the second names nothing still sent: not retried
    assert len(fake_openai.chat_requests) == 2


def test_json_schema_500_that_persists_steps_down_and_shows_the_format(fake_openai):
    fake_openai.json_schema_status = 500  # llama-cpp-python's server
    engine = make(fake_openai, AcmeSettings, "acme-1")
    assert ask(engine).value == {"label": "yes"}
    assert [r.response_format for r in fake_openai.chat_requests] == ["json_schema", "json_schema", "json_object"]
    assert engine.describe_health()["response_format"] == "json_object"
    ask(engine, PROMPT + " (next)")
    assert fake_openai.chat_requests[-1].response_format == "json_object" and len(fake_openai.chat_requests) == 4


def test_an_outage_is_not_turned_into_a_downgrade(fake_openai):
    fake_openai.enqueue(*[Reply.server_error(500)] * 20)  # every format fails: a real outage
    engine = make(fake_openai, AcmeSettings, "acme-1", llm_max_retries=3)
    with pytest.raises(LLMError) as info:
        ask(engine)
    assert info.value.kind == "server" and engine.response_format == "json_schema"
    assert all(r.response_format in ("json_schema", "json_object") for r in fake_openai.chat_requests)


def test_500s_after_a_format_worked_are_an_outage_not_a_refusal(fake_openai):
    engine = make(fake_openai, AcmeSettings, "acme-1")
    ask(engine)  # json_schema works with this server
    fake_openai.enqueue(*[Reply.server_error(500)] * 3)
    assert ask(engine, PROMPT + " (storm)").attempts == 4
    assert {r.response_format for r in fake_openai.chat_requests} == {"json_schema"}
    assert engine.response_format == "json_schema"


def test_one_500_each_for_two_tasks_is_no_evidence_about_the_format(fake_openai):
    # both first calls go out at once; the retries only after a backoff of at least 0.25 s
    engine = make(fake_openai, AcmeSettings, "acme-1", llm_backoff_base=0.5)
    fake_openai.enqueue(Reply.server_error(500), Reply.server_error(500))

    async def both():
        return await asyncio.gather(
            *(engine.ask([{"role": "user", "content": PROMPT + t}], SCHEMA, extract_json) for t in ("a", "b"))
        )

    assert [o.attempts for o in asyncio.run(both())] == [2, 2]
    assert {r.response_format for r in fake_openai.chat_requests} == {"json_schema"}


def test_gateway_errors_never_step_the_format_down(fake_openai):
    fake_openai.enqueue(Reply.server_error(503), Reply.server_error(502), Reply.server_error(503))
    engine = make(fake_openai, AcmeSettings, "acme-1")
    assert ask(engine).attempts == 4
    assert {r.response_format for r in fake_openai.chat_requests} == {"json_schema"}


def test_one_500_is_a_blip_retried_in_the_same_format(fake_openai):
    fake_openai.enqueue(Reply.server_error(500))
    engine = make(fake_openai, AcmeSettings, "acme-1")
    assert ask(engine).attempts == 2
    assert [r.response_format for r in fake_openai.chat_requests] == ["json_schema", "json_schema"]


def test_modelscope_hybrid_qwen3_is_told_not_to_think_coder_gets_no_field(modelscope):
    ask(make(modelscope, ModelScopeLike, "Qwen/Qwen3-32B"))
    ask(make(modelscope, ModelScopeLike, "Qwen/Qwen3-Coder-480B-A35B-Instruct"))
    hybrid, coder = modelscope.chat_requests
    assert hybrid.body["enable_thinking"] is False and "enable_thinking" not in coder.body
    assert coder.body["temperature"] == 0.0  # Qwen3-Coder takes sampling parameters


def test_modelscope_daily_allowance_used_up_is_a_quota_error_not_retried(modelscope):
    engine = make(modelscope, ModelScopeLike, "Qwen/Qwen3-Coder-480B-A35B-Instruct")
    for i in range(3):
        ask(engine, PROMPT + str(i))
    with pytest.raises(LLMError) as info:
        ask(engine, PROMPT + " (over)")
    assert info.value.kind == "quota" and "quota" in str(info.value)
    assert len(modelscope.chat_requests) == 4  # waiting seconds does not bring a daily allowance back
