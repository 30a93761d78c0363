from prelabel_kimi import DEFAULT_LABEL_CONFIG, KimiBackend

from prelabel.testing import BackendConformanceTests


class TestConformance(BackendConformanceTests):
    """The fake provider comes from conftest.py's autouse fixture (MOONSHOT_BASE_URL)."""

    backend_class = KimiBackend
    label_config = DEFAULT_LABEL_CONFIG


class TestConformanceChoices(BackendConformanceTests):
    backend_class = KimiBackend
