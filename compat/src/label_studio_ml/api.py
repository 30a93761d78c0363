"""``label_studio_ml.api``: ``init_app`` for ``_wsgi.py`` and tests (``prelabel.compat.api``)."""

from prelabel.compat.api import LabelStudioMLApp, TestClient, TestResponse, init_app

__all__ = ["LabelStudioMLApp", "TestClient", "TestResponse", "init_app"]
