"""Text prompts and which project label each detected box gets (pure Python and numpy).

Grounding DINO scores every box against every token of the prompt. Upstream turns the tokens
above a threshold back into text and leaves the region unlabeled; here the prompt is built
from phrases that each belong to one project label, so a box gets the label of the phrase
whose tokens score highest, deterministically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from prelabel import ControlInfo


@dataclass(frozen=True)
class Phrase:
    """One phrase of the prompt (lower case, as the model reads it) and its project label."""

    text: str
    label: str


def clean(text: str) -> str:
    """Lower case, single spaces, no '.' or '?' (the model's phrase separators)."""
    return " ".join(re.sub(r"[.?]", " ", str(text)).lower().split())


def label_phrases(controls: Sequence[ControlInfo]) -> list[Phrase]:
    """The prompt for a whole project: each label's value, ``predicted_values`` and ``hint``
    (``ControlInfo.hints``); a phrase two labels share goes to the first."""
    found: dict[str, Phrase] = {}
    for control in controls:
        for label in control.labels:
            for hint in control.hints(label):
                text = clean(hint)
                if text and text not in found:
                    found[text] = Phrase(text, label)
    return list(found.values())


def label_for_text(text: str, controls: Sequence[ControlInfo]) -> str:
    """The project label for a phrase someone typed: a label or ``predicted_values`` name
    (case-insensitive), else the longest label/hint phrase inside it as whole words ('red
    car' -> Car, plurals too), else the first label of the first control."""
    text = clean(text)
    for control in controls:
        mapped = control.map_label(text)
        if mapped:
            return mapped
    candidates = sorted(
        ((clean(h), label) for c in controls for label in c.labels for h in c.hints(label)),
        key=lambda item: -len(item[0]),
    )
    for hint, label in candidates:
        if hint and re.search(rf"(^|\s){re.escape(hint)}(s|es)?(\s|$)", text):
            return label
    return next(label for c in controls for label in c.labels)


def prompt_phrases(prompt: str, controls: Sequence[ControlInfo]) -> list[Phrase]:
    """A typed prompt ('football player. referee') -> its phrases, each with a project label."""
    phrases: dict[str, Phrase] = {}
    for part in re.split(r"[.,;\n]+", prompt):
        text = clean(part)
        if text and text not in phrases:
            phrases[text] = Phrase(text, label_for_text(text, controls))
    return list(phrases.values())


def build_prompt(phrases: Sequence[Phrase]) -> tuple[str, list[tuple[int, int]]]:
    """'car . person .' and each phrase's character span in it."""
    parts, spans, pos = [], [], 0
    for phrase in phrases:
        spans.append((pos, pos + len(phrase.text)))
        parts.append(phrase.text)
        pos += len(phrase.text) + 3  # " . "
    return " . ".join(parts) + " .", spans


def token_spans(offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """For each phrase, the positions of the tokens inside its characters (from a fast
    tokenizer's offset mapping; special tokens have empty offsets and belong to none)."""
    spans: list[list[int]] = [[] for _ in char_spans]
    for position, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        for k, (lo, hi) in enumerate(char_spans):
            if lo <= start and end <= hi:
                spans[k].append(position)
                break
    return spans


def chunk_phrases(phrases: Sequence[Phrase], count_tokens: Callable[[str], int], limit: int) -> list[list[Phrase]]:
    """Split the phrases into prompts of at most ``limit`` tokens ([CLS], [SEP] and the '.'
    after each phrase included): Grounding DINO reads 256 tokens at most."""
    chunks: list[list[Phrase]] = [[]]
    used = 2
    for phrase in phrases:
        cost = count_tokens(phrase.text) + 1
        if cost + 2 > limit:
            raise ValueError(f"the phrase {phrase.text[:60]!r} is longer than the model's {limit} tokens")
        if used + cost > limit and chunks[-1]:
            chunks.append([])
            used = 2
        chunks[-1].append(phrase)
        used += cost
    return [c for c in chunks if c]


@dataclass(frozen=True)
class Match:
    """A box (query) matched to a phrase: the box's confidence and the phrase's."""

    query: int
    phrase: int
    score: float
    phrase_score: float


def match_phrases(
    probs: np.ndarray, spans: Sequence[Sequence[int]], box_threshold: float, text_threshold: float
) -> list[Match]:
    """``probs``: queries x tokens (sigmoid of the logits). A box's confidence is its best
    token of any phrase (as upstream's); a phrase's score is the mean over its tokens, so
    'red truck' needs both words. A box takes the phrase with the best score (ties: the
    earlier phrase) and is kept when its confidence beats ``box_threshold`` and that phrase
    score beats ``text_threshold``."""
    usable = [k for k, span in enumerate(spans) if span]
    if not usable or probs.size == 0:
        return []
    tokens = sorted({t for k in usable for t in spans[k]})
    confidence = probs[:, tokens].max(axis=1)
    per_phrase = np.stack([probs[:, list(spans[k])].mean(axis=1) for k in usable], axis=1)  # Q x P
    best = per_phrase.argmax(axis=1)
    best_score = per_phrase[np.arange(len(per_phrase)), best]
    kept = np.nonzero((confidence > box_threshold) & (best_score > text_threshold))[0]
    return [Match(int(q), usable[int(best[q])], float(confidence[q]), float(best_score[q])) for q in kept]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression (boxes x1 y1 x2 y2), best first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order or iou >= 1:
            continue
        rest = np.array(order)
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = [j for j, o in zip(rest.tolist(), overlap.tolist(), strict=True) if o <= iou]
    return keep
