"""Whole-project prediction job throughput against a real Label Studio.

Creates a project with N tasks (some annotated), trains text_classifier on it, then prints
the prediction job's tasks/s (paging tasks from Label Studio, predicting, uploading in bulk)
over the plugin's own in-process predict rate on the same tasks: the overhead of paging and
uploading. Needs Label Studio (scripts/install-label-studio.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from prelabel.backend import Task
from prelabel.jobs import execute
from prelabel.runtime import Runtime
from prelabel.settings import CoreSettings
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.labelstudio import LabelStudioServer, find_label_studio_executable

WORDS = {"positive": "great wonderful", "negative": "awful terrible", "neutral": "average okay"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    if find_label_studio_executable() is None:
        print("Label Studio is not installed: run scripts/install-label-studio.sh", file=sys.stderr)
        return 2
    from prelabel_text_classifier import TextClassifier

    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-job-"))
    with LabelStudioServer(tmp / "ls") as ls:
        client = ls.client()
        labels = list(WORDS)
        payload = []
        for i in range(args.tasks):
            label = labels[i % 3]
            task: dict = {"data": {"text": f"item {i}: it was {WORDS[label].split()[i % 2]}"}}
            if i < 60:
                task["annotations"] = [{"result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                                                    "value": {"choices": [label]}}]}]
            payload.append(task)
        project = client.projects.create(title="bench", label_config=TEXT_CHOICES)
        for start in range(0, len(payload), 1000):
            client.projects.import_tasks(id=project.id, request=payload[start:start + 1000])
        core = CoreSettings(prelabel_home=tmp / "home", label_studio_url=ls.url,
                            label_studio_api_key=ls.personal_access_token(), log_level="WARNING")
        runtime = Runtime(TextClassifier, core)
        runtime.start()
        pid = str(project.id)
        train = runtime.runner.create("train", pid)
        assert execute(train.id, runtime).status == "succeeded"

        # the plugin's own rate: the same tasks, in-process, same batch size, nothing else
        proj = runtime.project(pid)
        tasks = [Task(i, p["data"]) for i, p in enumerate(payload)]
        started = time.perf_counter()
        for start in range(0, len(tasks), args.batch_size):
            asyncio.run(runtime.predict(tasks[start:start + args.batch_size], proj, {}))
        plugin_rate = len(tasks) / (time.perf_counter() - started)

        job = runtime.runner.create("predict", pid, {"batch_size": args.batch_size}, exclusive=True)
        started = time.perf_counter()
        done = execute(job.id, runtime)
        job_rate = args.tasks / (time.perf_counter() - started)
        assert done.status == "succeeded" and done.result["predicted"] == args.tasks, done
        runtime.close()
    print(f"tasks: {args.tasks}, batch size {args.batch_size}")
    print(f"plugin in-process predict: {plugin_rate:8.0f} tasks/s")
    print(f"prediction job (page + predict + upload): {job_rate:8.0f} tasks/s")
    print(f"job / plugin: {job_rate / plugin_rate:.3f} (the rest is Label Studio paging and bulk upload)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
