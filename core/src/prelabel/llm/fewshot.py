"""Few-shot examples from a project's annotations, and the index that picks them per task.

A training job (:mod:`prelabel.llm.fit`) turns annotated tasks into :class:`Example` s (the
task's texts, and the annotation as the JSON answer the model is asked for) and stores them
in the version directory with a BM25 index over their texts (``bm25s``: numpy only, which
core already has through label-studio-sdk, and an index saved as plain ``.npy``/JSON files, so
a version directory stays small and loads in milliseconds; no embedding API, no network).

At predict time :meth:`ExampleIndex.select` picks, for one task, the most similar examples
and, for Choices and Taxonomy, at least one example of every label it can fit (coverage), all
within ``LLM_FEWSHOT_TOKEN_BUDGET`` estimated tokens. Labels (NER) examples show the spans as
``{"label", "text"}`` objects; TextArea examples are input/output pairs.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prelabel.llm.prompt import data_blocks
from prelabel.llm.schema import TAXONOMY_SEPARATOR, ControlSpec, TaskSpec
from prelabel.lsclient import usable_annotations

#: the version directory's sub-directory this module writes
DIRNAME = "fewshot"
EXAMPLES_FILE = "examples.jsonl"
INDEX_DIR = "bm25"
#: bump when what an example looks like in the prompt changes
EXAMPLES_FORMAT = 1
HEADER = "Examples labeled by this project's annotators (the most similar last). Label the data below the same way:"

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_SEGMENTS = re.compile(rf"[{_CJK}]+|[^{_CJK}\W_]+|\d+")
_IS_CJK = re.compile(rf"[{_CJK}]")


def tokens(text: str) -> list[str]:
    """Index terms: lower-cased words and numbers; runs of CJK characters (no spaces between
    words) as single characters plus character bigrams."""
    out: list[str] = []
    for seg in _SEGMENTS.findall(text.lower()):
        if _IS_CJK.match(seg):
            out += list(seg) + [seg[i : i + 2] for i in range(len(seg) - 1)]
        elif len(seg) > 1 or seg.isdigit():
            out.append(seg)
    return out


def estimate_tokens(text: str) -> int:
    """A provider-independent token estimate: about 4 ASCII characters per token, one token
    per other character (CJK tokenizers give about 0.7-1 per character)."""
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


@dataclass
class Example:
    """One annotated task: its texts, its answer in the prompt's JSON shape, its regions."""

    task_id: int | None
    data: dict[str, str]  # data key -> text, for the spec's objects
    answer: dict[str, Any]  # control name -> value, as the model is asked to give it
    result: list[dict]  # the annotation's regions of the spec's controls (for evaluation)
    labels: dict[str, list[str]] = field(default_factory=dict)  # control -> labels (coverage, agreement)
    tokens: int = 0  # estimated tokens of the example in the prompt

    @property
    def text(self) -> str:
        return "\n".join(self.data.values())


def answer_value(cs: ControlSpec, regions: list[dict]) -> Any:
    """The answer for one control, in the shape the prompt asks for, from Label Studio regions."""
    values = [r.get("value") or {} for r in regions if r.get("from_name") == cs.name]
    if cs.kind == "choices":
        picked = [c for v in values for c in v.get("choices") or []]
        return picked if cs.control.is_multiple else (picked[0] if picked else None)
    if cs.kind == "spans":
        return [
            {"label": (v.get("labels") or [""])[0], "text": v.get("text", "")}
            for v in values
            if v.get("labels") and v.get("text")
        ]
    if cs.kind == "text":
        lines = [str(t) for v in values for t in v.get("text") or [] if str(t).strip()]
        return "\n".join(lines) if lines else None
    if cs.kind in ("rating", "number"):
        found = [v.get(cs.kind) for v in values if v.get(cs.kind) is not None]
        return found[0] if found else None
    paths = [TAXONOMY_SEPARATOR.join(map(str, p)) for v in values for p in v.get("taxonomy") or []]
    return paths


def labels_of(cs: ControlSpec, value: Any) -> list[str]:
    """The labels an answer value names (choices, taxonomy paths, span labels)."""
    if cs.kind == "spans":
        return sorted({str(s.get("label", "")) for s in value or [] if isinstance(s, dict)})
    if cs.kind in ("choices", "taxonomy"):
        items = value if isinstance(value, list) else [value]
        return [str(v) for v in items if v is not None]
    return []


def _with_span_text(regions: list[dict], texts: dict[str, str]) -> list[dict]:
    """Span regions carry ``text`` in exports; fill it from the offsets where it is missing."""
    out = []
    for r in regions:
        v = r.get("value") or {}
        if r.get("type") == "labels" and not v.get("text") and isinstance(v.get("start"), int):
            text = texts.get(r.get("to_name", ""), "")
            r = {**r, "value": {**v, "text": text[v["start"] : v.get("end", v["start"])]}}
        out.append(r)
    return out


def examples_from_tasks(tasks: list[dict], spec: TaskSpec) -> list[Example]:
    """One example per annotated task (ground truth first, cancelled and empty annotations
    skipped) whose texts are all there and whose annotation fills at least one control."""
    names = {c.name for c in spec.controls}
    out = []
    for task in tasks:
        data = task.get("data") or {}
        texts = {o.data_key or "": data.get(o.data_key or "") for o in spec.objects}
        if any(not isinstance(t, str) or not t.strip() for t in texts.values()):
            continue
        by_object = {o.name: texts[o.data_key or ""] for o in spec.objects}
        for ann in usable_annotations(task):
            regions = _with_span_text([r for r in ann["result"] if r.get("from_name") in names], by_object)
            if not regions:
                continue
            answer = {cs.name: answer_value(cs, regions) for cs in spec.controls}
            example = Example(
                task.get("id"),
                texts,
                answer,
                regions,
                {cs.name: labels_of(cs, answer[cs.name]) for cs in spec.controls},
            )
            example.tokens = estimate_tokens(render_one(spec, example, 1))
            out.append(example)
            break
    return out


def split(
    examples: list[Example], holdout: float, max_heldout: int, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(train, held-out): a seeded shuffle of the examples in task order, the same split for
    the same annotations. At least one example on each side; at most ``max_heldout`` held out."""
    ordered = sorted(examples, key=lambda e: (e.task_id is None, e.task_id or 0))
    random.Random(seed).shuffle(ordered)
    n = min(max(1, round(len(ordered) * holdout)), max_heldout, len(ordered) - 1)
    return ordered[n:], ordered[:n]


def render_one(spec: TaskSpec, example: Example, number: int) -> str:
    answer = {cs.name: example.answer.get(cs.name) for cs in spec.controls}
    return (
        f"Example {number}:\n{data_blocks(spec, example.data)}\n"
        f"Answer: {json.dumps(answer, ensure_ascii=False, sort_keys=True)}"
    )


def render_examples(spec: TaskSpec, examples: list[Example]) -> str:
    """The few-shot block of the prompt (see :func:`prelabel.llm.prompt.build_messages`)."""
    return "\n\n".join([HEADER, *(render_one(spec, e, i) for i, e in enumerate(examples, 1))])


class ExampleIndex:
    """The examples of one version and their BM25 index (saved in the version directory)."""

    def __init__(self, examples: list[Example], retriever: Any):
        self.examples = examples
        self.retriever = retriever
        self.vocab = set(getattr(retriever, "vocab_dict", {}) or {})

    @classmethod
    def build(cls, examples: list[Example]) -> ExampleIndex:
        import bm25s

        retriever = bm25s.BM25()
        retriever.index([tokens(e.text) or ["\u2205"] for e in examples], show_progress=False)
        return cls(examples, retriever)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / EXAMPLES_FILE).open("w", encoding="utf-8") as f:
            for e in self.examples:
                f.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")
        self.retriever.save(str(directory / INDEX_DIR), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> ExampleIndex:
        import bm25s

        with (directory / EXAMPLES_FILE).open(encoding="utf-8") as f:
            examples = [Example(**json.loads(line)) for line in f if line.strip()]
        retriever = bm25s.BM25.load(str(directory / INDEX_DIR), show_progress=False, verbosity=0)
        return cls(examples, retriever)

    def scores(self, text: str) -> list[float]:
        query = [t for t in tokens(text) if t in self.vocab]
        if not query:
            return [0.0] * len(self.examples)
        return [float(s) for s in self.retriever.get_scores(query)]

    def select(self, spec: TaskSpec, text: str, k: int, budget: int) -> list[tuple[Example, float]]:
        """Up to ``k`` examples for a task, within ``budget`` estimated tokens: the most
        similar half first, then one example of each label not yet shown (Choices, Taxonomy),
        then the next most similar. Returned least similar first (the nearest sits next to the
        task in the prompt)."""
        scores = self.scores(text)
        order = sorted(range(len(self.examples)), key=lambda i: (-scores[i], i))
        covered_kinds = [c.name for c in spec.controls if c.kind in ("choices", "taxonomy")]
        wanted: list[int] = [i for i in order[: (k + 1) // 2] if scores[i] > 0]
        covered = {(c, lab) for i in wanted for c in covered_kinds for lab in self.examples[i].labels.get(c, [])}
        for i in order:
            new = {(c, lab) for c in covered_kinds for lab in self.examples[i].labels.get(c, [])} - covered
            if new and i not in wanted:
                wanted.append(i)
                covered |= new
        wanted += [i for i in order if i not in wanted]
        chosen, used = [], 0
        for i in wanted:
            if len(chosen) >= k:
                break
            cost = self.examples[i].tokens
            if used + cost <= budget:
                chosen.append(i)
                used += cost
        chosen.sort(key=lambda i: (scores[i], -i))
        return [(self.examples[i], scores[i]) for i in chosen]
