"""``fit`` of every LLM backend: a version made of the project's annotated examples.

1. Fetch the annotated tasks (the training job's export path) and turn them into examples.
2. Hold out a seeded share (``LLM_FEWSHOT_HOLDOUT``, at most ``LLM_FEWSHOT_EVAL_CALLS / 2``
   tasks, since each costs two answers), index the rest (:mod:`prelabel.llm.fewshot`).
3. Label the held-out tasks zero-shot and with examples, within the call and token budgets
   (:mod:`prelabel.llm.evaluate`), and promote only when few-shot is not worse; otherwise
   raise :class:`~prelabel.jobs.train.NotPromoted` with the reason and the numbers.

The version directory holds ``fewshot/`` (examples, BM25 index, the prompt) and
``evaluation.json``.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from prelabel.jobs.train import NotPromoted
from prelabel.llm import errors
from prelabel.llm.evaluate import compare, decide
from prelabel.llm.fewshot import DIRNAME, EXAMPLES_FORMAT, ExampleIndex, examples_from_tasks, split
from prelabel.llm.schema import task_spec

if TYPE_CHECKING:
    from prelabel.jobs import JobContext
    from prelabel.llm.backend import LLMBackend

SETTINGS_FILE = "fewshot.json"


def _flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Top-level numbers for /versions: ``<arm>_<control>_<metric>`` and each arm's score."""
    out: dict[str, float] = {}
    for arm in ("zero_shot", "few_shot"):
        part = report[arm]
        if part["score"] is not None:
            out[f"{arm}_score"] = round(part["score"], 4)
        for control, metrics in part["controls"].items():
            for name, value in metrics.items():
                out[f"{arm}_{control}_{name}"] = round(value, 4)
        out[f"{arm}_tokens"] = part["tokens"]
        out[f"{arm}_calls"] = part["calls"]
    return out


def fit(backend: LLMBackend, job: JobContext) -> dict[str, Any]:
    s = backend.settings
    config = job.config
    if config is None:
        raise ValueError("no label config is stored for this project: connect the backend in Label Studio first")
    spec = task_spec(config, backend.supported_controls(config))
    if not spec.controls:
        raise ValueError(f"the project's label config has no control the LLM can fill ({config.describe()})")
    job.progress(0.02, "fetching annotations")
    examples = examples_from_tasks(job.annotated_tasks(), spec)
    if len(examples) < s.llm_fewshot_min_examples:
        raise ValueError(
            f"{len(examples)} annotated tasks with text and a result for {[c.name for c in spec.controls]}"
            f"; need at least LLM_FEWSHOT_MIN_EXAMPLES={s.llm_fewshot_min_examples} to train"
        )
    train, heldout = split(examples, s.llm_fewshot_holdout, s.llm_fewshot_eval_calls // 2)
    index = ExampleIndex.build(train)
    index.save(job.workdir / DIRNAME)
    instruction = backend.stored_prompt(job.runtime.project_state(job.project))
    (job.workdir / DIRNAME / SETTINGS_FILE).write_text(
        json.dumps(
            {
                "format": EXAMPLES_FORMAT,
                "instruction": instruction,
                "system_prompt": s.llm_system_prompt,
                "controls": [c.name for c in spec.controls],
                "examples": len(train),
                "model": s.model,
                "max_examples": s.llm_fewshot_max_examples,
                "token_budget": s.llm_fewshot_token_budget,
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    job.progress(0.1, f"{len(train)} examples indexed; evaluating on {len(heldout)} held-out tasks")

    async def label(example: Any, with_examples: bool) -> tuple[list[dict] | None, Any]:
        neighbours = (
            index.select(spec, example.text, s.llm_fewshot_max_examples, s.llm_fewshot_token_budget)
            if with_examples
            else None
        )
        data = example.data
        try:
            labeled = await backend.label(spec, data, instruction, neighbours)
        except errors.LLMError as exc:
            job.log.warning(
                "held-out task %s (%s): %s", example.task_id, "few-shot" if with_examples else "zero-shot", exc
            )
            return None, None
        return labeled.result, labeled.outcome

    async def run() -> dict[str, Any]:
        try:
            return await compare(
                spec,
                heldout,
                label,
                concurrency=s.max_concurrent,
                max_tokens=s.llm_fewshot_eval_tokens,
                progress=job.progress,
            )
        finally:
            await backend.engine.aclose()  # this job's loop ends here: close its client with it

    report = asyncio.run(run())
    zero_scores, few_scores = report.pop("_scores")
    decision = decide(zero_scores, few_scores, s.llm_fewshot_tolerance)
    report.update(decision=decision, train_examples=len(train), answers_bound=2 * len(heldout))
    (job.workdir / "evaluation.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    result = {
        "train_examples": len(train),
        "heldout_examples": report["heldout_tasks"],
        **_flat_metrics(report),
        "tokens": report["zero_shot"]["tokens"] + report["few_shot"]["tokens"],
        "calls": report["zero_shot"]["calls"] + report["few_shot"]["calls"],
        "evaluation": report,
        "reason": decision["reason"],
    }
    job.progress(0.97, decision["reason"][:200])
    if not decision["promote"]:
        raise NotPromoted(decision["reason"], result)
    return result
