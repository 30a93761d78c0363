"""The kimi backend on the fake OpenAI-compatible server: 2,000 requests at concurrency 64
with zero 5xx, then 429/500/timeout storms that the engine rides out with retries (no 5xx
from prelabel, every task either labeled or failed alone with a message), and recovery."""

import itertools
import random
import threading

import pytest

from prelabel.testing.client import per_task_results
from prelabel.testing.fake_openai import FakeOpenAI, Reply
from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.loadgen import run_load

CONFIG = """<View><Text name="text" value="$text"/>
<Choices name="sentiment" toName="text"><Choice value="positive"/><Choice value="negative"/></Choices></View>"""


def bodies(n, prefix):
    return [
        {"tasks": [{"id": i, "data": {"text": f"{prefix} review {i}"}}], "project": "1.1", "label_config": CONFIG}
        for i in range(n)
    ]


def kimi(tmp_path, fake, **env):
    return BackendProcess(
        "kimi",
        home=tmp_path / "home",
        env={
            "MOONSHOT_API_KEY": "sk-test",
            "MOONSHOT_BASE_URL": fake.base_url,
            "LOG_LEVEL": "WARNING",
            "MAX_CONCURRENT": "32",
            **env,
        },
    )


def test_kimi_under_load(tmp_path, figures):
    with FakeOpenAI(latency=0.02) as fake, kimi(tmp_path, fake) as backend:
        result = run_load(backend.url + "/predict", bodies(2000, "load"), concurrency=64)
        calls = len(fake.chat_requests)
    figures(f"kimi on the fake LLM (20 ms): {result.summary()}; {calls} provider calls")
    assert result.statuses == {200: 2000} and not result.errors, result.errors
    assert calls == 2000  # distinct texts: every task reached the provider once


def test_kimi_rides_out_429_500_and_timeout_storms(tmp_path, figures):
    rng = random.Random(7)
    lock = threading.Lock()
    storm = {"on": True}
    kinds = itertools.count()

    def responder(req):
        with lock:
            roll = rng.random()
            next(kinds)
        if not storm["on"]:
            return Reply()
        if roll < 0.30:
            return Reply.rate_limited(retry_after=0.05)
        if roll < 0.45:
            return Reply.server_error(500)
        if roll < 0.50:
            return Reply.server_error(503)
        if roll < 0.55:
            return Reply.stall(3.0)  # past KIMI_API_TIMEOUT below
        return Reply()

    with (
        FakeOpenAI(latency=0.005, responder=responder) as fake,
        kimi(
            tmp_path, fake, KIMI_API_TIMEOUT="1", LLM_MAX_RETRIES="4", LLM_BACKOFF_BASE="0.05", LLM_BACKOFF_MAX="1"
        ) as backend,
    ):
        stormy = run_load(backend.url + "/predict", bodies(300, "storm"), concurrency=32, timeout=90)
        with backend.http() as http:
            sample = per_task_results(http.post("/predict", json=bodies(1, "sample")[0]).json())[0]
        storm["on"] = False
        calm = run_load(backend.url + "/predict", bodies(200, "calm"), concurrency=32)
        with backend.http() as http:
            metrics = http.get("/metrics").text
    retries = [line for line in metrics.splitlines() if line.startswith("prelabel_llm_retries_total")]
    figures(f"storm (30% 429, 20% 5xx, 5% stalls): {stormy.summary()}; provider calls {next(kinds)}; {retries[:3]}")
    figures(f"after the storm: {calm.summary()}")
    assert stormy.server_errors == 0 and not stormy.errors and stormy.statuses == {200: 300}
    assert "error" in sample or sample["result"]
    assert calm.statuses == {200: 200}


@pytest.mark.parametrize(
    "reply,needle",
    [
        (Reply.unauthorized(), "MOONSHOT_API_KEY"),
        (Reply.quota_exhausted(), "quota"),
        (Reply.forbidden(), "model"),
    ],
)
def test_provider_refusals_fail_each_task_with_an_actionable_message(tmp_path, reply, needle):
    with FakeOpenAI(responder=lambda req: reply) as fake, kimi(tmp_path, fake) as backend:
        with backend.http() as http:
            results = per_task_results(
                http.post(
                    "/predict",
                    json={
                        "tasks": [{"id": 1, "data": {"text": "a"}}, {"id": 2, "data": {"text": "b"}}],
                        "label_config": CONFIG,
                    },
                ).json()
            )
    assert len(results) == 2
    for item in results:
        assert item["result"] == [] and needle.lower() in item["error"].lower()
