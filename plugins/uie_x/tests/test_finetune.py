"""Fine-tuning from annotations: the train job converts them, fine-tunes a tiny random UIE,
reports P/R/F1 on held-out tasks, and the promoted version predicts the learned spans."""

import json
import random
from pathlib import Path

import pytest
from prelabel_uie_x import UieBackend
from uie_x_corpus import NER_CONFIG, ner_tasks, sentence, wait_job

from prelabel import parse_label_config
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process

FINETUNE = {
    "uie_max_seq_len": 64,
    "uie_epochs": 100,
    "uie_max_steps": 400,
    "uie_learning_rate": 2e-3,
    "uie_train_batch_size": 8,
    "uie_val_split": 0.2,
}
PROJECT = "11.1700000000"


def held_out(n: int = 20) -> list[tuple[str, list[tuple[int, int, str]]]]:
    rng = random.Random(1234)  # new combinations of the corpus' names, places and companies
    return [sentence(rng, chinese=i % 4 == 0) for i in range(n)]


def predict(client, texts):
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(texts)]
    resp = client.post("/predict", json={"tasks": tasks, "project": PROJECT})
    assert resp.status_code == 200, resp.text
    return per_task_results(resp.json())


def exact_spans(results) -> list[set]:
    return [
        {(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in item["result"]} for item in results
    ]


def scores(predicted: list[set], truth) -> tuple[float, float]:
    gold = [set(spans) for _, spans in truth]
    hits = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    return hits / max(1, sum(map(len, predicted))), hits / sum(map(len, gold))


@pytest.fixture(scope="module")
def trained(tiny_uie, tmp_path_factory):
    rt = make_runtime(
        UieBackend, tmp_path_factory.mktemp("finetune") / "home", {"uie_task_path": str(tiny_uie), **FINETUNE}
    )
    with serve_in_process(rt) as client:
        before = client.post("/setup", json={"project": PROJECT, "schema": NER_CONFIG}).json()["model_version"]
        base = exact_spans(predict(client, [t for t, _ in held_out()]))
        resp = client.post(
            "/train", json={"annotations": ner_tasks(80), "project": PROJECT, "label_config": NER_CONFIG}
        )
        assert resp.status_code == 201, resp.text
        job = wait_job(client, resp.json()["job"])
        yield client, job, before, base
    rt.close()


def test_the_job_reports_held_out_precision_recall_f1(trained):
    _, job, _, _ = trained
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["evaluated_on"] == "dev" and result["dev_tasks"] == 16 and result["train_tasks"] == 64
    assert result["train_examples"] == 64 * 3 and result["steps"] == 400
    assert result["spans"] == {"Person": 80, "Location": 80, "Organization": 60}
    assert result["f1"] >= 0.8 and result["precision"] >= 0.8 and result["recall"] >= 0.8, result


def test_the_new_version_predicts_learned_spans_on_unseen_sentences(trained):
    client, job, before, base = trained
    version = client.post("/setup", json={"project": PROJECT, "schema": NER_CONFIG}).json()["model_version"]
    assert version != before and version == job["result"]["model_version"]
    truth = held_out()
    results = predict(client, [t for t, _ in truth])
    precision, recall = scores(exact_spans(results), truth)
    assert precision >= 0.85 and recall >= 0.85, (precision, recall)
    assert sum(map(len, base)) > 0
    base_precision, _ = scores(base, truth)
    assert base_precision < 0.3, base_precision  # the random base model marks spans all over the text
    config = parse_label_config(NER_CONFIG)
    for item, (text, _) in zip(results, truth, strict=True):
        assert item["model_version"] == version
        assert not config.interface.validate_prediction(item, return_errors=True)
        for region in item["result"]:
            value = region["value"]
            assert value["text"] == text[value["start"] : value["end"]]  # exact offsets, Chinese included
            assert 0 < region["score"] <= 1


def test_the_version_directory_holds_a_taskflow_model_and_the_examples(trained):
    client, _, _, _ = trained
    model_dir = Path(client.app.state.runtime.model_dir("11"))
    for name in (
        "model_state.pdparams",
        "config.json",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "static",
        "train.jsonl",
        "dev.jsonl",
        "training.json",
        "job_result.json",
    ):
        assert (model_dir / name).exists(), name
    first = json.loads((model_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) >= {"content", "prompt", "result_list"}
    for span in first["result_list"]:
        assert first["content"][span["start"] : span["end"]] == span["text"]


def test_unusable_annotations_fail_clearly_and_keep_the_version(trained):
    client, _, _, _ = trained
    version = client.post("/setup", json={"project": PROJECT, "schema": NER_CONFIG}).json()["model_version"]
    resp = client.post("/train", json={"annotations": ner_tasks(1), "project": PROJECT})
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "failed" and "need at least 2" in job["error"]
    empty = [
        {
            **t,
            "annotations": [
                {
                    "result": [
                        {**r, "value": {**r["value"], "labels": ["NotInConfig"]}} for r in t["annotations"][0]["result"]
                    ]
                }
            ],
        }
        for t in ner_tasks(3)
    ]
    job = wait_job(client, client.post("/train", json={"annotations": empty, "project": PROJECT}).json()["job"])
    assert job["status"] == "failed" and "select no text" in job["error"]
    assert client.post("/setup", json={"project": PROJECT, "schema": NER_CONFIG}).json()["model_version"] == version


def test_v1_extract_serves_the_projects_trained_version(trained):
    client, job, before, _ = trained
    text, spans = held_out()[1]
    trained_answer = client.post(
        "/v1/extract", json={"text": text, "schema": ["Person", "Location", "Organization"], "project": 11}
    ).json()
    assert trained_answer["model_version"] == job["result"]["model_version"]
    found = {(i["start"], i["end"], label) for label, items in trained_answer["result"].items() for i in items}
    assert found == set(spans)
    base_answer = client.post("/v1/extract", json={"text": text, "schema": ["Person"]}).json()
    assert base_answer["model_version"] == before  # no project: the base model
