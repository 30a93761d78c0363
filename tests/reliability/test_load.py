"""Load: at least 2,000 /predict requests at concurrency 64, zero 5xx, p50/p99 reported."""

import pytest

from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.loadgen import run_load

REQUESTS, CONCURRENCY = 2000, 64


def bodies(n, tasks_per_request=3):
    return [
        {
            "tasks": [
                {"id": i * 10 + k, "data": {"text": f"a positive review number {i}"}} for k in range(tasks_per_request)
            ],
            "project": "1.1",
            "label_config": TEXT_CHOICES,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_reference_backend_under_load(tmp_path, figures, workers):
    backend = BackendProcess(
        "prelabel.testing.reference:ReferenceBackend",
        home=tmp_path / "home",
        env={"WORKER_COUNT": str(workers), "LOG_LEVEL": "WARNING"},
    )
    with backend:
        result = run_load(backend.url + "/predict", bodies(REQUESTS), CONCURRENCY)
    figures(f"reference backend, {workers} process(es): {result.summary()}")
    assert sum(result.statuses.values()) == REQUESTS and not result.errors
    assert result.server_errors == 0 and result.statuses[200] == REQUESTS
