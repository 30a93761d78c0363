"""LLMBackend through the real app (in process) and the fake provider on loopback."""

from __future__ import annotations

import json
import logging

import click
import pytest
from acme_llm import AcmeBackend

from prelabel.cli import load_settings
from prelabel.labelconfig import parse_label_config
from prelabel.testing import configs, make_runtime, serve_in_process
from prelabel.testing.client import per_task_results
from prelabel.testing.fake_openai import FakeRequest, Reply

INTERACTIVE = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text"/>
  <Choices name="sentiment" toName="text"><Choice value="positive"/><Choice value="negative"/></Choices>
</View>"""


@pytest.fixture
def client(tmp_path, fake_openai):
    rt = make_runtime(
        AcmeBackend,
        tmp_path / "home",
        {
            "acme_api_key": "sk-test",
            "acme_base_url": fake_openai.base_url,
            "llm_backoff_base": 0.01,
            "max_concurrent": 4,
        },
    )
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def predict(client, tasks, config, context=None, project="3.1"):
    resp = client.post(
        "/predict",
        json={
            "tasks": tasks,
            "label_config": config,
            "project": project,
            "params": {"login": None, "password": None, "context": context},
        },
    )
    assert resp.status_code == 200, resp.text
    return per_task_results(resp.json())


def task_text(req: FakeRequest) -> str:
    return req.prompt.split("<text>\n", 1)[1].split("\n</text>", 1)[0]


def test_spans_come_back_with_offsets_in_the_task_text(client, fake_openai):
    text = "Ada Lovelace worked with Charles Babbage in London."
    fake_openai.responder = lambda req: {
        "label": [{"label": "Person", "text": "Charles Babbage"}, {"label": "LOC", "text": "London"}]
    }
    [item] = predict(client, [{"id": 1, "data": {"text": text}}], configs.TEXT_NER)
    spans = {(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in item["result"]}
    assert spans == {(25, 40, "Person"), (44, 50, "Location")}
    assert not parse_label_config(configs.TEXT_NER).interface.validate_prediction(item, return_errors=True)


def test_a_choice_outside_the_config_is_dropped_and_logged(client, fake_openai, caplog):
    fake_openai.responder = lambda req: {"sentiment": "furious"}
    with caplog.at_level(logging.WARNING):
        [item] = predict(client, [{"id": 4, "data": {"text": "grr"}}], configs.TEXT_CHOICES)
    assert item["result"] == [] and "error" not in item
    assert any(
        "task 4" in r.getMessage() and "'furious' is not one of the project's choices" in r.getMessage()
        for r in caplog.records
    )


def test_one_failed_task_never_fails_the_batch(client, fake_openai):
    def responder(req):
        if "poison" in task_text(req):
            return Reply.quota_exhausted()
        return {"sentiment": "positive"}

    fake_openai.responder = responder
    tasks = [{"id": i, "data": {"text": f"text {i}" + (" poison" if i == 2 else "")}} for i in range(5)]
    results = predict(client, tasks, configs.TEXT_CHOICES)
    assert len(results) == 5
    assert "quota or balance is used up" in results[2]["error"] and results[2]["result"] == []
    for i in (0, 1, 3, 4):
        assert results[i]["result"][0]["value"] == {"choices": ["positive"]}, results[i]


def test_a_batch_runs_concurrently_under_max_concurrent(client, fake_openai):
    fake_openai.latency = 0.2  # long enough that every slot fills even on a busy machine
    results = predict(client, [{"id": i, "data": {"text": f"t{i}"}} for i in range(20)], configs.TEXT_CHOICES)
    assert len(results) == 20 and all(r["result"] for r in results)
    assert fake_openai.max_active == 4  # MAX_CONCURRENT, from one batch of 20


def test_an_empty_text_is_a_task_error(client, fake_openai):
    results = predict(
        client, [{"id": 1, "data": {"text": "   "}}, {"id": 2, "data": {"text": "ok"}}], configs.TEXT_CHOICES
    )
    assert "no text to label" in results[0]["error"] and "'text'" in results[0]["error"]
    assert "error" not in results[1] and len(fake_openai.chat_requests) == 1


def test_interactive_prompt_is_used_remembered_and_echoed(client, fake_openai):
    fake_openai.responder = lambda req: {"sentiment": "negative"}
    context = {
        "result": [
            {
                "from_name": "prompt",
                "to_name": "text",
                "type": "textarea",
                "value": {"text": ["Sarcasm counts as negative."]},
            }
        ]
    }
    [item] = predict(client, [{"id": 1, "data": {"text": "great, just great"}}], INTERACTIVE, context)
    assert fake_openai.chat_requests[-1].prompt.startswith("Sarcasm counts as negative.")
    types = sorted(r["from_name"] for r in item["result"])
    assert types == ["prompt", "sentiment"]
    predict(client, [{"id": 2, "data": {"text": "fine"}}], INTERACTIVE)  # batch, later: the project's prompt
    assert fake_openai.chat_requests[-1].prompt.startswith("Sarcasm counts as negative.")
    predict(client, [{"id": 3, "data": {"text": "fine"}}], INTERACTIVE, project="99.1")  # another project
    assert "Sarcasm" not in fake_openai.chat_requests[-1].prompt


def test_token_usage_is_logged_per_prediction_and_totalled_in_metrics(client, fake_openai, caplog):
    with caplog.at_level(logging.INFO):
        predict(client, [{"id": 1, "data": {"text": "a"}}, {"id": 2, "data": {"text": "b"}}], configs.TEXT_CHOICES)
    lines = [r for r in caplog.records if "tokens prompt=" in r.getMessage()]
    assert len(lines) == 2 and {r.task_id for r in lines} == {1, 2}
    total = sum(r.prompt_tokens for r in lines)
    metrics = client.get("/metrics").text
    assert f'prelabel_llm_tokens_total{{kind="prompt",model="acme-1"}} {float(total)}' in metrics
    assert 'prelabel_llm_calls_total{outcome="ok"} 2.0' in metrics


def test_identical_tasks_are_sent_once(client, fake_openai):
    tasks = [{"id": i, "data": {"text": "the same text"}} for i in range(6)]
    results = predict(client, tasks, configs.TEXT_CHOICES)
    assert all(r["result"] for r in results) and len(fake_openai.chat_requests) == 1


def test_health_names_the_model_and_how_it_is_called(client):
    body = client.get("/health").json()
    assert body["model"] == "acme-1" and body["model_version"].startswith("acme-1-")
    assert (body["response_format"], body["thinking"], body["model_family"]) == ("json_schema", False, "generic")


def test_health_shows_the_format_after_a_step_down(client, fake_openai):
    fake_openai.json_schema_status = 500  # as llama-cpp-python's server answers json_schema
    results = predict(client, [{"id": 1, "data": {"text": "good"}}], configs.TEXT_CHOICES)
    assert results[0]["result"], results
    assert client.get("/health").json()["response_format"] == "json_object"


def _version(tmp_path, fake_openai, **settings) -> str:
    rt = make_runtime(
        AcmeBackend, tmp_path / "v", {"acme_api_key": "k", "acme_base_url": fake_openai.base_url, **settings}
    )
    try:
        with serve_in_process(rt) as c:
            setup = c.post("/setup", json={"project": "1.1", "schema": configs.TEXT_CHOICES}).json()["model_version"]
            [item] = predict(c, [{"id": 1, "data": {"text": "x"}}], configs.TEXT_CHOICES)
            assert item["model_version"] == setup  # or Label Studio predicts the same tasks again
            return setup
    finally:
        rt.close()


def test_model_version_follows_model_and_prompts_and_nothing_else(tmp_path, fake_openai):
    base = _version(tmp_path, fake_openai)
    assert base == _version(tmp_path, fake_openai)  # stable across restarts
    assert base == _version(tmp_path, fake_openai, max_concurrent=3, llm_temperature=0.5, acme_timeout=9)
    changed = {
        _version(tmp_path, fake_openai, acme_model="acme-2"),
        _version(tmp_path, fake_openai, llm_prompt="These are tweets."),
        _version(tmp_path, fake_openai, llm_system_prompt="Label like an expert."),
    }
    assert len(changed) == 3 and base not in changed


def test_llm_prompt_setting_is_the_default_instruction(tmp_path, fake_openai):
    rt = make_runtime(
        AcmeBackend,
        tmp_path / "h",
        {"acme_api_key": "k", "acme_base_url": fake_openai.base_url, "llm_prompt": "Texts are product reviews."},
    )
    with serve_in_process(rt) as c:
        predict(c, [{"id": 1, "data": {"text": "x"}}], configs.TEXT_CHOICES)
    rt.close()
    assert fake_openai.chat_requests[0].prompt.startswith("Texts are product reviews.")


def test_schema_is_sent_as_structured_output(client, fake_openai):
    predict(client, [{"id": 1, "data": {"text": "x"}}], configs.TEXT_CHOICES_MULTIPLE)
    rf = fake_openai.chat_requests[0].body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["schema"]["properties"]["topics"]["items"]["enum"] == ["sports", "politics", "tech"]


def test_missing_and_empty_keys_stop_serving_with_the_variable_name(monkeypatch):
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    with pytest.raises(click.ClickException) as info:
        load_settings(AcmeBackend)
    assert "ACME_API_KEY is required" in info.value.message
    monkeypatch.setenv("ACME_API_KEY", "")
    with pytest.raises(click.ClickException) as info:
        load_settings(AcmeBackend)
    assert "ACME_API_KEY is empty" in info.value.message


def test_supported_controls_and_refusal(client):
    resp = client.post("/setup", json={"project": "5.1", "schema": configs.AUDIO_RATING})
    assert resp.status_code == 400 and "Rating on Audio" in resp.json()["error"]
    resp = client.post("/setup", json={"project": "5.1", "schema": INTERACTIVE})
    assert resp.status_code == 200 and resp.json()["model_version"].startswith("acme-1-")
    only_prompt = '<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/></View>'
    assert client.post("/setup", json={"project": "5.1", "schema": only_prompt}).status_code == 400


def test_results_validate_for_every_control_type(client, fake_openai):
    xml = """<View><Text name="text" value="$text"/>
      <Rating name="stars" toName="text"/><Number name="n" toName="text"/>
      <Taxonomy name="tax" toName="text"><Choice value="A"><Choice value="B"/></Choice></Taxonomy>
      <TextArea name="summary" toName="text"/></View>"""
    fake_openai.responder = lambda req: json.dumps({"stars": 4, "n": 2.5, "tax": ["A / B"], "summary": "s"})
    [item] = predict(client, [{"id": 1, "data": {"text": "x"}}], xml)
    assert {r["type"] for r in item["result"]} == {"rating", "number", "taxonomy", "textarea"}
    assert not parse_label_config(xml).interface.validate_prediction(item, return_errors=True)


def test_an_unexpected_error_stays_with_its_task(client, fake_openai, monkeypatch):
    from prelabel.llm import answer

    original = answer.to_regions

    def flaky(spec, value, texts):
        if "boom" in texts["text"]:
            raise RuntimeError("a bug in mapping")
        return original(spec, value, texts)

    monkeypatch.setattr("prelabel.llm.backend.to_regions", flaky)
    results = predict(
        client, [{"id": 1, "data": {"text": "fine"}}, {"id": 2, "data": {"text": "boom"}}], configs.TEXT_CHOICES
    )
    assert results[0]["result"] and "error" not in results[0]
    assert results[1]["result"] == [] and "a bug in mapping" in results[1]["error"]
    assert len(fake_openai.chat_requests) == 2  # the batch was not re-run task by task
