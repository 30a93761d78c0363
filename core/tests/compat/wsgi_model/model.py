"""A label-studio-ml model of our own, in the layout upstream's examples use (model.py next to
_wsgi.py): a keyword sentiment classifier. It touches the API surface upstream's example tests
rely on: get_first_tag_occurence, preload_task_data, ModelResponse with PredictionValues,
get/set of the model version, and a module-level function a test can patch."""

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from label_studio_sdk.label_interface.objects import PredictionValue

POSITIVE = {"good", "great", "love", "wonderful"}


def score_words(words: list[str]) -> float:
    """Share of positive words (tests patch this to prove the model runs in their process)."""
    return sum(w in POSITIVE for w in words) / max(1, len(words))


class KeywordSentiment(LabelStudioMLBase):
    LABELS = ("positive", "negative")

    def setup(self):
        self.set("model_version", "KeywordSentiment-v1")

    def predict(self, tasks, context=None, **kwargs):
        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Choices", "Text")
        predictions = []
        for task in tasks:
            text = self.preload_task_data(task, task["data"][value])
            share = score_words(str(text).lower().split())
            label = self.LABELS[0] if share > 0 else self.LABELS[1]
            if context and context.get("result"):  # interactive: echo the annotator's choice
                label = context["result"][0]["value"]["choices"][0]
            predictions.append(
                PredictionValue(
                    score=round(share, 3),
                    result=[
                        {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}
                    ],
                )
            )
        return ModelResponse(predictions=predictions, model_version=self.get("model_version"))

    def fit(self, event, data, **kwargs):
        self.set("last_event", event)
        self.set("model_version", "KeywordSentiment-v2")
        return {"event": event}
