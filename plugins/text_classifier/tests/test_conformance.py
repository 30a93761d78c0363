from prelabel_text_classifier import TextClassifier

from prelabel.testing import BackendConformanceTests

from .corpus import annotated_tasks


class TestTextClassifierConformance(BackendConformanceTests):
    backend_class = TextClassifier
    training_tasks = annotated_tasks(24)
