"""Prediction scores that mean something, so Label Studio's "sort by prediction score" puts the
least certain tasks first.

1. From the model, where the server returns token log-probabilities (``LLM_LOGPROBS``): the
   probability of the answer as given, ``exp(sum of its tokens' logprobs)``, when the answer
   is labels or numbers only (Choices, Taxonomy, Rating, Number); with free text or spans,
   whose answers are long, the per-token geometric mean ``exp(mean logprob)``.
2. Else, for a few-shot version, agreement with the retrieved neighbours: per control, the
   BM25-similarity-weighted share of the examples in the prompt whose answer equals this one
   (label sets for Choices and Taxonomy, span label sets for Labels, normalized text, the
   number), averaged over the controls.
3. Else (zero-shot, no logprobs) no score, as before.
"""

from __future__ import annotations

import math
from typing import Any

from prelabel.llm.evaluate import comparable, normalize_text
from prelabel.llm.fewshot import Example
from prelabel.llm.schema import ControlSpec, TaskSpec

LONG_ANSWERS = frozenset({"spans", "text"})


def from_logprobs(spec: TaskSpec, logprobs: list[float]) -> float:
    if any(cs.kind in LONG_ANSWERS for cs in spec.controls):
        return math.exp(sum(logprobs) / len(logprobs))
    return math.exp(sum(logprobs))


def _agreement_key(cs: ControlSpec, regions: list[dict]) -> Any:
    value = comparable(cs, regions)
    if cs.kind == "spans":
        return frozenset(label for label, _, _ in value)
    if cs.kind == "text":
        return normalize_text(value)
    return value


def from_neighbours(spec: TaskSpec, result: list[dict], neighbours: list[tuple[Example, float]]) -> float | None:
    if not neighbours or not spec.controls:
        return None
    weights = [max(score, 0.0) for _, score in neighbours]
    if sum(weights) <= 0:
        weights = [1.0] * len(neighbours)
    total = sum(weights)
    per_control = []
    for cs in spec.controls:
        mine = _agreement_key(cs, result)
        agree = sum(w for (ex, _), w in zip(neighbours, weights, strict=True) if _agreement_key(cs, ex.result) == mine)
        per_control.append(agree / total)
    return sum(per_control) / len(per_control)


def prediction_score(
    spec: TaskSpec, result: list[dict], logprobs: list[float] | None, neighbours: list[tuple[Example, float]] | None
) -> float | None:
    """The score of one prediction (see the module docstring); None when there is no basis."""
    if not result:
        return None
    if logprobs:
        return round(from_logprobs(spec, logprobs), 6)
    score = from_neighbours(spec, result, neighbours or [])
    return None if score is None else round(score, 6)
