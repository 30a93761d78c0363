"""A model in the shape of label-studio-ml-backend's scaffold (``label-studio-ml create``):
setup() sets the version, predict() returns a ModelResponse, fit() keeps data with get/set
and moves the version on. Served by prelabel unchanged."""

# ruff: noqa: UP006, UP035, UP045  (upstream's typing style, kept as model authors write it)

from typing import Dict, List, Optional

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse


class NewModel(LabelStudioMLBase):
    """The shape a generated upstream model has: version in setup, a keyword rule in predict,
    cached data and a version bump in fit (our own code, written for these tests)."""

    def setup(self):
        self.set("model_version", "0.0.1")

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> ModelResponse:
        # generated models print what they received; prelabel must not mind stdout
        print(
            f"predict: {len(tasks)} task(s), context={context}, project={self.project_id}, "
            f"extra={self.extra_params}, config has {len(self.parsed_label_config)} control(s)"
        )

        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Choices", "Text")
        labels = self.label_interface.get_control(from_name).labels
        # the "model": the first choice whose name occurs in the text, else the last one
        predictions = []
        for task in tasks:
            text = str(task["data"].get(value, "")).lower()
            choice = next((label for label in labels if label.lower() in text), labels[-1])
            predictions.append(
                {
                    "result": [
                        {
                            "from_name": from_name,
                            "to_name": to_name,
                            "type": "choices",
                            "value": {"choices": [choice]},
                        }
                    ],
                    "score": 0.5,
                }
            )
        return ModelResponse(predictions=predictions)

    def fit(self, event, data, **kwargs):
        previous = (self.get("my_data"), self.get("model_version"))
        print(f"fit on {event}: had {previous}")
        self.set("my_data", "my_new_data_value")
        self.bump_model_version()
        print(f"fit done: now {self.get('my_data')}, version {self.get('model_version')}")
