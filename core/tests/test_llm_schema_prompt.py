"""prelabel.llm.schema and prompt: what the model is asked for, from the label config."""

from prelabel.labelconfig import parse_label_config
from prelabel.llm import build_messages, can_fill, task_spec
from prelabel.llm.prompt import DEFAULT_SYSTEM_PROMPT
from prelabel.testing import configs

ALL_KINDS = configs.TEXT_LLM_ALL_KINDS


def test_schema_has_one_field_per_fillable_control():
    spec = task_spec(parse_label_config(ALL_KINDS))
    props = spec.schema["properties"]
    assert list(props) == ["sentiment", "topics", "ner", "summary", "stars", "year", "tax"]
    assert spec.schema["required"] == list(props) and spec.schema["additionalProperties"] is False
    assert props["sentiment"] == {"type": ["string", "null"], "enum": ["pos", "neg", None]}
    assert props["topics"] == {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}
    span = props["ner"]["items"]
    assert span["required"] == ["label", "text"] and "start" not in span["properties"]
    assert span["properties"]["label"]["enum"] == ["Person"]
    assert props["summary"] == {"type": "string"}
    assert props["stars"]["maximum"] == 10 and props["stars"]["minimum"] == 1
    assert props["year"]["minimum"] == 1900 and props["year"]["maximum"] == 2100
    assert props["tax"]["items"]["enum"] == ["Animal", "Animal / Cat", "Animal / Dog", "Plant"]
    assert [c.name for c in spec.prompt_inputs] == ["prompt"]


def test_what_cannot_be_filled():
    config = parse_label_config(ALL_KINDS)
    assert not can_fill(config.control("prompt"))  # a person's instruction, not an output
    assert not can_fill(parse_label_config(configs.AUDIO_RATING).controls[0])
    hyper = parse_label_config(
        '<View><HyperText name="h" value="$html"/><Labels name="l" toName="h">'
        '<Label value="X"/></Labels><Choices name="c" toName="h"><Choice value="y"/>'
        "</Choices></View>"
    )
    assert not can_fill(hyper.control("l"))  # HyperText spans need XPath offsets
    assert can_fill(hyper.control("c"))


def test_spec_is_built_once_per_config():
    config = parse_label_config(configs.TEXT_NER)
    assert task_spec(config) is task_spec(config)


def test_messages_hold_instruction_labels_data_and_schema():
    spec = task_spec(parse_label_config(ALL_KINDS))
    system, user = build_messages(spec, {"text": "Ann adopted a cat in 2019."})
    assert system == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    text = user["content"]
    assert "<text>\nAnn adopted a cat in 2019.\n</text>" in text
    assert '"pos" (praise)' in text and '"Person" (PER)' in text
    assert "choose exactly one" in text and "choose one or more" in text
    assert "Hint: one sentence" in text and "from 1 to 10" in text and "(from 1900 to 2100)" in text
    assert "Animal / Cat" in text
    assert '"summary"' in text and '"prompt"' not in text.split("JSON schema")[0]
    assert build_messages(spec, {"text": "Ann adopted a cat in 2019."}) == [system, user]  # the cache relies on it


def test_control_attribute_and_instruction_override_the_defaults():
    xml = (
        '<View><Text name="code" value="$code"/><TextArea name="c" toName="code" '
        'llm_prompt="Explain for a junior developer: $code"/></View>'
    )
    spec = task_spec(parse_label_config(xml))
    _, user = build_messages(
        spec, {"code": "x = 1"}, instruction="Project rule: be brief ($lang).", system_prompt="SYS"
    )
    content = user["content"]
    assert content.startswith("Project rule: be brief ($lang).")  # unknown placeholders stay
    assert "Explain for a junior developer: x = 1" in content
    assert "Write the c" not in content
    assert "<code>" not in content  # the template already carries the data
    _, user2 = build_messages(spec, {"code": "x = 1"}, instruction="Label $code now")
    assert user2["content"].startswith("Label x = 1 now")
