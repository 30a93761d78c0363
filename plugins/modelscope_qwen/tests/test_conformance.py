from prelabel_modelscope_qwen import ModelScopeQwenBackend

from prelabel.testing import BackendConformanceTests, configs

CLASSIFICATION = """<View>
  <Text name="text" value="$text"/>
  <Choices name="category" toName="text">
    <Choice value="技术文档"/>
    <Choice value="业务需求"/>
    <Choice value="错误报告"/>
  </Choices>
</View>"""


class TestConformance(BackendConformanceTests):
    """The fake provider comes from conftest.py's autouse fixture (MODELSCOPE_API_URL)."""

    backend_class = ModelScopeQwenBackend
    label_config = CLASSIFICATION
    training_tasks = configs.annotated_text_tasks(CLASSIFICATION, [f"第{i}号文档：接口说明与需求" for i in range(8)])
