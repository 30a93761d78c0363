"""Whole-project prediction job throughput against a real Label Studio, as a ratio of Label
Studio's own floor.

Creates two identical projects of N tasks (some annotated) and trains text_classifier on
each. On the first it measures the floor: what the job cannot avoid, with no model in
between, in one thread: list every task with the fields the job reads (the same SDK call and
page size), then store one prediction per task with the same import call in the same chunk
sizes. On the second it runs the prediction job. Prints both rates, the plugin's own
in-process rate, and job/floor. Target: job >= 0.8x the floor. Checks that the job stored
exactly one prediction per task.

Needs Label Studio (scripts/install-label-studio.sh); prints "skipped" and exits 0 without it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from prelabel.backend import Task
from prelabel.jobs import execute
from prelabel.jobs.predict import PAGE_SIZE, TASK_FIELDS, UPLOAD_BATCH
from prelabel.runtime import Runtime
from prelabel.settings import CoreSettings
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.labelstudio import LabelStudioServer, find_label_studio_executable

WORDS = {"positive": "great wonderful", "negative": "awful terrible", "neutral": "average okay"}
TARGET = 0.8


def make_project(client, title: str, n: int) -> tuple[int, list[dict]]:
    labels = list(WORDS)
    payload = []
    for i in range(n):
        label = labels[i % 3]
        task: dict = {"data": {"text": f"item {i}: it was {WORDS[label].split()[i % 2]}"}}
        if i < 60:
            task["annotations"] = [
                {
                    "result": [
                        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ]
                }
            ]
        payload.append(task)
    project = client.projects.create(title=title, label_config=TEXT_CHOICES)
    for start in range(0, len(payload), 1000):
        client.projects.import_tasks(id=project.id, request=payload[start : start + 1000])
    return project.id, payload


def stored_per_task(ls, project_id: int) -> Counter:
    resp = httpx.get(
        f"{ls.url}/api/predictions", params={"project": project_id}, headers=ls.auth_headers("legacy"), timeout=300
    )
    resp.raise_for_status()
    return Counter(p["task"] for p in resp.json())


def floor_rate(client, runtime: Runtime, pid: int, chunk: int) -> tuple[float, float, float]:
    """(tasks/s, listing seconds, storing seconds): list everything, then store a prediction
    per task as the job does (same result shape, same chunk size), in one thread."""
    project = runtime.project(str(pid))
    version = project.trained_version or runtime.backend.model_version()
    control = runtime.backend.supported_controls(project.config)[0]
    started = time.perf_counter()
    ids = [t.id for t in client.tasks.list(project=pid, page_size=PAGE_SIZE, fields="all", include=TASK_FIELDS)]
    listed = time.perf_counter()
    from prelabel.regions import choices

    preds = [
        {"task": tid, "result": [choices(control, "positive", score=0.9)], "score": 0.9, "model_version": version}
        for tid in ids
    ]
    for at in range(0, len(preds), chunk):
        client.projects.import_predictions(id=pid, request=preds[at : at + chunk])
    stored = time.perf_counter()
    return len(ids) / (stored - started), listed - started, stored - listed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="the job's batch_size param (default: the job's own choice)"
    )
    args = parser.parse_args()
    if find_label_studio_executable() is None:
        print("skipped: needs Label Studio (scripts/install-label-studio.sh)")
        return 0
    from prelabel_text_classifier import TextClassifier

    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-job-"))
    with LabelStudioServer(tmp / "ls") as ls:
        client = ls.client()
        floor_pid, payload = make_project(client, "bench-floor", args.tasks)
        job_pid, _ = make_project(client, "bench-job", args.tasks)
        core = CoreSettings(
            prelabel_home=tmp / "home",
            label_studio_url=ls.url,
            label_studio_api_key=ls.personal_access_token(),
            log_level="WARNING",
        )
        runtime = Runtime(TextClassifier, core)
        runtime.start()
        for pid in (floor_pid, job_pid):
            train = runtime.runner.create("train", str(pid))
            assert execute(train.id, runtime).status == "succeeded"

        # the plugin's own rate: the same tasks, in-process, nothing else
        proj = runtime.project(str(job_pid))
        tasks = [Task(i, p["data"]) for i, p in enumerate(payload)]
        started = time.perf_counter()
        for start in range(0, len(tasks), 500):
            asyncio.run(runtime.predict(tasks[start : start + 500], proj, {}))
        plugin_rate = len(tasks) / (time.perf_counter() - started)

        # the floor first (on its own project), with the job's upload chunk size
        load = os.getloadavg()[0]
        chunk = args.batch_size or UPLOAD_BATCH
        floor, listing, storing = floor_rate(client, runtime, floor_pid, chunk)

        params = {"batch_size": args.batch_size} if args.batch_size else {}
        job = runtime.runner.create("predict", str(job_pid), params, exclusive=True)
        started = time.perf_counter()
        done = execute(job.id, runtime)
        job_rate = args.tasks / (time.perf_counter() - started)
        load = max(load, os.getloadavg()[0])
        assert done.status == "succeeded" and done.result["predicted"] == args.tasks, done
        per_task = stored_per_task(ls, job_pid)
        assert len(per_task) == args.tasks and set(per_task.values()) == {1}, "not one prediction per task"
        chunks = done.result["upload_sizes"]
        runtime.close()
    ratio = job_rate / floor
    print(f"tasks: {args.tasks}; load average up to {load:.2f}")
    print(f"plugin in-process predict:                  {plugin_rate:8.0f} tasks/s")
    print(f"Label Studio floor (list {listing:.1f}s + store {storing:.1f}s):   {floor:8.0f} tasks/s")
    print(
        f"prediction job (list + predict + store):    {job_rate:8.0f} tasks/s "
        f"({len(chunks)} uploads, {max(chunks)} tasks at most)"
    )
    print(f"job / Label Studio floor: {ratio:.2f} (target >= {TARGET}): {'PASS' if ratio >= TARGET else 'FAIL'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
