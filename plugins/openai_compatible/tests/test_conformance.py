from prelabel_openai_compatible import OpenAICompatibleBackend

from prelabel.testing import BackendConformanceTests, configs

TRAINING_TEXTS = [
    f"review {i}: a {w} day at the shop"
    for i, w in enumerate(["happy", "sad", "plain", "great", "awful", "calm", "bright", "dull"])
]


class TestConformance(BackendConformanceTests):
    """The fake server comes from conftest.py's autouse fixture (LLM_BASE_URL)."""

    backend_class = OpenAICompatibleBackend
    training_tasks = configs.annotated_text_tasks(configs.TEXT_CHOICES, TRAINING_TEXTS)


class TestConformanceSpans(BackendConformanceTests):
    backend_class = OpenAICompatibleBackend
    label_config = configs.TEXT_NER
    training_tasks = configs.annotated_text_tasks(configs.TEXT_NER, TRAINING_TEXTS)
