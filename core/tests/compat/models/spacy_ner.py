"""A model in the shape of label-studio-ml-backend's spaCy NER example: entities as Labels
spans on Text, each prediction a PredictionValue in a ModelResponse. ``tiny_nlp`` stands in
for spaCy. Served by prelabel unchanged."""

# ruff: noqa: UP006, UP007, UP035, UP045  (upstream's typing style, kept as model authors write it)

import os
from typing import Dict, List, Optional, Union

import tiny_nlp as spacy
from label_studio_ml.model import LabelStudioMLBase, ModelResponse
from label_studio_sdk.label_interface.objects import PredictionValue

SPACY_MODEL = os.getenv("SPACY_MODEL", "en_core_web_sm")
nlp = spacy.load(SPACY_MODEL)


class SpacyMLBackend(LabelStudioMLBase):
    # define your custom labels mapping here
    _custom_labels_mapping = {}

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> Union[List[Dict], ModelResponse]:
        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Labels", "Text")
        # the project's labels for the model's entity types (by their predicted_values)
        label_map = {**self.build_label_map(from_name, nlp.labels), **self._custom_labels_mapping}
        predictions = []
        for task in tasks:
            text = task["data"][value]
            doc = nlp(text)
            entities = []
            for ent in doc.ents:
                entities.append(
                    {
                        "from_name": from_name,
                        "to_name": to_name,
                        "type": "labels",
                        "value": {
                            "start": ent.start_char,
                            "end": ent.end_char,
                            "text": ent.text,
                            "labels": [label_map.get(ent.label_, ent.label_)],
                        },
                    }
                )
            predictions.append(PredictionValue(result=entities, model_version=SPACY_MODEL))
        return ModelResponse(predictions=predictions, model_version=SPACY_MODEL)
