"""The reference backend: a tiny word-count classifier for Choices on Text.

Core's own tests run the whole conformance suite on it, and ``bench/server_overhead.py``
serves it. Its predict is ``async`` (core awaits it on the event loop). Before training it
picks the choice whose name occurs in the text; training counts which words appear with
which choice in the annotations.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from prelabel.backend import Backend, Prediction
from prelabel.jobs import JobContext
from prelabel.regions import choices

WORD = re.compile(r"\w+", re.UNICODE)


class ReferenceBackend(Backend):
    backend_id = "reference"
    title = "Reference keyword classifier"
    supports = {"Choices": frozenset({"Text"})}
    max_batch_size = 64
    trainable = True
    default_port = 9199
    version = "1"

    def setup(self, device: str | None) -> None:
        self._models: dict[str, dict] = {}

    def _weights(self, model_dir: Path | None) -> dict | None:
        if model_dir is None:
            return None
        key = str(model_dir)
        if key not in self._models:
            self._models[key] = json.loads((model_dir / "model.json").read_text())
        return self._models[key]

    async def predict(self, tasks, ctx):
        # async: the work is a few microseconds of pure Python per task, cheaper than a hop to
        # a worker thread (a real model's blocking predict should stay a plain def)
        control = self.supported_controls(ctx.config)[0]
        key = control.object.data_key
        weights = self._weights(ctx.model_dir)
        out = []
        append = out.append
        lowered = [(label, label.lower()) for label in control.labels]
        for task in tasks:
            text = task.data.get(key, "")
            text = (text if type(text) is str else str(text)).lower()
            if not weights:  # untrained: every label named in the text counts once
                first, named = None, 0
                for label, low in lowered:
                    if low in text:
                        named += 1
                        if first is None:
                            first = label
                if first is None:
                    append(None)
                else:
                    score = 1 / named
                    append(Prediction([choices(control, first, score=score)], score))
                continue
            words = WORD.findall(text)
            scores = Counter()
            for w in words:
                for label, n in weights.get(w, {}).items():
                    scores[label] += n
            ranked = [(lab, s) for lab, s in scores.most_common() if lab in control.labels]
            if not ranked:
                out.append(None)
                continue
            total = sum(s for _, s in ranked)
            label, best = ranked[0]
            score = best / total
            out.append(Prediction([choices(control, label, score=score)], score=score))
        return out

    def fit(self, job: JobContext) -> dict:
        config = job.config
        if config is None:
            raise ValueError("no label config stored for this project: connect the backend to it first")
        control = self.supported_controls(config)[0]
        key = control.object.data_key
        counts: dict[str, Counter] = defaultdict(Counter)
        used = 0
        tasks = job.annotations()
        for i, (task, anns) in enumerate(tasks):
            for ann in anns[:1]:
                labels = [
                    c
                    for r in ann["result"]
                    if r.get("from_name") == control.name
                    for c in r.get("value", {}).get("choices", [])
                ]
                for w in {w.lower() for w in WORD.findall(str(task.get("data", {}).get(key, "")))}:
                    for label in labels:
                        counts[w][label] += 1
                used += bool(labels)
            job.progress((i + 1) / max(1, len(tasks)), f"read {i + 1}/{len(tasks)} tasks")
        if not used:
            raise ValueError("no usable annotations to train on")
        (job.workdir / "model.json").write_text(json.dumps({w: dict(c) for w, c in counts.items()}))
        (job.workdir / "train_data_info.json").write_text(json.dumps({"count": used}))
        return {"train_examples": used, "vocabulary": len(counts)}
