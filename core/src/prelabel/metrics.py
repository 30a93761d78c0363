"""Prometheus metrics for one process (a registry per Runtime, so tests can build many).

With several server processes, set ``PROMETHEUS_MULTIPROC_DIR`` (``prelabel serve
--workers N`` does) and /metrics aggregates every process.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class HotStats(Collector):
    """The four series every /predict updates (requests, request latency, tasks, batch time),
    kept as plain numbers under one lock and turned into Prometheus series when scraped.
    prometheus_client's Counter and Histogram took a lock and several calls per update: four
    updates were a tenth of a 1-task /predict's CPU. Used by a single process; with
    PROMETHEUS_MULTIPROC_DIR the series are prometheus_client's, which write the shared files."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        # per endpoint: a count per bucket (the last one past every bound), then the sum
        self._latency: dict[str, list] = {}
        self._batches: list = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
        self._tasks = 0

    def request(self, endpoint: str, method: str, status: str, seconds: float) -> None:
        key = (endpoint, method, status)
        slot = bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds: le="bound"
        with self._lock:
            requests = self._requests
            requests[key] = requests.get(key, 0) + 1
            counts = self._latency.get(endpoint)
            if counts is None:
                counts = self._latency[endpoint] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
            counts[slot] += 1
            counts[-1] += seconds

    def batch(self, seconds: float) -> None:
        slot = bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            self._batches[slot] += 1
            self._batches[-1] += seconds

    def tasks(self, n: int) -> None:
        with self._lock:
            self._tasks += n

    @staticmethod
    def _buckets(counts: list) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), counts[:-1], strict=True):
            total += n
            out.append((floatToGoString(bound), total))
        return out

    def collect(self) -> Iterator:
        with self._lock:
            requests = dict(self._requests)
            latency = {k: list(v) for k, v in self._latency.items()}
            batches, tasks = list(self._batches), self._tasks
        family = CounterMetricFamily("prelabel_requests", "HTTP requests", labels=["endpoint", "method", "status"])
        for key, n in requests.items():
            family.add_metric(list(key), n)
        yield family
        family = HistogramMetricFamily("prelabel_request_seconds", "HTTP request latency", labels=["endpoint"])
        for endpoint, counts in latency.items():
            family.add_metric([endpoint], self._buckets(counts), counts[-1])
        yield family
        yield CounterMetricFamily("prelabel_tasks", "Tasks predicted", value=tasks)
        family = HistogramMetricFamily("prelabel_predict_batch_seconds", "Time in the backend's predict per batch")
        family.add_metric([], self._buckets(batches), batches[-1])
        yield family


class Metrics:
    def __init__(self, backend_id: str):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        #: the hot series in one process; None with several (PROMETHEUS_MULTIPROC_DIR), where
        #: ``requests``, ``latency``, ``tasks`` and ``batch_seconds`` are prometheus_client's
        self.hot: HotStats | None = None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.requests = Counter("prelabel_requests", "HTTP requests", ["endpoint", "method", "status"], registry=r)
            self.latency = Histogram(
                "prelabel_request_seconds", "HTTP request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
            )
            self.tasks = Counter("prelabel_tasks", "Tasks predicted", registry=r)
            self.batch_seconds = Histogram(
                "prelabel_predict_batch_seconds",
                "Time in the backend's predict per batch",
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
            # labelled children, looked up once per label combination (all from bounded sets)
            self._counted: dict[tuple[str, str, str], Counter] = {}
            self._timed: dict[str, Histogram] = {}
        else:
            self.hot = HotStats()
            r.register(self.hot)
        self.task_failures = Counter(
            "prelabel_task_failures", "Tasks that got an empty result because of an error", ["reason"], registry=r
        )
        self.jobs = Counter("prelabel_jobs", "Jobs submitted", ["kind"], registry=r)
        self.inflight = Gauge(
            "prelabel_inflight_predictions", "Predict requests in flight", registry=r, multiprocess_mode="livesum"
        )
        self.rejected = Counter("prelabel_rejected", "Predict requests refused with 503 (overload)", registry=r)
        self.webhooks = Counter("prelabel_webhooks", "Webhook events received", ["action"], registry=r)

    def observe_request(self, endpoint: str, method: str, status: str, seconds: float) -> None:
        if self.hot is not None:
            self.hot.request(endpoint, method, status, seconds)
            return
        key = (endpoint, method, status)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(*key)
        counter.inc()
        timer = self._timed.get(endpoint)
        if timer is None:
            timer = self._timed[endpoint] = self.latency.labels(endpoint)
        timer.observe(seconds)

    def count_tasks(self, n: int) -> None:
        if self.hot is not None:
            self.hot.tasks(n)
        else:
            self.tasks.inc(n)

    def observe_batch(self, seconds: float) -> None:
        if self.hot is not None:
            self.hot.batch(seconds)
        else:
            self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
