"""Run label-studio-ml-backend models unchanged.

A ``model.py`` written for label-studio-ml-backend (a ``LabelStudioMLBase`` subclass with
``setup``, ``predict(tasks, context, **kwargs)`` and ``fit(event, data, **kwargs)``) is served
with ``prelabel serve --model-file path/to/model.py[:ClassName]``. ``LabelStudioMLBase`` and
``ModelResponse`` here have upstream's API; :func:`adapt` turns such a class into a prelabel
Backend, and :func:`init_app` serves one the way an upstream ``_wsgi.py`` and its tests expect.
``pip install "prelabel[compat]"`` adds the ``label_studio_ml`` package that re-exports these.
See docs/moving-from-label-studio-ml-backend.md for what differs.
"""

from prelabel.compat.adapter import LabelStudioMLAdapter, adapt, is_model_class
from prelabel.compat.api import init_app
from prelabel.compat.base import LabelStudioMLBase
from prelabel.compat.loader import load_model_file
from prelabel.compat.response import ModelResponse, PredictionValue

__all__ = ["LabelStudioMLAdapter", "LabelStudioMLBase", "ModelResponse", "PredictionValue", "adapt", "init_app",
           "is_model_class", "load_model_file"]
