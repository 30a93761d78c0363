from prelabel.testing import BackendConformanceTests

from prelabel_text_classifier import TextClassifier

from .corpus import annotated_tasks


class TestTextClassifierConformance(BackendConformanceTests):
    backend_class = TextClassifier
    training_tasks = annotated_tasks(24)
