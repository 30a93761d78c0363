import functools

import pytest
from prelabel_text_classifier import TextClassifier
from text_classifier_corpus import annotated_tasks, labeled_texts

from prelabel.testing import configs
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process
from prelabel.testing.client import wait_job as client_wait_job

MULTI_CONFIG = configs.TEXT_CHOICES_MULTIPLE


wait_job = functools.partial(client_wait_job, timeout=120.0)


@pytest.fixture
def client(tmp_path):
    rt = make_runtime(TextClassifier, tmp_path / "home")
    with serve_in_process(rt) as c:
        yield c


def setup(client, config=configs.TEXT_CHOICES, project="5.1"):
    return client.post("/setup", json={"project": project, "schema": config}).json()["model_version"]


def predict(client, texts, project="5.1"):
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(texts)]
    return per_task_results(client.post("/predict", json={"tasks": tasks, "project": project}).json())


def test_untrained_returns_empty_results_and_says_so(client):
    assert setup(client) == "text_classifier-untrained"
    health = client.get("/health").json()
    assert health["trained"] is False and health["trained_projects"] == []
    results = predict(client, ["a great day"])
    assert results[0]["result"] == [] and "error" not in results[0]


def test_training_learns_and_generalizes_to_held_out_texts(client):
    before = setup(client)
    resp = client.post(
        "/train", json={"annotations": annotated_tasks(60), "project": "5.1", "label_config": configs.TEXT_CHOICES}
    )
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["train_examples"] == 60 and result["holdout_examples"] == 12
    assert result["accuracy"] >= 0.8 and result["macro_f1"] >= 0.8
    version = setup(client)
    assert version != before and version == result["model_version"]
    assert client.get("/health").json()["trained_projects"] == ["5"]

    held_out = labeled_texts(30, seed=99)  # unseen sentences
    results = predict(client, [t for t, _ in held_out])
    predicted = [r["result"][0]["value"]["choices"][0] for r in results]
    accuracy = sum(p == y for p, (_, y) in zip(predicted, held_out, strict=True)) / len(held_out)
    assert accuracy >= 0.8
    for r in results:
        assert r["model_version"] == version
        assert 0 < r["score"] <= 1 and r["result"][0]["score"] == r["score"]

    # the artifact directory has what seed 003 describes
    from pathlib import Path

    model_dir = Path(client.app.state.runtime.model_dir("5"))
    for name in ("model.joblib", "job_result.json", "train_data.json", "train_data_info.json"):
        assert (model_dir / name).is_file(), name
    assert version in client.get("/versions").json()["versions"]


def test_multiple_choice(client):
    setup(client, MULTI_CONFIG, "6.1")
    rng_tasks = []
    combos = [["sports"], ["politics"], ["tech"], ["sports", "tech"]]
    words = {
        "sports": "football match goal team",
        "politics": "election vote senate law",
        "tech": "software chip computer code",
    }
    for i in range(48):
        labels = combos[i % 4]
        text = " ".join(words[label] for label in labels) + f" note {i}"
        rng_tasks.append(
            {
                "id": i,
                "data": {"text": text},
                "annotations": [
                    {
                        "result": [
                            {"from_name": "topics", "to_name": "text", "type": "choices", "value": {"choices": labels}}
                        ]
                    }
                ],
            }
        )
    job = wait_job(client, client.post("/train", json={"annotations": rng_tasks, "project": "6.1"}).json()["job"])
    assert job["status"] == "succeeded", job["error"]
    results = predict(client, ["team goal football and computer code", "senate vote"], project="6.1")
    assert sorted(results[0]["result"][0]["value"]["choices"]) == ["sports", "tech"]
    assert results[1]["result"][0]["value"]["choices"] == ["politics"]


def test_too_few_or_one_sided_annotations_fail_clearly_and_keep_the_version(client):
    version = setup(client)
    one_label = [t for t in annotated_tasks(12) if t["annotations"][0]["result"][0]["value"]["choices"] == ["neutral"]]
    job = wait_job(client, client.post("/train", json={"annotations": one_label, "project": "5.1"}).json()["job"])
    assert job["status"] == "failed" and "at least two different choices" in job["error"]
    resp = client.post("/train", json={"annotations": annotated_tasks(2), "project": "5.1"})
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "failed" and "need at least 4" in job["error"]
    assert setup(client) == version


def test_labels_renamed_in_the_project_are_mapped_or_dropped(client):
    setup(client)
    job = wait_job(
        client, client.post("/train", json={"annotations": annotated_tasks(30), "project": "5.1"}).json()["job"]
    )
    assert job["status"] == "succeeded"
    renamed = configs.TEXT_CHOICES.replace(
        '<Choice value="positive"/>', '<Choice value="Good" predicted_values="positive"/>'
    )
    resp = client.post(
        "/predict",
        json={
            "tasks": [{"id": 1, "data": {"text": "great wonderful love"}}],
            "project": "5.1",
            "label_config": renamed,
        },
    )
    assert per_task_results(resp.json())[0]["result"][0]["value"]["choices"] == ["Good"]
