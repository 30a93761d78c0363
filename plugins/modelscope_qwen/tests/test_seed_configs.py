"""The five label configs of seed 001 (see README.md), each end to end through /predict."""

from __future__ import annotations

import pytest
from modelscope_qwen_configs import CLASSIFICATION, CODE_COMMENT, ERROR_LOG, TECH_QA, TEXT_ANALYSIS
from prelabel_modelscope_qwen import ModelScopeQwenBackend

from prelabel.labelconfig import parse_label_config
from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results


@pytest.fixture
def client(tmp_path):
    rt = make_runtime(ModelScopeQwenBackend, tmp_path / "home")
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def predict_one(client, config, data):
    resp = client.post("/predict", json={"tasks": [{"id": 1, "data": data}], "label_config": config})
    assert resp.status_code == 200, resp.text
    [item] = per_task_results(resp.json())
    assert "error" not in item, item["error"]
    assert not parse_label_config(config).interface.validate_prediction(item, return_errors=True)
    return item


def test_1_text_classification(client, fake_openai):
    fake_openai.responder = lambda req: {"category": "错误报告"}
    item = predict_one(client, CLASSIFICATION, {"text": "点击保存按钮后程序崩溃"})
    [region] = item["result"]
    assert (region["from_name"], region["type"], region["value"]) == ("category", "choices", {"choices": ["错误报告"]})
    schema = fake_openai.chat_requests[0].body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["category"]["enum"] == ["技术文档", "业务需求", "错误报告", None]


def test_1_classification_outside_the_config_is_not_invented(client, fake_openai):
    fake_openai.responder = lambda req: {"category": "用户反馈"}
    item = predict_one(client, CLASSIFICATION, {"text": "希望增加夜间模式"})
    assert item["result"] == []


@pytest.mark.parametrize(
    "config,obj,control,data,hint",
    [
        (CODE_COMMENT, "code", "comment", "def add(a, b):\n    return a + b", "为代码添加注释"),
        (TEXT_ANALYSIS, "text", "analysis", "季度营收同比增长 12%", "分析文本内容"),
        (TECH_QA, "question", "answer", "Python 的 GIL 是什么？", "提供技术解答"),
        (ERROR_LOG, "error_log", "solution", "Traceback: KeyError: 'user_id'", "错误分析和解决方案"),
    ],
    ids=["2_code_comment", "3_text_analysis", "4_technical_qa", "5_error_log"],
)
def test_textarea_configs(client, fake_openai, config, obj, control, data, hint):
    fake_openai.responder = lambda req: {control: f"generated {control}"}
    item = predict_one(client, config, {obj: data})
    [region] = item["result"]
    assert (region["from_name"], region["to_name"], region["type"]) == (control, obj, "textarea")
    assert region["value"] == {"text": [f"generated {control}"]}
    prompt = fake_openai.chat_requests[0].prompt
    assert f"<{obj}>\n{data}\n</{obj}>" in prompt and hint in prompt
    assert fake_openai.chat_requests[0].body["model"] == "Qwen/Qwen3-Coder-480B-A35B-Instruct"
