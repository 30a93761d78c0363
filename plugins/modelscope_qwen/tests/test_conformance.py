from modelscope_qwen_configs import CLASSIFICATION
from prelabel_modelscope_qwen import ModelScopeQwenBackend

from prelabel.testing import BackendConformanceTests, configs


class TestConformance(BackendConformanceTests):
    """The fake provider comes from conftest.py's autouse fixture (MODELSCOPE_API_URL)."""

    backend_class = ModelScopeQwenBackend
    label_config = CLASSIFICATION
    training_tasks = configs.annotated_text_tasks(CLASSIFICATION, [f"第{i}号文档：接口说明与需求" for i in range(8)])
