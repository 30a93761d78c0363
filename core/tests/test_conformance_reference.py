from prelabel.testing import BackendConformanceTests
from prelabel.testing.reference import ReferenceBackend


def _annotated(tid: int, text: str, label: str) -> dict:
    return {
        "id": tid,
        "data": {"text": text},
        "annotations": [
            {
                "id": tid,
                "result": [
                    {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                ],
            }
        ],
    }


class TestReferenceConformance(BackendConformanceTests):
    backend_class = ReferenceBackend
    serve_as = "prelabel.testing.reference:ReferenceBackend"  # core's own, not an installed plugin
    training_tasks = [
        _annotated(1, "great wonderful film", "positive"),
        _annotated(2, "awful boring film", "negative"),
        _annotated(3, "it is a film", "neutral"),
    ]
