"""A synthetic task set whose labels can only be learned from examples, and fake-provider
responders for it (tests and ``bench/llm_fewshot.py``).

Each text mentions one made-up code word; the code word decides the label, by a mapping no
model could guess. :func:`examples_help` answers right only when the prompt's few-shot block
holds an example with the same code word (else it guesses the first label);
:func:`examples_hurt` knows the mapping but, once given examples, copies the first example's
answer. Both are responders for :class:`~prelabel.testing.fake_openai.FakeOpenAI`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.fake_openai import FakeRequest, Reply

__all__ = ["CODES", "CONFIG", "LABELS", "annotated", "code_of", "examples_help", "examples_hurt", "keyword_tasks"]

CONFIG = TEXT_CHOICES
CONTROL = "sentiment"
LABELS = ("positive", "negative", "neutral")
CODES = (
    "zorblat",
    "quinmor",
    "vexandi",
    "prulok",
    "ambrith",
    "soltrev",
    "kimbaro",
    "draxul",
    "felnoc",
    "yurmid",
    "ostrak",
    "belvune",
)
_MAPPING = {code: LABELS[i % 3] for i, code in enumerate(CODES)}
_FILLER = (
    "the",
    "customer",
    "wrote",
    "about",
    "order",
    "yesterday",
    "and",
    "asked",
    "again",
    "today",
    "ticket",
    "note",
    "mentioned",
    "before",
    "lunch",
)
_CODE = re.compile("|".join(CODES))
MARKER = "The data to label:"  # what build_messages puts before the task's texts


def label_of(code: str) -> str:
    return _MAPPING[code]


def keyword_tasks(n: int, seed: int = 0, start_id: int = 1) -> list[tuple[int, str, str]]:
    """``n`` (task id, text, label) triples, each code word used in turn, texts unique."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        code = CODES[i % len(CODES)]
        words = rng.sample(_FILLER, 6) + [code, f"#{seed}-{i}"]
        rng.shuffle(words)
        out.append((start_id + i, " ".join(words), label_of(code)))
    return out


def annotated(tasks: list[tuple[int, str, str]]) -> list[dict]:
    """The tasks as Label Studio exports them, each with one annotation of its label."""
    return [
        {
            "id": tid,
            "data": {"text": text},
            "annotations": [
                {
                    "id": tid,
                    "result": [
                        {"from_name": CONTROL, "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ],
                }
            ],
        }
        for tid, text, label in tasks
    ]


def code_of(text: str) -> str | None:
    found = _CODE.search(text)
    return found.group(0) if found else None


def _split(prompt: str) -> tuple[str, str]:
    """(the few-shot block, or "", the task's own texts)."""
    head, _, data = prompt.partition(MARKER)
    start = head.find("Example 1:")
    return (head[start:] if start >= 0 else ""), data


def _examples(block: str) -> list[tuple[str, dict]]:
    """(example text, its answer) pairs of a few-shot block."""
    out = []
    for part in re.split(r"Example \d+:\n", block)[1:]:
        text, _, answer = part.rpartition("\nAnswer: ")
        out.append((text, json.loads(answer.strip().splitlines()[0])))
    return out


def examples_help(logprob: float | None = None) -> Callable[[FakeRequest], Reply]:
    """Right only when an example with the task's code word is in the prompt."""

    def respond(req: FakeRequest) -> Reply:
        block, data = _split(req.prompt)
        code = code_of(data)
        for text, answer in _examples(block):
            if code and code_of(text) == code:
                return Reply(content={CONTROL: answer.get(CONTROL)}, logprob=logprob)
        return Reply(content={CONTROL: LABELS[0]}, logprob=None if logprob is None else 3 * logprob)

    return respond


def examples_hurt() -> Callable[[FakeRequest], Reply]:
    """Right zero-shot; with examples, copies the first example's answer."""

    def respond(req: FakeRequest) -> Reply:
        block, data = _split(req.prompt)
        examples = _examples(block)
        if examples:
            return Reply(content={CONTROL: examples[0][1].get(CONTROL)})
        code = code_of(data)
        return Reply(content={CONTROL: label_of(code) if code else LABELS[0]})

    return respond
