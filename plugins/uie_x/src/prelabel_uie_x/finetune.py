"""The train job: the project's annotations -> UIE examples -> a fine-tuned model in
``job.workdir``, evaluated on held-out tasks and loaded once through Taskflow before core
promotes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prelabel import JobContext, TaskError
from prelabel_uie_x import converter
from prelabel_uie_x.engine import load_engine
from prelabel_uie_x.training import TrainConfig, Trainer, encode_all

if TYPE_CHECKING:
    from prelabel_uie_x.backend import UieBackend


def _write_jsonl(path: Path, examples: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(json.dumps(example, ensure_ascii=False) + "\n")


def collect_examples(backend: UieBackend, job: JobContext) -> tuple[list[dict], dict[str, Any], list[str]]:
    """(examples, page images by file name, problems) from the project's annotated tasks.
    Document pages are saved under ``images/`` in the workdir next to the examples."""
    config = job.config
    if config is None:
        raise ValueError("no label config is stored for this project: connect the backend in Label Studio first")
    controls = backend.supported_controls(config)
    if not controls:
        raise ValueError(
            f"the project's label config has no Labels on Text or RectangleLabels on Image ({config.describe()})"
        )
    # each task with only its annotations that count, ground truth first (job.annotations())
    tasks = [{**task, "annotations": anns} for task, anns in job.annotations()]
    examples: list[dict] = []
    images: dict[str, Any] = {}
    problems: list[str] = []
    for i, task in enumerate(tasks):
        for control in controls:
            if control.tag == "Labels":
                examples += converter.text_examples(task, control)
                continue
            if converter.annotated_regions(task, control) is None:
                continue
            try:
                source = (task.get("data") or {}).get(control.object.data_key or "")
                image = job.media.open_image(source, task.get("id"))
            except (TaskError, TypeError) as exc:
                problems.append(f"task {task.get('id')}: {exc}")
                continue
            name = f"images/{task.get('id')}.jpg"
            (job.workdir / "images").mkdir(exist_ok=True)
            image.save(job.workdir / name, format="JPEG", quality=95)
            images[name] = image
            examples += converter.document_examples(task, control, backend.ocr(image), image.width, image.height, name)
        job.progress(0.02 + 0.13 * (i + 1) / len(tasks), f"converted {i + 1}/{len(tasks)} annotated tasks")
    return examples, images, problems


def run_finetune(backend: UieBackend, job: JobContext) -> dict[str, Any]:
    s = backend.settings
    job.progress(0.01, "fetching annotations")
    examples, images, problems = collect_examples(backend, job)
    for problem in problems:
        job.log.warning("skipped %s", problem)
    n_tasks = len({str(e.get("task_id")) for e in examples})
    if n_tasks < s.uie_min_tasks:
        raise ValueError(
            f"{n_tasks} annotated tasks have spans or boxes to learn from; need at least "
            f"{s.uie_min_tasks} (UIE_MIN_TASKS)" + (f"; skipped: {problems[:3]}" if problems else "")
        )
    spans = converter.count_spans(examples)
    if not spans:
        raise ValueError("the annotations select no text: label spans in texts, or draw boxes over text the OCR reads")
    train, dev = converter.split_by_task(examples, s.uie_val_split, s.uie_seed)
    _write_jsonl(job.workdir / "train.jsonl", train)
    _write_jsonl(job.workdir / "dev.jsonl", dev)

    base = backend.engine(None)  # fine-tuning always starts from the base model, on every annotation
    config = TrainConfig(
        epochs=s.uie_epochs,
        max_steps=s.uie_max_steps,
        learning_rate=s.uie_learning_rate,
        batch_size=s.uie_train_batch_size,
        max_seq_len=s.uie_max_seq_len,
        position_prob=s.uie_position_prob,
        train_visual=s.uie_train_visual,
        seed=s.uie_seed,
        device=backend.device,
    )
    trainer = Trainer(base.task_path, base.family, config, images)
    train_features, unencodable = encode_all(train, trainer.tokenizer, base.family, s.uie_max_seq_len)
    dev_features, dev_unencodable = encode_all(dev, trainer.tokenizer, base.family, s.uie_max_seq_len)
    if not train_features:
        raise ValueError("no training example could be tokenized by the base model's tokenizer")
    job.progress(0.15, f"fine-tuning {base.family} on {len(train)} examples from {n_tasks} tasks")
    stats = trainer.train(train_features, lambda fraction, message: job.progress(0.15 + 0.7 * fraction, message))
    job.progress(0.86, "evaluating on " + ("held-out tasks" if dev_features else "the training tasks"))
    metrics = trainer.evaluate(dev_features or train_features)
    trainer.save(job.workdir)
    job.progress(0.92, "exporting the inference model")
    load_engine(
        s.uie_model,
        job.workdir,
        backend.device,
        s.uie_max_seq_len,
        s.uie_batch_size,
        s.uie_position_prob,
        backend.cpu_threads,
    ).close()
    info = {
        "family": base.family,
        "base_model": str(s.uie_task_path or s.uie_model),
        "labels": sorted(spans),
        "train_tasks": n_tasks - len({str(e.get("task_id")) for e in dev}),
        "dev_tasks": len({str(e.get("task_id")) for e in dev}),
        "train_examples": len(train),
        "dev_examples": len(dev),
        "unencodable_examples": unencodable + dev_unencodable,
        "skipped_tasks": len(problems),
        "spans": spans,
        "evaluated_on": "dev" if dev_features else "train",
        **stats,
        **metrics,
    }
    (job.workdir / "training.json").write_text(json.dumps(info, ensure_ascii=False, indent=1))
    return info
