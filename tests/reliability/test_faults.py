"""Faults: Redis restarted under load (no 500s; 503 + Retry-After while it is down, full
service after), plus the LLM storms in test_llm_faults.py and the worker SIGKILL in
test_scaleout.py."""

import threading
import time

from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.loadgen import run_load
from prelabel.testing.harness.redisserver import RedisServer


def bodies(n):
    return [{"tasks": [{"id": i, "data": {"text": "a positive day"}}], "project": "1.1"} for i in range(n)]


def test_redis_restart_under_load(tmp_path, figures):
    redis_server = RedisServer(tmp_path / "redis", persistent=True).start()
    env = {"REDIS_URL": redis_server.url, "LOG_LEVEL": "WARNING", "JOB_RUNNER": "inprocess"}
    with BackendProcess("prelabel.testing.reference:ReferenceBackend", home=tmp_path / "home", env=env) as backend:
        with backend.http() as http:
            assert http.post("/setup", json={"project": "1.1", "schema": TEXT_CHOICES}).status_code == 200

        def restart():
            time.sleep(0.5)  # let the load start first; this is the fault's timing, not a readiness wait
            redis_server.stop()
            time.sleep(1.0)  # Redis stays down for a second under load
            redis_server.start()

        fault = threading.Thread(target=restart)
        fault.start()
        result = run_load(backend.url + "/predict", bodies(1500), concurrency=16)
        fault.join()
        after = run_load(backend.url + "/predict", bodies(200), concurrency=16)
    redis_server.stop()
    figures(f"during restart: {result.summary()}; statuses {dict(result.statuses)}")
    figures(f"after restart: {after.summary()}")
    assert set(result.statuses) <= {200, 503}, result.statuses
    assert result.statuses[503] > 0 and result.statuses[200] > 0
    assert not result.errors
    assert after.statuses == {200: 200}
