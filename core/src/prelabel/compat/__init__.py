"""Run label-studio-ml-backend models unchanged.

A ``model.py`` written for label-studio-ml-backend (a ``LabelStudioMLBase`` subclass with
``setup``, ``predict(tasks, context, **kwargs)`` and ``fit(event, data, **kwargs)``) is served
with ``prelabel serve --model-file path/to/model.py[:ClassName]``. ``LabelStudioMLBase`` and
``ModelResponse`` here have upstream's API; :func:`adapt` turns such a class into a prelabel
Backend, and :func:`init_app` serves one the way an upstream ``_wsgi.py`` and its tests expect.
``pip install "prelabel[compat]"`` adds the ``label_studio_ml`` package that re-exports these.
See docs/moving-from-label-studio-ml-backend.md for what differs.
"""

# Names load on first use (PEP 562), so that core can import prelabel.compat.hooks without
# importing the adapter, and the adapter without the server.
_EXPORTS = {
    "LabelStudioMLAdapter": "prelabel.compat.adapter",
    "adapt": "prelabel.compat.adapter",
    "is_model_class": "prelabel.compat.adapter",
    "init_app": "prelabel.compat.api",
    "LabelStudioMLBase": "prelabel.compat.base",
    "load_model_file": "prelabel.compat.loader",
    "ModelResponse": "prelabel.compat.response",
    "PredictionValue": "prelabel.compat.response",
}

__all__ = [
    "LabelStudioMLAdapter",
    "LabelStudioMLBase",
    "ModelResponse",
    "PredictionValue",
    "adapt",
    "init_app",
    "is_model_class",
    "load_model_file",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prelabel.compat' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
