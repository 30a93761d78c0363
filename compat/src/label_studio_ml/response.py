"""``label_studio_ml.response``: what ``predict`` returns (``prelabel.compat.response``)."""

from prelabel.compat.response import ModelResponse, PredictionValue, SingleTaskPredictions

__all__ = ["ModelResponse", "PredictionValue", "SingleTaskPredictions"]
