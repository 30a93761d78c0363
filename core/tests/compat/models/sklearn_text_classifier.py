"""A model in the shape of label-studio-ml-backend's sklearn_text_classifier example: a text
classifier for Choices on Text, trained in fit() from the project's annotated tasks, which it
asks Label Studio for (or takes from the legacy /train call). ``minilearn`` stands in for
scikit-learn so the test needs no dependency. Served by prelabel unchanged."""

# ruff: noqa: UP006, UP035, UP045  (upstream's typing style, kept as model authors write it)

import logging
import os
import pickle
from typing import Dict, List, Optional

import httpx
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from label_studio_ml.utils import DATA_UNDEFINED_NAME
from minilearn import make_pipeline

logger = logging.getLogger(__name__)


class SklearnTextClassifier(LabelStudioMLBase):
    """Custom ML Backend model"""

    # define model parameters
    # ALPHA is the smoothing of the naive Bayes model
    ALPHA = float(os.getenv("ALPHA", 1.0))
    # Label Studio host - to be used for training
    LABEL_STUDIO_HOST = os.getenv("LABEL_STUDIO_HOST", "http://localhost:8080")
    # Label Studio API key - to be used for training
    LABEL_STUDIO_API_KEY = os.getenv("LABEL_STUDIO_API_KEY")
    # Start training each N updates
    START_TRAINING_EACH_N_UPDATES = int(os.getenv("START_TRAINING_EACH_N_UPDATES", 10))

    def setup(self):
        self.set("model_version", f"{self.__class__.__name__}-v0.0.1")
        self._model, self._model_version = None, None

    def model_path(self):
        return os.path.join(os.getenv("MODEL_DIR", "."), f"model-{self.project_id}.pkl")

    def get_model(self, blank=False):
        # Lazy initialization of the model; another process may have trained a newer one
        version = self.get("model_version")
        if self._model is not None and not blank and self._model_version == version:
            logger.debug("Model is already initialized")
            return self._model

        model_path = self.model_path()
        if not os.path.exists(model_path) or blank:
            model = make_pipeline(self.ALPHA)
            config = self.get_label_studio_parameters()
            logger.info(f"Creating a new model using labels: {config['labels']}")
            model.fit(X=config["labels"], y=list(range(len(config["labels"]))))
        else:
            logger.info(f"Loading model from {model_path}")
            with open(model_path, "rb") as f:
                model = pickle.load(f)
        self._model, self._model_version = model, version
        return model

    def get_label_studio_parameters(self) -> Dict:
        # Expect labeling config to have only one output of <Choices> type and one input of <Text> type
        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Choices", "Text")
        labels = sorted(self.label_interface.get_tag(from_name).labels)
        return {"from_name": from_name, "to_name": to_name, "value": value, "labels": labels}

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> ModelResponse:
        model = self.get_model()
        config = self.get_label_studio_parameters()

        input_texts = []
        for task in tasks:
            input_text = task["data"].get(config["value"]) or task["data"].get(DATA_UNDEFINED_NAME)
            input_texts.append(input_text)

        probabilities = model.predict_proba(input_texts)

        predictions = []
        for row in probabilities:
            idx = max(range(len(row)), key=row.__getitem__)
            predicted_label = config["labels"][model.classes_[idx]]
            result = [
                {
                    "from_name": config["from_name"],
                    "to_name": config["to_name"],
                    "type": "choices",
                    "value": {"choices": [predicted_label]},
                }
            ]
            predictions.append({"result": result, "score": row[idx], "model_version": self.get("model_version")})

        return ModelResponse(predictions=predictions, model_version=self.get("model_version"))

    def _get_tasks(self, project_id: int) -> List[Dict]:
        """The project's annotated tasks, from Label Studio's export API."""
        host = os.getenv("LABEL_STUDIO_HOST", self.LABEL_STUDIO_HOST)
        key = os.getenv("LABEL_STUDIO_API_KEY", self.LABEL_STUDIO_API_KEY)
        resp = httpx.get(
            f"{host}/api/projects/{project_id}/export",
            params={"exportType": "JSON"},
            headers={"Authorization": f"Token {key}"},
            timeout=60,
        )
        resp.raise_for_status()
        return [task for task in resp.json() if task.get("annotations")]

    def fit(self, event, data, **kwargs):
        """Fit the model to the labeled texts and save it to MODEL_DIR.

        event: 'ANNOTATION_CREATED', 'ANNOTATION_UPDATED' or 'START_TRAINING'
        data: the event's payload
        """
        if event not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "START_TRAINING"):
            logger.info(f"Skip training: event {event} is not supported")
            return

        if data.get("annotations") is not None:
            tasks = data["annotations"]  # the legacy /train call sends the annotated tasks
        else:
            project_id = data["annotation"]["project"] if "annotation" in data else data["project"]["id"]
            tasks = self._get_tasks(project_id)

        config = self.get_label_studio_parameters()

        if len(tasks) % self.START_TRAINING_EACH_N_UPDATES != 0 and event != "START_TRAINING":
            logger.info(
                f"Not starting training, {len(tasks)} tasks are not multiple of {self.START_TRAINING_EACH_N_UPDATES}"
            )
            return

        input_texts = []
        output_labels_idx = []
        label2idx = {label: i for i, label in enumerate(config["labels"])}

        for task in tasks:
            for annotation in task["annotations"]:
                if not annotation.get("result") or annotation.get("skipped") or annotation.get("was_cancelled"):
                    continue
                input_texts.append(task["data"][config["value"]] or task["data"].get(DATA_UNDEFINED_NAME))
                output_label = annotation["result"][0]["value"]["choices"][0]
                output_labels_idx.append(label2idx[output_label])

        if not input_texts:
            raise ValueError("no usable annotations to train on")

        model = self.get_model(blank=True)
        model.fit(input_texts, output_labels_idx)

        with open(self.model_path(), "wb") as f:
            pickle.dump(model, f)
        self._model, self._model_version = model, self.bump_model_version()
        return {"train_examples": len(input_texts)}
