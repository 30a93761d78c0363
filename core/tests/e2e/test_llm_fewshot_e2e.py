"""An LLM backend learns from a real Label Studio 1.23's annotations: annotate tasks, press
Train (START_TRAINING), and the few-shot version it promotes pre-annotates the rest.

``prelabel serve kimi`` runs as a real process against the fake provider with Moonshot's
profile on loopback; the fake answers a task right only when the prompt holds an annotated
example with the task's code word (prelabel.testing.keyword_tasks), so right answers on the
unannotated tasks can only come from examples retrieved from what the annotators saved.
Everything is checked by reading what Label Studio stored.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from prelabel.testing.fake_openai import FakeOpenAI
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.keyword_tasks import CONFIG, CONTROL, examples_help, keyword_tasks

pytestmark = pytest.mark.e2e

NO_RETRY = {"max_retries": 0}
N_ANNOTATED, N_REST = 24, 12


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(profile="moonshot", api_key="sk-e2e", responder=examples_help()) as server:
        yield server


@pytest.fixture(scope="module")
def backend(label_studio: Any, fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "MOONSHOT_API_KEY": "sk-e2e",
        "MOONSHOT_BASE_URL": fake.base_url,
        "LLM_BACKOFF_BASE": "0.01",
        "LLM_FEWSHOT_EVAL_CALLS": "12",
    }
    with BackendProcess("kimi", home=tmp_path_factory.mktemp("kimi-home"), env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def project(label_studio: Any) -> Any:
    sdk = label_studio.client("pat")
    created = sdk.projects.create(title="prelabel e2e: kimi few-shot", label_config=CONFIG, request_options=NO_RETRY)
    items = keyword_tasks(N_ANNOTATED + N_REST, seed=5)
    sdk.projects.import_tasks(id=created.id, request=[{"text": text} for _, text, _ in items], request_options=NO_RETRY)
    truth = {text: label for _, text, label in items}
    tasks = {t.id: (t.data["text"], truth[t.data["text"]]) for t in sdk.tasks.list(project=created.id, page_size=100)}
    ids = sorted(tasks)
    yield {"id": created.id, "sdk": sdk, "tasks": tasks, "annotated": ids[:N_ANNOTATED], "rest": ids[N_ANNOTATED:]}
    sdk.projects.delete(id=created.id)


def stored(sdk: Any, project_id: int) -> dict[int, list[Any]]:
    by_task: dict[int, list[Any]] = {}
    for pred in sdk.predictions.list(project=project_id, request_options=NO_RETRY):
        by_task.setdefault(pred.task, []).append(pred)
    return by_task


def run_job(backend: Any, project_id: int, **params: Any) -> dict:
    with backend.http() as http:
        resp = http.post("/jobs", json={"kind": "predict", "project": project_id, "params": params})
    assert resp.status_code == 201, resp.text
    job = backend.wait_job(resp.json()["id"], timeout=180)
    assert job["status"] == "succeeded", job
    return job["result"]


def test_annotate_train_and_the_new_version_labels_the_rest(project: dict, backend: Any, fake: FakeOpenAI) -> None:
    sdk, pid = project["sdk"], project["id"]
    ml = sdk.ml.create(project=pid, url=backend.url, title="kimi few-shot", request_options=NO_RETRY)
    assert ml.state == "CO", (ml.state, ml.error_message)
    base = ml.model_version
    for tid in project["annotated"]:
        label = project["tasks"][tid][1]
        sdk.annotations.create(
            id=tid,
            result=[{"from_name": CONTROL, "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
            request_options=NO_RETRY,
        )

    pressed = time.time()
    sdk.ml.train(id=ml.id, request_options=NO_RETRY)  # Label Studio sends START_TRAINING to /webhook
    job = backend.wait_new_job(pid, "train", since=pressed - 1, timeout=180)
    assert job["status"] == "succeeded", job
    result = job["result"]
    print(f"\ntraining: {result['reason']}; {result['calls']} calls, {result['tokens']} tokens")
    assert result["promoted"] is True and result["train_examples"] + result["heldout_examples"] == N_ANNOTATED
    assert result["few_shot_sentiment_accuracy"] == 1.0 > result["zero_shot_sentiment_accuracy"]
    assert result["calls"] <= 12
    version = result["model_version"]
    assert sdk.ml.get(id=ml.id, request_options=NO_RETRY).model_version == version != base
    versions = sdk.ml.with_raw_response.list_model_versions(id=ml.id, request_options=NO_RETRY).response.json()
    assert version in versions["versions"]

    # a dry run: a sample predicted, nothing stored, the whole project's cost estimated
    calls_before = len(fake.chat_requests)
    dry = run_job(backend, pid, dry_run=True, sample=4, only_unlabeled=True)
    assert dry["dry_run"] is True and dry["to_predict"] == N_REST and dry["sampled"] == 4
    assert len(fake.chat_requests) - calls_before == 4
    assert dry["estimate"]["calls"] == N_REST and dry["estimate"]["total_tokens"] > 0
    assert stored(sdk, pid) == {}

    # the prediction job pre-annotates the rest with the new version, and counts its tokens
    done = run_job(backend, pid, only_unlabeled=True)
    assert done["predicted"] == N_REST and done["skipped_labeled"] == N_ANNOTATED
    assert done["usage"]["answers"] == N_REST and done["usage"]["total_tokens"] > 0
    predictions = stored(sdk, pid)
    assert sorted(predictions) == project["rest"]
    for tid in project["rest"]:
        [pred] = predictions[tid]
        assert pred.model_version == version
        assert pred.result[0]["value"]["choices"] == [project["tasks"][tid][1]], project["tasks"][tid]
        assert 0 < pred.score <= 1
    few_shot_prompts = Counter(
        "Examples labeled by this project's annotators" in r.prompt for r in fake.chat_requests[-N_REST:]
    )
    assert few_shot_prompts == {True: N_REST}
