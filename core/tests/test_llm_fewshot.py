"""Few-shot training of LLM backends on the fake provider's profiles (Moonshot, ModelScope, a
self-hosted vLLM/llama.cpp-like server): examples chosen from annotations, evaluation that
decides promotion within a bounded number of calls, and scores."""

from __future__ import annotations

import math

import pytest
from pydantic import SecretStr

from prelabel.labelconfig import parse_label_config
from prelabel.llm import LLMBackend, LLMSettings
from prelabel.llm.evaluate import control_metrics, decide, sign_test, task_score
from prelabel.llm.fewshot import ExampleIndex, estimate_tokens, examples_from_tasks, render_examples, split, tokens
from prelabel.llm.schema import task_spec
from prelabel.testing import configs, make_runtime, serve_in_process
from prelabel.testing.client import per_task_results, wait_job
from prelabel.testing.fake_openai import FakeOpenAI, Reply
from prelabel.testing.keyword_tasks import CODES, LABELS, annotated, examples_help, examples_hurt, keyword_tasks

PROJECT = "12.1"
N_ANNOTATED = 40
EVAL_CALLS = 12  # LLM_FEWSHOT_EVAL_CALLS: at most 6 held-out tasks, two answers each

# (fake profile, provider_id of the settings, model): what kimi, modelscope_qwen and openai_compatible send
PROFILES = {
    "moonshot": ("moonshot", "kimi-k2.6"),
    "modelscope": ("modelscope", "Qwen/Qwen3-235B-A22B-Instruct-2507"),
    "self-hosted": ("", "fake-model"),
}


def backend_for(provider_id: str, model: str) -> type[LLMBackend]:
    class Settings(LLMSettings):
        field_roles = {
            "api_key": "acme_api_key",
            "model": "acme_model",
            "base_url": "acme_base_url",
            "timeout": "acme_timeout",
        }
        acme_api_key: SecretStr = SecretStr("sk-test")
        acme_model: str = model
        acme_base_url: str = "http://127.0.0.1:9/v1"
        acme_timeout: float = 10.0

    Settings.provider_id = provider_id

    class Backend(LLMBackend):
        backend_id = "acme"
        default_port = 9299

    Backend.Settings = Settings
    return Backend


@pytest.fixture(params=sorted(PROFILES))
def profile(request):
    return request.param


@pytest.fixture
def fake(profile):
    with FakeOpenAI(profile=PROFILES[profile][0] or None) as server:
        yield server


@pytest.fixture
def make_client(tmp_path, fake, profile):
    opened = []

    def make(**settings):
        backend = backend_for(PROFILES[profile][0], PROFILES[profile][1])
        rt = make_runtime(
            backend,
            tmp_path / "home",
            {
                "acme_base_url": fake.base_url,
                "llm_backoff_base": 0.01,
                "max_concurrent": 3,
                "llm_fewshot_eval_calls": EVAL_CALLS,
                **settings,
            },
        )
        ctx = serve_in_process(rt)
        client = ctx.__enter__()
        opened.append((ctx, rt))
        client.post("/setup", json={"project": PROJECT, "schema": configs.TEXT_CHOICES})
        return client

    yield make
    for ctx, rt in opened:
        ctx.__exit__(None, None, None)
        rt.close()


def train(client, tasks: list[dict]) -> dict:
    resp = client.post("/train", json={"annotations": tasks, "project": PROJECT, "label_config": configs.TEXT_CHOICES})
    assert resp.status_code == 201, resp.text
    job = wait_job(client, resp.json()["job"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    return job["result"]


def predict(client, tasks: list[tuple[int, str, str]]) -> list[dict]:
    body = {"tasks": [{"id": tid, "data": {"text": text}} for tid, text, _ in tasks], "project": PROJECT}
    resp = client.post("/predict", json=body)
    assert resp.status_code == 200, resp.text
    return per_task_results(resp.json())


def test_examples_that_help_are_promoted_and_label_the_rest(make_client, fake, profile):
    client = make_client()
    base = client.post("/setup", json={"project": PROJECT, "schema": configs.TEXT_CHOICES}).json()["model_version"]
    fake.responder = examples_help(logprob=-0.2)
    fake.enqueue(Reply.rate_limited(retry_after=0.05))  # a 429 during evaluation is waited out and retried
    before = len(fake.chat_requests)
    result = train(client, annotated(keyword_tasks(N_ANNOTATED)))
    training_calls = len(fake.chat_requests) - before

    assert result["promoted"] is True and result["reason"].startswith("promoted: ")
    assert result["heldout_examples"] == EVAL_CALLS // 2 and result["train_examples"] == N_ANNOTATED - EVAL_CALLS // 2
    assert result["few_shot_sentiment_accuracy"] == 1.0
    assert result["few_shot_sentiment_accuracy"] > result["zero_shot_sentiment_accuracy"]
    assert result["few_shot_score"] > result["zero_shot_score"]
    # the stated bound: two answers per held-out task, within LLM_FEWSHOT_EVAL_CALLS; the 429 added one request
    evaluation = result["evaluation"]
    assert evaluation["answers_bound"] <= EVAL_CALLS
    assert evaluation["zero_shot"]["answers"] + evaluation["few_shot"]["answers"] == evaluation["answers_bound"]
    assert training_calls == evaluation["answers_bound"] + 1 == result["calls"]
    assert fake.max_active <= 3  # MAX_CONCURRENT
    assert (
        result["tokens"]
        == sum(evaluation[a]["prompt_tokens"] + evaluation[a]["completion_tokens"] for a in ("zero_shot", "few_shot"))
        > 0
    )

    version = client.post("/setup", json={"project": PROJECT, "schema": configs.TEXT_CHOICES}).json()["model_version"]
    assert version == result["model_version"] != base
    listed = client.get("/versions").json()
    assert version in listed["versions"]
    [record] = listed["projects"]
    assert record["serving"] == version and record["refused"] == []
    assert record["trained"][0]["metrics"]["few_shot_sentiment_accuracy"] == 1.0
    assert record["trained"][0]["reason"] == result["reason"]

    unseen = keyword_tasks(12, seed=7, start_id=500)  # new texts, the same code words
    results = predict(client, unseen)
    assert [r["result"][0]["value"]["choices"] for r in results] == [[label] for _, _, label in unseen]
    assert all(r["model_version"] == version for r in results)
    asked = fake.chat_requests[-1].body
    if profile == "self-hosted":  # vLLM / llama.cpp return token logprobs: the score is the answer's probability
        assert asked.get("logprobs") is True
        assert all(math.isclose(r["score"], math.exp(-0.2), rel_tol=1e-4) for r in results)
    else:  # Moonshot and ModelScope do not document logprobs: not asked; agreement with the neighbours instead
        assert "logprobs" not in asked
        assert all(0 < r["score"] <= 1 for r in results)
    prompt = fake.chat_requests[-1].prompt
    assert "Examples labeled by this project's annotators" in prompt


def test_examples_that_hurt_keep_the_served_version(make_client, fake):
    client = make_client()
    fake.responder = examples_help()
    first = train(client, annotated(keyword_tasks(N_ANNOTATED)))
    assert first["promoted"] is True
    fake.responder = examples_hurt()
    before = len(fake.chat_requests)
    refused = train(client, annotated(keyword_tasks(N_ANNOTATED, seed=3, start_id=100)))
    assert len(fake.chat_requests) - before <= EVAL_CALLS
    assert refused["promoted"] is False and refused["reason"].startswith("refused: ")
    assert refused["few_shot_score"] < refused["zero_shot_score"]
    assert refused["zero_shot_sentiment_accuracy"] == 1.0
    assert refused["model_version"] == first["model_version"]  # the old version is kept
    assert (
        client.post("/setup", json={"project": PROJECT, "schema": configs.TEXT_CHOICES}).json()["model_version"]
        == first["model_version"]
    )
    [record] = client.get("/versions").json()["projects"]
    assert record["serving"] == first["model_version"] and len(record["trained"]) == 1
    assert record["refused"][0]["reason"] == refused["reason"]
    assert record["refused"][0]["metrics"]["few_shot_score"] == refused["few_shot_score"]


def test_the_token_budget_stops_evaluation_early(make_client, fake):
    client = make_client(llm_fewshot_eval_tokens=100, max_concurrent=1)
    fake.responder = examples_help()
    result = train(client, annotated(keyword_tasks(N_ANNOTATED)))
    evaluation = result["evaluation"]
    assert 0 < evaluation["heldout_tasks"] < EVAL_CALLS // 2
    assert "LLM_FEWSHOT_EVAL_TOKENS=100" in evaluation["stopped_early"]
    assert len(fake.chat_requests) == 2 * evaluation["heldout_tasks"]


def test_too_few_annotations_fail_the_job_saying_how_many(make_client, fake):
    client = make_client()
    resp = client.post(
        "/train",
        json={"annotations": annotated(keyword_tasks(3)), "project": PROJECT, "label_config": configs.TEXT_CHOICES},
    )
    job = wait_job(client, resp.json()["job"], timeout=60)
    assert job["status"] == "failed" and "need at least LLM_FEWSHOT_MIN_EXAMPLES=4" in job["error"]
    assert fake.chat_requests == []


# -- examples, selection, metrics (no provider) --------------------------------------------------------------------


def choices_spec():
    return task_spec(parse_label_config(configs.TEXT_CHOICES))


def test_selection_covers_every_label_and_keeps_the_budget():
    spec = choices_spec()
    examples = examples_from_tasks(annotated(keyword_tasks(30)), spec)
    index = ExampleIndex.build(examples)
    picked = index.select(spec, "a note about zorblat", k=4, budget=10_000)
    assert len(picked) == 4
    assert picked[-1][0].text.count("zorblat") == 1  # the most similar sits next to the task
    assert {ex.answer["sentiment"] for ex, _ in picked} == set(LABELS)  # coverage
    one = examples[0].tokens
    assert len(index.select(spec, "zorblat", k=8, budget=2 * one + one // 2)) == 2  # the budget caps it


def test_index_round_trips_through_the_version_directory(tmp_path):
    spec = choices_spec()
    index = ExampleIndex.build(examples_from_tasks(annotated(keyword_tasks(24)), spec))
    index.save(tmp_path / "fewshot")
    loaded = ExampleIndex.load(tmp_path / "fewshot")
    assert [e.task_id for e in loaded.examples] == [e.task_id for e in index.examples]
    assert loaded.scores("quinmor today") == index.scores("quinmor today")
    assert loaded.scores("words never seen") == [0.0] * 24


def test_split_is_deterministic_and_bounded():
    examples = examples_from_tasks(annotated(keyword_tasks(40)), choices_spec())
    train1, held1 = split(examples, 0.25, max_heldout=50)
    train2, held2 = split(list(reversed(examples)), 0.25, max_heldout=50)
    assert [e.task_id for e in held1] == [e.task_id for e in held2] and len(held1) == 10
    assert len(split(examples, 0.25, max_heldout=3)[1]) == 3
    assert not {e.task_id for e in train1} & {e.task_id for e in held1}


def test_span_and_textarea_examples():
    ner = task_spec(parse_label_config(configs.TEXT_NER))
    text = "Ada Lovelace met Charles Babbage in London."
    task = {
        "id": 1,
        "data": {"text": text},
        "annotations": [
            {
                "result": [
                    {
                        "from_name": "label",
                        "to_name": "text",
                        "type": "labels",
                        "value": {"start": 17, "end": 32, "labels": ["Person"]},
                    },
                    {
                        "from_name": "label",
                        "to_name": "text",
                        "type": "labels",
                        "value": {"start": 36, "end": 42, "text": "London", "labels": ["Location"]},
                    },
                ]
            }
        ],
    }
    [example] = examples_from_tasks([task], ner)
    assert example.answer == {
        "label": [{"label": "Person", "text": "Charles Babbage"}, {"label": "Location", "text": "London"}]
    }
    block = render_examples(ner, [example])
    assert '"text": "Charles Babbage"' in block and text in block

    area = task_spec(parse_label_config(configs.TEXT_TEXTAREA))
    name = area.controls[0].name
    task = {
        "id": 2,
        "data": {"text": "long text"},
        "annotations": [
            {"was_cancelled": True, "result": [{"from_name": name, "type": "textarea", "value": {"text": ["no"]}}]},
            {"result": [{"from_name": name, "to_name": "text", "type": "textarea", "value": {"text": ["a summary"]}}]},
        ],
    }
    [example] = examples_from_tasks([task], area)
    assert example.answer == {name: "a summary"}


def test_span_metrics_and_task_scores():
    ner = task_spec(parse_label_config(configs.TEXT_NER))
    cs = ner.controls[0]

    def span(label, start, end):
        return {"from_name": cs.name, "type": "labels", "value": {"start": start, "end": end, "labels": [label]}}

    truth = [span("Person", 0, 3), span("Location", 10, 16)]
    pred = [span("Person", 0, 3), span("Person", 20, 25)]
    metrics = control_metrics(cs, [(truth, pred)])
    assert metrics == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert task_score(ner, truth, pred) == 0.5 and task_score(ner, truth, None) == 0.0


def test_choices_metrics_macro_f1():
    spec = choices_spec()
    cs = spec.controls[0]

    def choice(label):
        return [{"from_name": "sentiment", "type": "choices", "value": {"choices": [label]}}]

    pairs = [
        (choice("positive"), choice("positive")),
        (choice("negative"), choice("positive")),
        (choice("neutral"), choice("neutral")),
        (choice("negative"), None),
    ]
    metrics = control_metrics(cs, pairs)
    assert metrics["accuracy"] == 0.5
    # positive: tp 1 fp 1 -> 2/3; negative: fn 2 -> 0; neutral: 1
    assert math.isclose(metrics["macro_f1"], (2 / 3 + 0 + 1) / 3)


def test_decision_rule_on_small_sets():
    assert decide([1, 0, 1], [1, 1, 1], 0.0)["promote"] is True
    tie = decide([1, 0, 1], [1, 0, 1], 0.0)
    assert tie["promote"] is True and tie["better"] == tie["worse"] == 0  # not worse: promoted
    worse = decide([1, 1, 1, 1], [1, 1, 1, 0], 0.0)
    assert worse["promote"] is False and "LLM_FEWSHOT_TOLERANCE=0" in worse["reason"]
    assert decide([1, 1, 1, 1], [1, 1, 1, 0], 0.25)["promote"] is True  # one task in four, within tolerance
    assert decide([], [], 0.0)["promote"] is False
    assert math.isclose(sign_test(6, 0), 2 / 64) and sign_test(0, 0) == 1.0


def test_tokens_and_estimates_cover_cjk():
    assert tokens("Hello, World 42!") == ["hello", "world", "42"]
    assert tokens("技术文档") == ["技", "术", "文", "档", "技术", "术文", "文档"]
    assert estimate_tokens("abcdefgh") == 2 and estimate_tokens("技术") == 2
    assert all(code.isalpha() for code in CODES)


def test_a_server_that_refuses_logprobs_gets_them_dropped(tmp_path):
    with FakeOpenAI() as fake:  # a self-hosted server: LLM_LOGPROBS=auto asks for them
        fake.enqueue(Reply.bad_request("Unrecognized request argument supplied: logprobs"))
        rt = make_runtime(
            backend_for("", "fake-model"), tmp_path / "home", {"acme_base_url": fake.base_url, "llm_backoff_base": 0.01}
        )
        with serve_in_process(rt) as client:
            client.post("/setup", json={"project": PROJECT, "schema": configs.TEXT_CHOICES})
            [item] = predict(client, [(1, "a zorblat note", "positive")])
            assert item["result"] and "error" not in item
            assert [r.body.get("logprobs") for r in fake.chat_requests] == [True, None]
            assert client.get("/health").json()["parameter_fixes"] == {"logprobs": "dropped"}
        rt.close()


def test_dry_run_params_are_checked_when_the_job_is_asked_for(tmp_path):
    rt = make_runtime(backend_for("", "fake-model"), tmp_path / "home")
    with serve_in_process(rt) as client:
        for params, needle in (
            ({"dry_run": True, "sample": 0}, "sample must be an integer from 1 to 1000"),
            ({"dry_run": "yes"}, "dry_run must be true or false"),
        ):
            resp = client.post("/jobs", json={"kind": "predict", "project": 3, "params": params})
            assert resp.status_code == 422 and needle in resp.text, resp.text
        assert client.get("/jobs").json() == {"jobs": []}  # nothing was created
    rt.close()
