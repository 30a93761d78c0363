"""UIE training examples -> model inputs, encoded the way Taskflow encodes them at inference.

Texts: ``[CLS] prompt [SEP] text [SEP]`` (UIE-X: ``[CLS] prompt [SEP] [SEP] text [SEP]``).
Documents (UIE-X): the text is tokenized line by line (a line is a run of characters sharing
one box), each token carries its line's box on a 0-1000 grid, and the page image goes in as
Taskflow resizes and normalizes it. Labels mark the tokens where each span starts and ends.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

SUMMARY_TOKENS = {"UIE": 3, "UIEM": 3, "UIEX": 4}
PAD_ID = {"UIE": 0, "UIEM": 0, "UIEX": 1}


@dataclass
class Feature:
    """One encoded window of one example."""

    input_ids: list[int]
    token_type_ids: list[int]
    position_ids: list[int]
    attention_mask: list[int]
    offsets: list[tuple[int, int] | None]  # content character offsets; None for prompt/special tokens
    start_labels: list[float]
    end_labels: list[float]
    bbox: list[list[int]] = field(default_factory=list)
    image: str | None = None  # key into the image table; None: a text (zero image)
    gold: set[tuple[int, int]] = field(default_factory=set)  # (start token, end token) of each span


def normalized_char_boxes(example: dict) -> list[list[int]]:
    """A 0-1000 box per content character of a document example (the line's box)."""
    width, height = example["image_size"]
    boxes: list[list[int]] = []
    for (x1, y1, x2, y2), text in example["layout"]:
        box = [int(x1 * 1000 / width), int(y1 * 1000 / height), int(x2 * 1000 / width), int(y2 * 1000 / height)]
        boxes.extend([box] * len(text))
    return boxes


def _token_of(offsets: list[tuple[int, int] | None], char: int) -> int:
    for i, span in enumerate(offsets):
        if span is not None and span[0] <= char < span[1]:
            return i
    return -1


def _labelled(feature: Feature, spans: list[tuple[int, int]]) -> Feature | None:
    n = len(feature.input_ids)
    feature.start_labels, feature.end_labels = [0.0] * n, [0.0] * n
    for start, end in spans:
        s, e = _token_of(feature.offsets, start), _token_of(feature.offsets, end - 1)
        if s < 0 or e < s:
            continue  # the span lies in truncated text
        feature.start_labels[s] = feature.end_labels[e] = 1.0
        feature.gold.add((s, e))
    return feature


def _encode_text(tokenizer: Any, family: str, prompt: str, text: str, max_seq_len: int) -> Feature | None:
    enc = tokenizer(
        text=[prompt],
        text_pair=[text],
        truncation=True,
        max_seq_len=max_seq_len,
        return_attention_mask=True,
        return_position_ids=True,
        return_offsets_mapping=True,
        return_dict=False,
    )[0]
    ids, raw = enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
    if len(raw) != len(ids):
        return None  # the tokenizer's offsets do not line up with its tokens (Taskflow fails here too)
    specials = [i for i, o in enumerate(raw) if o == (0, 0)]
    first_content = specials[1] + (2 if family == "UIEX" else 1)
    offsets = [o if i >= first_content and o != (0, 0) else None for i, o in enumerate(raw)]
    if family == "UIEX":
        q_sep = specials[1]
        token_type = [1 if i <= q_sep else 0 for i in range(len(ids))]
        return Feature(
            ids, token_type, list(range(len(ids))), [1] * len(ids), offsets, [], [], bbox=[[0, 0, 0, 0]] * len(ids)
        )
    token_type = enc.get("token_type_ids") or [0] * len(ids)
    return Feature(ids, token_type, list(range(len(ids))), [1] * len(ids), offsets, [], [])


def _encode_document(
    tokenizer: Any, prompt: str, text: str, boxes: list[list[int]], image: str, max_seq_len: int
) -> Feature | None:
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    prompt_ids = tokenizer(text=prompt, return_dict=False)["input_ids"][1:-1]
    ids = [cls_id, *prompt_ids, sep_id, sep_id]
    q_sep = len(prompt_ids) + 1
    offsets: list[tuple[int, int] | None] = [None] * len(ids)
    bbox = [[0, 0, 0, 0]] * len(ids)
    start = 0
    while start < len(text):  # lines: runs of characters with the same box, as Taskflow groups them
        end = start + 1
        while end < len(text) and boxes[end] == boxes[start]:
            end += 1
        enc = tokenizer(text=text[start:end], return_offsets_mapping=True, return_dict=False)
        line_ids, line_offsets = enc["input_ids"][1:-1], enc["offset_mapping"][1:-1]
        if len(line_ids) != len(line_offsets):
            return None
        ids += line_ids
        offsets += [(start + a, start + b) for a, b in line_offsets]
        bbox += [boxes[start]] * len(line_ids)
        start = end
    ids, offsets, bbox = ids[: max_seq_len - 1] + [sep_id], offsets[: max_seq_len - 1] + [None], bbox[: max_seq_len - 1]
    bbox = bbox + [[0, 0, 0, 0]]
    token_type = [1] * (q_sep + 1) + [0] * (len(ids) - q_sep - 1)
    return Feature(ids, token_type, list(range(len(ids))), [1] * len(ids), offsets, [], [], bbox=bbox, image=image)


def encode_example(example: dict, tokenizer: Any, family: str, max_seq_len: int) -> list[Feature]:
    """The features of one example: its content cut into windows as Taskflow cuts long texts
    (by characters), each window labelled with the spans that fit in it."""
    prompt, text = example["prompt"], example["content"]
    window = max(1, max_seq_len - len(prompt) - SUMMARY_TOKENS[family])
    is_doc = family == "UIEX" and example.get("layout")
    boxes = normalized_char_boxes(example) if is_doc else []
    features = []
    for lo in range(0, max(len(text), 1), window):
        hi = min(lo + window, len(text))
        piece = text[lo:hi]
        if is_doc:
            feature = _encode_document(tokenizer, prompt, piece, boxes[lo:hi], example["image"], max_seq_len)
        else:
            feature = _encode_text(tokenizer, family, prompt, piece, max_seq_len)
        if feature is None:
            continue
        spans = [
            (r["start"] - lo, r["end"] - lo) for r in example["result_list"] if lo <= r["start"] and r["end"] <= hi
        ]
        features.append(_labelled(feature, spans))
    return features


def image_tensor(image: Any) -> Any:
    """A page image as Taskflow feeds it to UIE-X (JPEG round trip, 224x224, normalized)."""
    from paddlenlp.utils.ie_utils import pad_image_data

    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG")  # Taskflow passes pages as JPEG (np2base64)
    return pad_image_data(buf.getvalue())


def collate(features: list[Feature], family: str) -> dict[str, Any]:
    """Numpy arrays for a batch, padded to its longest feature."""
    import numpy as np

    n = max(len(f.input_ids) for f in features)
    pad, type_pad = PAD_ID[family], (1 if family == "UIEX" else 0)

    def padded(rows: list[list], value: Any, dtype: str) -> Any:
        return np.array([r + [value] * (n - len(r)) for r in rows], dtype=dtype)

    batch = {
        "input_ids": padded([f.input_ids for f in features], pad, "int64"),
        "token_type_ids": padded([f.token_type_ids for f in features], type_pad, "int64"),
        "position_ids": padded([f.position_ids for f in features], 0, "int64"),
        "attention_mask": padded([f.attention_mask for f in features], 0, "int64"),
        "start_labels": padded([f.start_labels for f in features], 0.0, "float32"),
        "end_labels": padded([f.end_labels for f in features], 0.0, "float32"),
    }
    if family == "UIEX":
        batch["bbox"] = np.array([f.bbox + [[0, 0, 0, 0]] * (n - len(f.bbox)) for f in features], dtype="int64")
    return batch
