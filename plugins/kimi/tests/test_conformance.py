from prelabel_kimi import DEFAULT_LABEL_CONFIG, KimiBackend

from prelabel.testing import BackendConformanceTests, configs

TRAINING_TEXTS = [
    f"review {i}: a {w} day at the shop"
    for i, w in enumerate(["happy", "sad", "plain", "great", "awful", "calm", "bright", "dull"])
]


class TestConformance(BackendConformanceTests):
    """The fake provider comes from conftest.py's autouse fixture (MOONSHOT_BASE_URL)."""

    backend_class = KimiBackend
    label_config = DEFAULT_LABEL_CONFIG
    training_tasks = configs.annotated_text_tasks(DEFAULT_LABEL_CONFIG, TRAINING_TEXTS)


class TestConformanceChoices(BackendConformanceTests):
    backend_class = KimiBackend
    training_tasks = configs.annotated_text_tasks(configs.TEXT_CHOICES, TRAINING_TEXTS)
