"""The embed job and the on-disk embedding cache: hits after the job, shared between
replicas, bounded, and never reused by another model."""

from __future__ import annotations

import base64
import os
import threading
import time

import pytest
import sam2_configs as configs
from prelabel_sam2 import Sam2Backend
from prelabel_sam2.embedstore import EmbeddingStore
from prelabel_sam2.model import Embedding, image_digest
from sam2_media import click, image_uri

from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results, wait_job
from prelabel.testing.images import data_uri

PROJECT = "7"


def tasks(n: int, offset: int = 0) -> list[dict]:
    return [{"id": offset + i + 1, "data": {"image": image_uri(offset + i + 20)}} for i in range(n)]


def runtime_for(home, store_dir, **settings):
    return make_runtime(Sam2Backend, home, {"sam2_embedding_dir": str(store_dir), **settings})


def setup_project(client) -> None:
    resp = client.post("/setup", json={"project": f"{PROJECT}.1700000000", "schema": configs.IMAGE_BRUSH})
    assert resp.status_code == 200, resp.text


def run_embed(client, **params) -> dict:
    resp = client.post("/jobs", json={"kind": "embed", "project": PROJECT, "params": params})
    assert resp.status_code == 201, resp.text
    return wait_job(client, resp.json()["id"], timeout=300)


def first_click(client, task: dict) -> dict:
    resp = client.post(
        "/predict",
        json={
            "tasks": [task],
            "project": PROJECT,
            "label_config": configs.IMAGE_BRUSH,
            "params": {"context": {"result": [click(30, 50, positive=True)]}},
        },
    )
    assert resp.status_code == 200, resp.text
    (item,) = per_task_results(resp.json())
    assert "error" not in item and item["result"], item
    return item


def test_after_the_job_the_first_click_on_any_task_skips_the_encoder(tmp_path):
    store_dir = tmp_path / "shared-volume"
    runtime = runtime_for(tmp_path / "home-a", store_dir)
    project_tasks = tasks(3) + [{"id": 99, "data": {"image": data_uri(b"not an image")}}]
    with serve_in_process(runtime, wait_ready=300) as client:
        setup_project(client)
        job = run_embed(client, tasks=project_tasks, batch_size=2)
        assert job["status"] == "succeeded", job
        result = job["result"]
        assert (result["tasks"], result["embedded"], result["failed"]) == (4, 3, 1)
        assert result["failures"][0]["task"] == 99 and "not a decodable image" in result["failures"][0]["error"]
        backend = runtime.backend
        calls = backend.model.encoder_calls
        for task in project_tasks[:3]:
            first_click(client, task)  # never seen by this process's memory cache
        assert backend.model.encoder_calls == calls, "a first click after the embed job ran the image encoder"
        assert backend.store.hits == 3 and backend.embeddings.stats()["hits"] == 0
        health = client.get("/health").json()
        assert health["embedding_disk"]["hits"] == 3 and health["embedding_disk"]["model_key"] == backend.store_key
        metric = 'prelabel_sam2_embedding_disk_total{result="hit"}'
        assert any(
            line.startswith(metric) and float(line.split()[-1]) == 3
            for line in client.get("/metrics").text.splitlines()
        )
        again = run_embed(client, tasks=project_tasks[:3])["result"]
        assert (again["embedded"], again["already_cached"]) == (0, 3)  # a rerun encodes only new images
    runtime.close()

    # another replica on the same volume (its own PRELABEL_HOME, memory and state) finds them too
    replica = runtime_for(tmp_path / "home-b", store_dir)
    with serve_in_process(replica, wait_ready=300) as client:
        calls = replica.backend.model.encoder_calls
        first_click(client, project_tasks[0])
        assert replica.backend.model.encoder_calls == calls and replica.backend.store.hits == 1
    replica.close()


def test_a_new_model_version_does_not_reuse_embeddings(tmp_path, model_root):
    """Another input size is another model version; another checkpoint of the same config
    gets another fingerprint: both encode again instead of reading the old embeddings."""
    from prelabel_sam2.testing import write_random_checkpoint

    store_dir = tmp_path / "shared-volume"
    task = tasks(1)[0]
    runtime = runtime_for(tmp_path / "home-a", store_dir)
    with serve_in_process(runtime, wait_ready=300) as client:
        setup_project(client)
        assert run_embed(client, tasks=[task])["result"]["embedded"] == 1
        old_key, old_version = runtime.backend.store_key, client.get("/versions").json()["model_version"]
    runtime.close()

    bigger = runtime_for(tmp_path / "home-b", store_dir, sam2_image_size=160)
    other_root = tmp_path / "other-weights"
    write_random_checkpoint(other_root / "sam2.1_hiera_tiny.pt", "tiny", seed=1)
    retrained = runtime_for(tmp_path / "home-c", store_dir, model_root=str(other_root))
    for runtime in (bigger, retrained):
        with serve_in_process(runtime, wait_ready=300) as client:
            backend = runtime.backend
            assert backend.store_key != old_key
            calls = backend.model.encoder_calls
            first_click(client, task)
            assert backend.model.encoder_calls == calls + 1 and backend.store.hits == 0
        runtime.close()
    assert bigger.backend.model_version() != old_version
    assert {p.name for p in store_dir.iterdir()} == {old_key, bigger.backend.store_key, retrained.backend.store_key}


def test_the_job_keeps_the_cache_under_its_bound(tmp_path):
    """Each embedding at the tests' 128-pixel input is about 0.26 MB: a 1 MB bound keeps the
    most recent few and deletes the least recently used."""
    store_dir = tmp_path / "shared-volume"
    runtime = runtime_for(tmp_path / "home", store_dir, sam2_embedding_disk_mb=1)
    with serve_in_process(runtime, wait_ready=300) as client:
        setup_project(client)
        job = run_embed(client, tasks=tasks(8), batch_size=1)
        assert job["status"] == "succeeded" and job["result"]["embedded"] == 8
        store = runtime.backend.store
        assert 0 < store.total_bytes() <= 1024 * 1024
        assert store.evicted > 0
        kept = sorted(p.stem for p in store_dir.glob("*/*/*.pt"))
        assert 1 <= len(kept) < 8
        # the last images embedded are the ones kept
        digests = [image_digest(base64.b64decode(t["data"]["image"].split(",", 1)[1])) for t in tasks(8)]
        assert set(kept) == set(digests[-len(kept) :])
    runtime.close()


def test_embed_without_a_disk_cache_fails_with_the_setting_to_change(tmp_path):
    runtime = runtime_for(tmp_path / "home", tmp_path / "store", sam2_embedding_disk_mb=0)
    with serve_in_process(runtime, wait_ready=300) as client:
        setup_project(client)
        job = run_embed(client, tasks=tasks(1))
        assert job["status"] == "failed" and "SAM2_EMBEDDING_DISK_MB" in job["error"]
        first_click(client, tasks(1)[0])  # the interactive path works without it
    runtime.close()


# -- the store on its own -----------------------------------------------------------------
def embedding(seed: float, size: int = 64) -> Embedding:
    import torch

    return Embedding(
        {
            "image_embed": torch.full((1, 4, size, size), seed),
            "high_res_feats": [torch.full((1, 2, size, size), seed), torch.full((1, 2, 8, 8), seed)],
        },
        10,
        20,
    )


def test_store_round_trip_lru_eviction_and_damaged_files(tmp_path):
    store = EmbeddingStore(tmp_path, max_bytes=10**9)
    path = store.put("m", "aa11", embedding(1.0))
    size = path.stat().st_size
    got = store.get("m", "aa11", "cpu")
    assert (got.height, got.width) == (10, 20) and float(got.features["high_res_feats"][1][0, 0, 0, 0]) == 1.0
    assert store.get("m", "bb22", "cpu") is None and (store.hits, store.misses) == (1, 1)
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"

    bounded = EmbeddingStore(tmp_path, max_bytes=int(2.5 * size))
    bounded.put("m", "bb22", embedding(2.0))
    old = time.time() - 100
    os.utime(bounded.path("m", "aa11"), (old, old))
    os.utime(bounded.path("m", "bb22"), (old + 1, old + 1))
    assert bounded.get("m", "aa11", "cpu") is not None  # a hit makes aa11 the most recent
    bounded.put("m", "cc33", embedding(3.0))
    assert ("m", "aa11") in bounded and ("m", "cc33") in bounded and ("m", "bb22") not in bounded
    assert bounded.total_bytes() <= 2.5 * size

    bounded.path("m", "cc33").write_bytes(b"truncated")
    assert bounded.get("m", "cc33", "cpu") is None and ("m", "cc33") not in bounded


def test_batch_slices_are_stored_without_the_whole_batch(tmp_path):
    import torch

    batch = torch.arange(4 * 3 * 32 * 32, dtype=torch.float32).reshape(4, 3, 32, 32)
    sliced = Embedding({"image_embed": batch[1:2], "high_res_feats": [batch[2:3], batch[3:4]]}, 32, 32)
    store = EmbeddingStore(tmp_path, max_bytes=10**9)
    path = store.put("m", "dd44", sliced)
    assert path.stat().st_size < batch.numel() * 4 * 0.9  # three slices, not four copies of the batch
    assert torch.equal(store.get("m", "dd44", "cpu").features["image_embed"], batch[1:2])


def test_concurrent_writers_of_one_image_leave_one_whole_file(tmp_path):
    store = EmbeddingStore(tmp_path, max_bytes=10**9)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(5):
                store.put("m", "ee55", embedding(5.0, size=128))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert float(store.get("m", "ee55", "cpu").features["image_embed"][0, 0, 0, 0]) == 5.0
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["ee55.pt"]


@pytest.mark.parametrize("bad", ["not a list", [{"data": {"image": 3}, "id": "x"}]])
def test_bad_task_params_fail_the_job_with_a_message(tmp_path, bad):
    runtime = runtime_for(tmp_path / "home", tmp_path / "store")
    with serve_in_process(runtime, wait_ready=300) as client:
        setup_project(client)
        job = run_embed(client, tasks=bad)
        assert job["status"] == "failed" and job["error"]
    runtime.close()


def test_cancelling_stops_between_batches_and_keeps_what_was_written(tmp_path, monkeypatch):
    runtime = runtime_for(tmp_path / "home", tmp_path / "store")
    with serve_in_process(runtime, wait_ready=300) as client:
        setup_project(client)
        backend = runtime.backend
        started, release = threading.Event(), threading.Event()
        original = backend.model.embed_batch

        def held(images):
            started.set()
            assert release.wait(60)
            return original(images)

        monkeypatch.setattr(backend.model, "embed_batch", held)
        job_id = client.post(
            "/jobs",
            json={"kind": "embed", "project": PROJECT, "params": {"tasks": tasks(3, offset=50), "batch_size": 1}},
        ).json()["id"]
        assert started.wait(60)  # the first batch is in the encoder
        assert client.delete(f"/jobs/{job_id}").status_code == 200
        release.set()
        job = wait_job(client, job_id, timeout=120)
        assert job["status"] == "cancelled", job
        assert len(list((tmp_path / "store").glob("*/*/*.pt"))) == 1  # the batch in flight was finished and kept
    runtime.close()
