"""prelabel.metrics.HotStats writes the same Prometheus series as prometheus_client's Counter
and Histogram would for the same updates (it replaced them on the hot path of one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from prelabel.metrics import LATENCY_BUCKETS, HotStats, Metrics

UPDATES = [
    ("predict", "POST", "200", 0.003),
    ("predict", "POST", "200", 0.07),
    ("health", "GET", "200", 0.0005),
    ("predict", "POST", "422", 0.005),
    ("predict", "POST", "200", 200.0),
    ("setup", "POST", "200", 0.01),
]
BATCHES = [0.001, 0.005, 0.3, 500.0]


def _lines(text: bytes) -> list[str]:
    return sorted(line for line in text.decode().splitlines() if line and "_created" not in line)


def test_hot_stats_render_as_prometheus_client_would():
    hot_registry = CollectorRegistry()
    hot = HotStats()
    hot_registry.register(hot)
    ref = CollectorRegistry()
    requests = Counter("prelabel_requests", "HTTP requests", ["endpoint", "method", "status"], registry=ref)
    latency = Histogram(
        "prelabel_request_seconds", "HTTP request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=ref
    )
    tasks = Counter("prelabel_tasks", "Tasks predicted", registry=ref)
    batch = Histogram(
        "prelabel_predict_batch_seconds",
        "Time in the backend's predict per batch",
        buckets=LATENCY_BUCKETS,
        registry=ref,
    )
    for endpoint, method, status, seconds in UPDATES:
        hot.request(endpoint, method, status, seconds)
        requests.labels(endpoint, method, status).inc()
        latency.labels(endpoint).observe(seconds)
    for seconds in BATCHES:
        hot.batch(seconds)
        batch.observe(seconds)
    hot.tasks(3)
    hot.tasks(100)
    tasks.inc(3)
    tasks.inc(100)
    got, want = _lines(generate_latest(hot_registry)), _lines(generate_latest(ref))
    assert got == want
    assert 'prelabel_request_seconds_bucket{endpoint="predict",le="0.005"} 2.0' in got  # le is inclusive


def test_one_process_uses_hot_stats_and_several_use_prometheus_client(monkeypatch, tmp_path):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    one = Metrics("x")
    assert one.hot is not None and not hasattr(one, "batch_seconds")
    one.count_tasks(2)
    one.observe_batch(0.02)
    text = one.render().decode()
    assert "prelabel_tasks_total 2.0" in text and "prelabel_predict_batch_seconds_count 1.0" in text
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    several = Metrics("x")
    assert several.hot is None
    several.count_tasks(2)  # prometheus_client's Counter
    several.observe_batch(0.02)
    assert several.tasks._value.get() == 2.0 and several.batch_seconds._sum.get() == 0.02
    several.observe_request("predict", "POST", "200", 0.003)
    several.observe_request("predict", "POST", "200", 0.004)
    assert several.requests.labels("predict", "POST", "200")._value.get() == 2.0
    assert several.latency.labels("predict")._sum.get() == 0.007
