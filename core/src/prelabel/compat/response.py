"""``ModelResponse``: what an upstream model's ``predict`` may return (label_studio_ml.response).

``PredictionValue`` is label-studio-sdk's own class, so ``from label_studio_sdk.label_interface.objects
import PredictionValue`` in a model file and ``from label_studio_ml.response import PredictionValue``
give the same thing.
"""

from __future__ import annotations

from label_studio_sdk.label_interface.objects import PredictionValue
from pydantic import BaseModel, ConfigDict

# one prediction, or several, per task
SingleTaskPredictions = list[PredictionValue] | PredictionValue


class ModelResponse(BaseModel):
    """Predictions for the tasks of one /predict call, in task order, and their model version."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str | None = None
    predictions: list[SingleTaskPredictions]

    def has_model_version(self) -> bool:
        return bool(self.model_version)

    def update_predictions_version(self) -> None:
        """Give every prediction without a model_version the response's."""
        for item in self.predictions:
            for prediction in item if isinstance(item, list) else [item]:
                if not prediction.model_version:
                    prediction.model_version = self.model_version

    def set_version(self, version: str) -> None:
        """Set the response's version and fill it into predictions that have none."""
        self.model_version = version
        self.update_predictions_version()


__all__ = ["ModelResponse", "PredictionValue", "SingleTaskPredictions"]
