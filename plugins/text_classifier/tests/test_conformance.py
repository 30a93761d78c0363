from prelabel_text_classifier import TextClassifier
from text_classifier_corpus import annotated_tasks

from prelabel.testing import BackendConformanceTests


class TestTextClassifierConformance(BackendConformanceTests):
    backend_class = TextClassifier
    training_tasks = annotated_tasks(24)
