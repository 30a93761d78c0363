"""Prometheus metrics for one process (a registry per Runtime, so tests can build many).

With several server processes, set ``PROMETHEUS_MULTIPROC_DIR`` (``prelabel serve
--workers N`` does) and /metrics aggregates every process.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, backend_id: str):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("prelabel_requests", "HTTP requests", ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram(
            "prelabel_request_seconds", "HTTP request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.tasks = Counter("prelabel_tasks", "Tasks predicted", registry=r)
        self.task_failures = Counter(
            "prelabel_task_failures", "Tasks that got an empty result because of an error", ["reason"], registry=r
        )
        self.batch_seconds = Histogram(
            "prelabel_predict_batch_seconds",
            "Time in the backend's predict per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.jobs = Counter("prelabel_jobs", "Jobs submitted", ["kind"], registry=r)
        self.inflight = Gauge(
            "prelabel_inflight_predictions", "Predict requests in flight", registry=r, multiprocess_mode="livesum"
        )
        self.rejected = Counter("prelabel_rejected", "Predict requests refused with 503 (overload)", registry=r)
        self.webhooks = Counter("prelabel_webhooks", "Webhook events received", ["action"], registry=r)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
