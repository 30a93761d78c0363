"""Scale-out on a real redis-server: two server processes and one RQ worker share state
and the job queue."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from prelabel.testing.client import per_task_results
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess

SUPPORT = Path(__file__).parent / "support"
SPEC = "counting_backend:CountingBackend"


def annotated(n):
    words = {"positive": "great", "negative": "awful", "neutral": "okay"}
    labels = list(words)
    return [
        {
            "id": i,
            "data": {"text": f"a {words[labels[i % 3]]} thing {i}"},
            "annotations": [
                {
                    "result": [
                        {
                            "from_name": "sentiment",
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": [labels[i % 3]]},
                        }
                    ]
                }
            ],
        }
        for i in range(n)
    ]


@pytest.fixture
def cluster(tmp_path, redis_server):
    log = tmp_path / "fits.log"
    env = {
        "REDIS_URL": redis_server.url,
        "COUNTING_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
    }
    servers = [BackendProcess(SPEC, home=tmp_path / f"server{i}", env=env) for i in range(2)]
    for s in servers:
        s.launch()
    for s in servers:
        s.wait_ready(60)
    worker = start_worker(tmp_path, env)
    yield servers, worker, log, env
    for s in servers:
        s.stop()
    if worker.poll() is None:
        worker.terminate()
        worker.wait(20)


def start_worker(tmp_path, env):
    full = {**os.environ, **env, "PRELABEL_HOME": str(tmp_path / "worker"), "LOG_FORMAT": "text"}
    return subprocess.Popen(
        [sys.executable, "-m", "prelabel.cli", "worker", SPEC],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "worker.log", "ab"),
    )


def setup(server, project="3.1"):
    with server.http() as http:
        return http.post("/setup", json={"project": project, "schema": TEXT_CHOICES}).json()["model_version"]


def test_a_version_trained_on_the_worker_is_served_by_every_replica(cluster):
    servers, worker, log, _ = cluster
    a, b = servers
    before = {setup(s) for s in servers}
    assert len(before) == 1
    with a.http() as http:
        job_id = http.post("/train", json={"annotations": annotated(12), "project": "3.1"}).json()["job"]
    job = b.wait_job(job_id, timeout=60)  # visible on the other replica too
    assert job["status"] == "succeeded", job
    assert job["owner"].endswith(f":{worker.pid}")  # ran on the worker, not in a server
    version = job["result"]["model_version"]
    assert {setup(s) for s in servers} == {version} != before
    for s in servers:
        with s.http() as http:
            resp = http.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "great"}}], "project": "3.1"})
        item = per_task_results(resp.json())[0]
        assert item["model_version"] == version and item["result"][0]["value"]["choices"] == ["positive"]


def test_jobs_submitted_to_either_server_run_exactly_once(cluster):
    servers, worker, log, _ = cluster
    ids = []
    for i in range(8):
        with servers[i % 2].http() as http:
            body = {"annotations": annotated(6), "project": f"{10 + i}.1", "label_config": TEXT_CHOICES}
            ids.append(http.post("/train", json=body).json()["job"])
    for job_id in ids:
        assert servers[0].wait_job(job_id, timeout=120)["status"] == "succeeded"
    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    with servers[1].http() as http:
        listed = {j["id"] for j in http.get("/jobs").json()["jobs"]}
    assert set(ids) <= listed


def test_worker_killed_mid_training_never_promotes_half_an_artifact(cluster, tmp_path):
    servers, worker, log, env = cluster
    a, b = servers
    setup(a, "20.1")
    old = setup(b, "20.1")
    gate = tmp_path / "release"
    with a.http() as http:
        job_id = http.post(
            "/jobs", json={"kind": "train", "project": 20, "params": {"tasks": annotated(9), "wait_for": str(gate)}}
        ).json()["id"]
    deadline = time.monotonic() + 60
    while f"{job_id} " not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    gate.touch()
    # the old model keeps serving on both replicas
    assert setup(a, "20.1") == old and setup(b, "20.1") == old
    restarted = start_worker(tmp_path, env)  # a restart on the same host marks the orphan
    try:
        job = b.wait_job(job_id, timeout=60)
        assert job["status"] == "interrupted" and "stopped before it finished" in job["error"]
        assert setup(a, "20.1") == old
        partial = list((tmp_path / "worker" / "models").rglob("partial.bin"))
        assert partial == []  # never promoted into a version dir, and the restart removed its workdir
        assert list((tmp_path / "worker" / "models").rglob(".tmp-*")) == []
    finally:
        restarted.terminate()
        restarted.wait(20)


def test_worker_needs_redis(tmp_path):
    cmd = [sys.executable, "-m", "prelabel.cli", "worker", "prelabel.testing.reference:ReferenceBackend"]
    out = subprocess.run(
        cmd, env={k: v for k, v in os.environ.items() if k != "REDIS_URL"}, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "REDIS_URL" in out.stderr


def test_health_survives_a_redis_restart(cluster, redis_server):
    servers, worker, log, _ = cluster
    redis_server.stop()
    redis_server.start()
    with servers[0].http() as http:
        deadline = time.monotonic() + 20
        while True:
            resp = http.post("/setup", json={"project": "30.1", "schema": TEXT_CHOICES})
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert resp.status_code == 200
