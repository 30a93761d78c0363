"""``label_studio_ml.model``: the model base class (``prelabel.compat.base``)."""

from prelabel.compat.base import LabelStudioMLBase, ModelResponse, PredictionValue
from prelabel.compat.utils import is_preload_needed

__all__ = ["LabelStudioMLBase", "ModelResponse", "PredictionValue", "is_preload_needed"]
