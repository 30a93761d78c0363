"""Phrases, prompts and the phrase-to-label assignment, deterministically (no model run)."""

from __future__ import annotations

import grounding_sam_configs as configs
import numpy as np
import pytest
from prelabel_grounding_sam.phrases import (
    Phrase,
    build_prompt,
    chunk_phrases,
    label_for_text,
    label_phrases,
    match_phrases,
    nms,
    prompt_phrases,
    token_spans,
)

from prelabel import parse_label_config


def controls(xml: str):
    return [c for c in parse_label_config(xml).controls if c.labels]


def test_label_phrases_come_from_values_predicted_values_and_hints():
    phrases = label_phrases(controls(configs.BOXES))
    assert phrases == [
        Phrase("car", "Car"),
        Phrase("truck", "Car"),
        Phrase("red car", "Car"),
        Phrase("person", "Person"),
        Phrase("pedestrian", "Person"),
    ]
    # two controls with the same labels: each phrase once
    assert [p.text for p in label_phrases(controls(configs.BOXES_AND_MASKS))] == ["car", "truck", "person"]


@pytest.mark.parametrize(
    ("typed", "label"),
    [
        ("Person", "Person"),
        ("truck", "Car"),
        ("Red Car", "Car"),
        ("a red car.", "Car"),
        ("two trucks", "Car"),
        ("pedestrians crossing", "Person"),
        ("bicycle", "Car"),  # nothing matches: the first label
    ],
)
def test_a_typed_phrase_gets_a_project_label(typed, label):
    assert label_for_text(typed, controls(configs.BOXES)) == label


def test_typed_prompts_split_into_labelled_phrases():
    phrases = prompt_phrases("football player. Referee, ball;  ", controls(configs.PROMPT_BRUSH))
    assert phrases == [Phrase("football player", "athlete"), Phrase("referee", "referee"), Phrase("ball", "athlete")]


def test_prompt_text_and_spans():
    text, spans = build_prompt([Phrase("car", "Car"), Phrase("red truck", "Car"), Phrase("person", "Person")])
    assert text == "car . red truck . person ."
    assert [text[a:b] for a, b in spans] == ["car", "red truck", "person"]


def test_token_spans_follow_the_tokenizer_offsets(model_root):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_root / "gdino-tiny")
    text, spans = build_prompt([Phrase("car", "Car"), Phrase("playing children", "Person"), Phrase("x", "Car")])
    encoded = tokenizer(text, return_offsets_mapping=True)
    assert encoded["input_ids"][0] == 101 and encoded["input_ids"][-1] == 102
    positions = token_spans(encoded["offset_mapping"], spans)
    words = [[tokenizer.convert_ids_to_tokens(encoded["input_ids"][p]) for p in span] for span in positions]
    assert words == [["car"], ["playing", "children"], ["x"]]
    dots = [i for i, t in enumerate(encoded["input_ids"]) if t == 1012]
    assert len(dots) == 3 and not set(dots) & {p for span in positions for p in span}


def test_the_regenerated_vocabulary_is_bert_base_uncased(model_root):
    """Same ids as blingfire's own bert-base-uncased tokenizer, and the ids the model needs."""
    import os

    import blingfire
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_root / "gdino-tiny")
    assert tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"]) == [101, 102, 1012, 1029]
    reference = blingfire.load_model(os.path.join(os.path.dirname(blingfire.__file__), "bert_base_tok.bin"))
    try:
        for text in [
            "a football player . referee .",
            "Unbelievably tiny pedestrians crossing the street ?",
            "traffic lights , fire hydrants and motorcycles",
        ]:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            expected = [int(i) for i in blingfire.text_to_ids(reference, text, 64, 100) if i]
            assert ids == expected, text
    finally:
        blingfire.free_model(reference)


def test_chunks_stay_within_the_token_limit():
    phrases = [Phrase(f"thing{i}", "Car") for i in range(10)]
    chunks = chunk_phrases(phrases, count_tokens=lambda text: 2, limit=11)  # 2 + 3 phrases x (2 + 1) = 11
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert [p for c in chunks for p in c] == phrases
    with pytest.raises(ValueError, match="longer than"):
        chunk_phrases([Phrase("long", "Car")], count_tokens=lambda text: 20, limit=11)


def test_each_box_takes_the_label_of_its_best_phrase():
    # tokens: 0 [CLS], 1 car, 2 ., 3 red, 4 truck, 5 ., 6 person, 7 ., 8 [SEP]
    spans = [[1], [3, 4], [6]]
    probs = np.zeros((5, 10), np.float32)
    probs[0, 6] = 0.9  # person
    probs[1, [1, 3, 4]] = [0.5, 0.8, 0.7]  # 'red truck' (mean 0.75) beats car (0.5)
    probs[2, [3, 4]] = [0.9, 0.1]  # confident box, but 'red truck' as a phrase only 0.5
    probs[3, 1] = 0.2  # below the box threshold
    probs[4, [0, 2, 8]] = 0.99  # only special tokens light up: not a phrase, no box
    matches = match_phrases(probs, spans, box_threshold=0.3, text_threshold=0.25)
    assert [(m.query, m.phrase) for m in matches] == [(0, 2), (1, 1), (2, 1)]
    assert matches[1].score == pytest.approx(0.8) and matches[1].phrase_score == pytest.approx(0.75)
    assert matches[2].score == pytest.approx(0.9) and matches[2].phrase_score == pytest.approx(0.5)
    strict = match_phrases(probs, spans, box_threshold=0.3, text_threshold=0.6)
    assert [(m.query, m.phrase) for m in strict] == [(0, 2), (1, 1)]
    tie = np.zeros((1, 10), np.float32)
    tie[0, [1, 6]] = 0.7
    assert match_phrases(tie, spans, 0.3, 0.25)[0].phrase == 0  # a tie goes to the earlier phrase
    assert match_phrases(probs, [[], []], 0.3, 0.25) == []


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.5, 0.9, 0.4, 0.3])
    assert nms(boxes, scores, 0.7) == [1, 2]
    assert nms(boxes, scores, 1.0) == [1, 0, 2, 3]
