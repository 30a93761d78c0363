from modelscope_qwen_configs import CLASSIFICATION
from prelabel_modelscope_qwen import ModelScopeQwenBackend

from prelabel.testing import BackendConformanceTests


class TestConformance(BackendConformanceTests):
    """The fake provider comes from conftest.py's autouse fixture (MODELSCOPE_API_URL)."""

    backend_class = ModelScopeQwenBackend
    label_config = CLASSIFICATION
