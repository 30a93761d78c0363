import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from prelabel.jobs import CANCELLED, FAILED, INTERRUPTED, SUCCEEDED, JobCancelled
from prelabel.testing.client import make_runtime, serve_in_process
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.reference import ReferenceBackend


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError("condition not met")


def finished(rt, job_id):
    return wait_for(lambda: (j := rt.jobs.get(job_id)) and j.status not in ("queued", "running") and j)


def annotated(tid, text, label):
    return {
        "id": tid,
        "data": {"text": text},
        "annotations": [
            {
                "result": [
                    {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                ]
            }
        ],
    }


@pytest.fixture
def rt(reference_runtime):
    reference_runtime.start()
    reference_runtime.remember_project("1.123", TEXT_CHOICES)
    return reference_runtime


def test_failed_training_keeps_the_old_version_and_leaves_nothing(rt):
    before = rt.model_version("1")
    unusable = [{"id": 1, "data": {"text": "x"}, "annotations": [{"was_cancelled": True, "result": []}]}]
    job = finished(rt, rt.runner.submit("train", "1", {"tasks": unusable}).id)
    assert job.status == FAILED and "no usable annotations" in job.error
    assert rt.model_version("1") == before
    assert list(rt.artifacts.project_dir("1").glob("*")) == []
    # without annotations in the request, training fetches them from Label Studio, which is unknown here
    job = finished(rt, rt.runner.submit("train", "1").id)
    assert job.status == FAILED and "LABEL_STUDIO_URL" in job.error


def test_crash_after_partial_write_promotes_nothing(rt, monkeypatch):
    def broken_fit(job):
        (job.workdir / "model.json").write_text("{half")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(rt.backend, "fit", broken_fit)
    job = finished(rt, rt.runner.submit("train", "1", {"tasks": [annotated(1, "good", "positive")]}).id)
    assert job.status == FAILED and "out of memory" in job.error
    assert rt.model_dir("1") is None
    assert list(rt.artifacts.project_dir("1").glob("*")) == []


def test_successful_training_promotes_a_complete_directory(rt):
    job = finished(rt, rt.runner.submit("train", "1", {"tasks": [annotated(1, "good", "positive")]}).id)
    assert job.status == SUCCEEDED, job.error
    path = rt.model_dir("1")
    assert (path / "model.json").is_file() and (path / "job_result.json").is_file()
    assert rt.model_version("1") == job.result["model_version"] == path.name
    assert rt.model_version("2") == rt.backend.model_version()  # other projects unaffected


def test_cancel_queued_and_running_jobs(rt):
    started, release = threading.Event(), threading.Event()

    def slow(ctx):
        started.set()
        release.wait(10)
        ctx.progress(0.5, "half way")  # raises JobCancelled once cancel was requested
        return {"never": True}

    rt.job_handlers["slow"] = slow
    running = rt.runner.submit("slow", "1")
    assert started.wait(10)
    queued = rt.runner.submit("slow", "1")
    assert rt.runner.cancel(queued.id).status == CANCELLED
    rt.runner.cancel(running.id)
    release.set()
    assert finished(rt, running.id).status == CANCELLED
    assert rt.jobs.get(queued.id).status == CANCELLED


def test_coalescing_returns_the_queued_job(rt):
    gate = threading.Event()
    rt.job_handlers["block"] = lambda ctx: gate.wait(10) and {}
    first = rt.runner.submit("block", "1")
    wait_for(lambda: rt.jobs.get(first.id).status == "running")
    second = rt.runner.submit("block", "1", coalesce=True)
    third = rt.runner.submit("block", "1", coalesce=True)
    assert second.id == third.id != first.id
    gate.set()
    assert finished(rt, second.id).status == SUCCEEDED


def test_unknown_kind_is_refused(rt):
    with pytest.raises(ValueError, match="unknown job kind"):
        rt.runner.submit("nope", "1")


def test_job_cancelled_exception_is_importable():
    assert issubclass(JobCancelled, Exception)


def test_job_of_a_killed_process_shows_as_interrupted(tmp_path):
    home = tmp_path / "home"
    script = textwrap.dedent(f"""
        import time
        from prelabel.testing.client import make_runtime
        from prelabel.testing.reference import ReferenceBackend
        rt = make_runtime(ReferenceBackend, {str(home)!r})
        rt.job_handlers["forever"] = lambda ctx: time.sleep(600)
        job = rt.runner.submit("forever", "1")
        print(job.id, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        job_id = proc.stdout.readline().strip()
        rt = make_runtime(ReferenceBackend, home)
        wait_for(lambda: rt.jobs.get(job_id).status == "running")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert rt.jobs.get(job_id).status == "running"  # nobody has looked yet
        rt.start()  # a restart marks orphans
        job = rt.jobs.get(job_id)
        assert job.status == INTERRUPTED and "stopped before it finished" in job.error
        rt.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_train_every_n_annotations(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "h", train_every_n=3)
    project = {"id": 4, "label_config": TEXT_CHOICES}
    event = {"action": "ANNOTATION_CREATED", "project": project, "annotation": {"id": 1}}
    with serve_in_process(rt) as c:
        assert c.post("/webhook", json=event).json()["annotations_since_training"] == 1
        assert c.post("/webhook", json=event).json()["annotations_since_training"] == 2
        third = c.post("/webhook", json=event)
        assert third.status_code == 201 and third.json()["job"]
        assert c.post("/webhook", json=event).json()["annotations_since_training"] == 1
        jobs = c.get("/jobs", params={"project": "4"}).json()["jobs"]
        assert [j["kind"] for j in jobs] == ["train"]
