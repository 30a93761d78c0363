import pytest

from prelabel.testing.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai():
    """The fake provider following ModelScope API-Inference's published rules (model ids,
    rate-limit headers, thinking switch): prelabel.testing.provider_profiles.MODELSCOPE."""
    with FakeOpenAI(profile="modelscope") as server:
        yield server


@pytest.fixture(autouse=True)
def modelscope_env(fake_openai, monkeypatch):
    """Every test talks to the fake provider on loopback, never to ModelScope."""
    for name in (
        "MODELSCOPE_MODEL",
        "MODELSCOPE_API_TIMEOUT",
        "MAX_CONCURRENT",
        "LLM_PROMPT",
        "LLM_RESPONSE_FORMAT",
        "LLM_THINKING",
        "LLM_MAX_TOKENS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELSCOPE_API_KEY", "ms-test")
    monkeypatch.setenv("MODELSCOPE_API_URL", fake_openai.base_url)
    monkeypatch.setenv("LLM_BACKOFF_BASE", "0.01")
    return fake_openai
