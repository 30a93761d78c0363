"""Held-out evaluation of a few-shot version: zero-shot against few-shot on the same tasks.

Metrics per control: accuracy and macro-F1 (Choices, Taxonomy), span precision, recall and F1
on exact (label, start, end) matches (Labels), exact and normalized match (TextArea), accuracy
(Rating, Number). Each task also gets one score in [0, 1] per arm (the mean over its controls
of: right or wrong, the task's span F1, the normalized text match), and the decision is a
paired comparison of those scores.

The rule (small held-out sets are the norm: 5-50 tasks): promote when the mean per-task score
with examples is at least the zero-shot mean minus ``LLM_FEWSHOT_TOLERANCE`` (default 0: not
worse). Ties promote. The tasks where the examples helped and hurt are counted and an exact
two-sided sign test is reported beside the decision, so a person sees how much a small set
says (with 6 tasks, one changed answer is 0.17 of the mean).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prelabel.llm.schema import TAXONOMY_SEPARATOR, ControlSpec, TaskSpec


def normalize_text(text: str) -> str:
    """Case-folded, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def comparable(cs: ControlSpec, regions: list[dict]) -> Any:
    """What is compared for one control: label sets, span triples, text, or a number."""
    values = [r.get("value") or {} for r in regions if r.get("from_name") == cs.name]
    if cs.kind == "choices":
        return frozenset(c for v in values for c in v.get("choices") or [])
    if cs.kind == "taxonomy":
        return frozenset(TAXONOMY_SEPARATOR.join(map(str, p)) for v in values for p in v.get("taxonomy") or [])
    if cs.kind == "spans":
        return frozenset(((v.get("labels") or [""])[0], v.get("start"), v.get("end")) for v in values)
    if cs.kind == "text":
        return "\n".join(str(t) for v in values for t in v.get("text") or [])
    found = [v.get(cs.kind) for v in values if v.get(cs.kind) is not None]
    return float(found[0]) if found else None


def _f1(truth: frozenset, pred: frozenset) -> float:
    if not truth and not pred:
        return 1.0
    hit = len(truth & pred)
    return 2 * hit / (len(truth) + len(pred))


def control_score(cs: ControlSpec, truth: Any, pred: Any) -> float:
    if cs.kind == "spans":
        return _f1(truth, pred)
    if cs.kind == "text":
        return float(normalize_text(truth) == normalize_text(pred))
    return float(truth == pred)


def task_score(spec: TaskSpec, truth: list[dict], pred: list[dict] | None) -> float:
    """One task's score in [0, 1]; a failed answer (None) scores 0."""
    if pred is None:
        return 0.0
    scores = [control_score(cs, comparable(cs, truth), comparable(cs, pred)) for cs in spec.controls]
    return sum(scores) / len(scores) if scores else 0.0


def control_metrics(cs: ControlSpec, pairs: list[tuple[list[dict], list[dict] | None]]) -> dict[str, float]:
    """The metrics of one control over (truth, prediction) region lists."""
    truths = [comparable(cs, t) for t, _ in pairs]
    preds = [comparable(cs, p) if p is not None else None for _, p in pairs]
    n = len(pairs)
    if cs.kind in ("choices", "taxonomy"):
        labels = sorted({lab for s in truths for lab in s} | {lab for s in preds if s for lab in s})
        f1s = []
        for lab in labels:
            tp = sum(lab in t and bool(p) and lab in p for t, p in zip(truths, preds, strict=True))
            fp = sum(bool(p) and lab in p and lab not in t for t, p in zip(truths, preds, strict=True))
            fn = sum(lab in t and not (p and lab in p) for t, p in zip(truths, preds, strict=True))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
        return {
            "accuracy": sum(t == p for t, p in zip(truths, preds, strict=True)) / n,
            "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        }
    if cs.kind == "spans":
        tp = sum(len(t & p) for t, p in zip(truths, preds, strict=True) if p is not None)
        n_pred = sum(len(p) for p in preds if p is not None)
        n_true = sum(len(t) for t in truths)
        precision = tp / n_pred if n_pred else float(n_true == 0)
        recall = tp / n_true if n_true else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1}
    if cs.kind == "text":
        return {
            "exact_match": sum(p is not None and t == p for t, p in zip(truths, preds, strict=True)) / n,
            "normalized_match": sum(
                p is not None and normalize_text(t) == normalize_text(p) for t, p in zip(truths, preds, strict=True)
            )
            / n,
        }
    return {"accuracy": sum(t == p for t, p in zip(truths, preds, strict=True)) / n}


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value for ``wins`` against ``losses`` (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass
class Arm:
    """What one way of asking (zero-shot or few-shot) got on the held-out tasks."""

    predictions: list[list[dict] | None] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # provider requests, retries included
    answers: int = 0  # answers asked for
    cached: int = 0
    failed: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def report(self, spec: TaskSpec, truths: list[list[dict]]) -> dict[str, Any]:
        pairs = list(zip(truths, self.predictions, strict=True))
        n = len(pairs)
        return {
            "score": sum(self.scores) / n if n else None,
            "controls": {cs.name: control_metrics(cs, pairs) for cs in spec.controls} if n else {},
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.tokens,
            "calls": self.calls,
            "answers": self.answers,
            "cached": self.cached,
            "failed": self.failed,
        }


#: labels one task: (texts, with examples?) -> (regions or None when the call failed, usage)
Labeler = Callable[[Any, bool], Awaitable[tuple[list[dict] | None, Any]]]


async def compare(
    spec: TaskSpec,
    heldout: list[Any],
    label: Labeler,
    *,
    concurrency: int,
    max_tokens: int,
    progress: Callable[[float, str], None],
) -> dict[str, Any]:
    """Label every held-out example zero-shot and with examples, ``concurrency`` tasks at a
    time (each call still passes the engine's MAX_CONCURRENT semaphore and 429 handling), and
    stop early once ``max_tokens`` are spent; the tasks done by then are the evaluation."""
    zero, few = Arm(), Arm()
    done: list[Any] = []
    stopped = None
    for start in range(0, len(heldout), max(1, concurrency)):
        chunk = heldout[start : start + concurrency]
        answers = await asyncio.gather(*(label(ex, with_examples) for ex in chunk for with_examples in (False, True)))
        for i, ex in enumerate(chunk):
            done.append(ex)
            for arm, (pred, usage) in ((zero, answers[2 * i]), (few, answers[2 * i + 1])):
                arm.answers += 1
                arm.predictions.append(pred)
                arm.scores.append(task_score(spec, ex.result, pred))
                arm.failed += pred is None
                if usage is not None:
                    arm.prompt_tokens += usage.usage.prompt_tokens
                    arm.completion_tokens += usage.usage.completion_tokens
                    arm.calls += usage.attempts
                    arm.cached += usage.cached
        progress(0.1 + 0.85 * len(done) / len(heldout), f"evaluated {len(done)} of {len(heldout)} held-out tasks")
        if zero.tokens + few.tokens >= max_tokens and len(done) < len(heldout):
            stopped = f"the token budget (LLM_FEWSHOT_EVAL_TOKENS={max_tokens}) was spent after {len(done)} tasks"
            break
    truths = [ex.result for ex in done]
    return {
        "heldout_tasks": len(done),
        "zero_shot": zero.report(spec, truths),
        "few_shot": few.report(spec, truths),
        "stopped_early": stopped,
        "_scores": (zero.scores, few.scores),
    }


def decide(zero_scores: list[float], few_scores: list[float], tolerance: float) -> dict[str, Any]:
    """The promotion decision (see the module docstring) and the numbers behind it."""
    n = len(zero_scores)
    if n == 0:
        return {"promote": False, "reason": "no held-out task could be evaluated"}
    zero, few = sum(zero_scores) / n, sum(few_scores) / n
    wins = sum(f > z for z, f in zip(zero_scores, few_scores, strict=True))
    losses = sum(f < z for z, f in zip(zero_scores, few_scores, strict=True))
    promote = few >= zero - tolerance - 1e-12
    p = sign_test(wins, losses)
    detail = (
        f"few-shot {few:.3f} vs zero-shot {zero:.3f} mean per-task score on {n} held-out tasks "
        f"({wins} better, {losses} worse, {n - wins - losses} the same; sign test p={p:.3f})"
    )
    reason = (
        f"promoted: {detail}"
        if promote
        else f"refused: {detail}; few-shot is worse by more than LLM_FEWSHOT_TOLERANCE={tolerance:g}, so the "
        "project keeps the version it serves"
    )
    return {
        "promote": promote,
        "reason": reason,
        "mean_difference": few - zero,
        "better": wins,
        "worse": losses,
        "sign_test_p": p,
    }
