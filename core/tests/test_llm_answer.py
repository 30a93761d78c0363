"""prelabel.llm.answer: tolerant parsing and strict mapping to Label Studio regions."""

import pytest

from prelabel.labelconfig import parse_label_config
from prelabel.llm import MalformedAnswer, extract_json, locate, task_spec, to_regions
from prelabel.testing import configs

ALL_KINDS = configs.TEXT_LLM_ALL_KINDS


@pytest.mark.parametrize(
    "reply",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        'Sure! Here it is:\n```\n{"a": 1}\n```\nAnything else?',
        'The answer is {"a": 1} as requested. {"b": 2}',
        '<think>maybe {"a": 0}? no</think>\n{"a": 1}',
    ],
)
def test_extract_json_is_tolerant(reply):
    assert extract_json(reply) == {"a": 1}


@pytest.mark.parametrize("reply", ["", "positive", "[1, 2]", "{not json}", '```json\n{"a": \n```'])
def test_extract_json_refuses_what_is_not_an_object(reply):
    with pytest.raises(MalformedAnswer):
        extract_json(reply)


def _regions(xml, answer, text):
    config = parse_label_config(xml)
    result, problems = to_regions(task_spec(config), answer, {"text": text})
    if result:
        errors = config.interface.validate_prediction({"result": result}, return_errors=True)
        assert not errors, errors
    return result, problems


def test_choice_outside_the_config_is_dropped_and_reported():
    result, problems = _regions(configs.TEXT_CHOICES, {"sentiment": "ecstatic"}, "x")
    assert result == [] and "'ecstatic' is not one of the project's choices" in problems[0]
    result, problems = _regions(configs.TEXT_CHOICES, {"SENTIMENT": "Positive"}, "x")
    assert result[0]["value"] == {"choices": ["positive"]} and problems == []


def test_single_choice_keeps_one_multiple_keeps_all():
    result, _ = _regions(configs.TEXT_CHOICES, {"sentiment": ["negative", "positive"]}, "x")
    assert result[0]["value"]["choices"] == ["negative"]
    result, problems = _regions(configs.TEXT_CHOICES_MULTIPLE, {"topics": ["tech", "sports", "cooking", "tech"]}, "x")
    assert result[0]["value"]["choices"] == ["tech", "sports"] and len(problems) == 1


def test_spans_get_exact_offsets_from_their_text():
    text = "Barack Obama met Angela Merkel in Berlin. Obama left."
    answer = {
        "label": [
            {"label": "Person", "text": "Obama"},
            {"label": "LOC", "text": "berlin"},
            {"label": "Organization", "text": "the UN"},
            {"label": "Animal", "text": "Obama"},
        ]
    }
    result, problems = _regions(configs.TEXT_NER, answer, text)
    got = sorted((r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in result)
    assert got == [(7, 12, "Person"), (34, 40, "Location"), (42, 47, "Person")]
    for r in result:
        assert text[r["value"]["start"] : r["value"]["end"]] == r["value"]["text"]
    assert any("'the UN' does not occur" in p for p in problems)
    assert any("'Animal' is not one of the project's labels" in p for p in problems)


def test_spans_survive_reflowed_whitespace_and_other_shapes():
    text = "New   York\nCity is big"
    assert locate(text, "New York City") == [(0, 15)]
    result, _ = _regions(configs.TEXT_NER, {"label": {"Location": ["New York City"]}}, text)
    assert result[0]["value"]["text"] == "New   York\nCity"
    result, _ = _regions(configs.TEXT_NER, {"label": [["big", "Location"]]}, text)
    assert result[0]["value"]["start"] == 19


def test_textarea_rating_number_taxonomy():
    answer = {
        "summary": "A cat.",
        "stars": "7",
        "year": 2019.0,
        "tax": ["Animal / Cat", "Dog", "Fungus"],
        "sentiment": None,
        "topics": [],
        "ner": [],
    }
    result, problems = _regions(ALL_KINDS, answer, "Ann adopted a cat in 2019.")
    by_name = {r["from_name"]: r["value"] for r in result}
    assert by_name["summary"] == {"text": ["A cat."]}
    assert by_name["stars"] == {"rating": 7}
    assert by_name["year"] == {"number": 2019} and isinstance(by_name["year"]["number"], int)
    assert by_name["tax"] == {"taxonomy": [["Animal", "Cat"], ["Animal", "Dog"]]}
    assert problems == ["tax: 'Fungus' is not a path of the project's taxonomy"]
    assert "sentiment" not in by_name and "ner" not in by_name


def test_an_object_is_not_text():
    # what SmolLM2-135M answers in JSON mode when the prompt shows a JSON schema: its shape
    result, problems = _regions(configs.TEXT_TEXTAREA, {"label": {"type": "string"}}, "x")
    assert result == [] and problems == ["label: \"{'type': 'string'}\" is not text"]


def test_out_of_range_numbers_are_dropped():
    result, problems = _regions(ALL_KINDS, {"stars": 11, "year": "soon"}, "x")
    assert result == [] and len(problems) == 2


def test_a_renamed_only_key_is_accepted():
    result, _ = _regions(configs.TEXT_TEXTAREA, {"answer": "hello"}, "x")
    assert result[0]["from_name"] == "label" and result[0]["value"] == {"text": ["hello"]}
