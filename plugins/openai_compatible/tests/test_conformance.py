from prelabel_openai_compatible import OpenAICompatibleBackend

from prelabel.testing import BackendConformanceTests, configs


class TestConformance(BackendConformanceTests):
    """The fake server comes from conftest.py's autouse fixture (LLM_BASE_URL)."""

    backend_class = OpenAICompatibleBackend


class TestConformanceSpans(BackendConformanceTests):
    backend_class = OpenAICompatibleBackend
    label_config = configs.TEXT_NER
