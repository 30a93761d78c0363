import pytest

from prelabel.testing.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai():
    """The fake provider following Moonshot's published rules (model list, retired ids, locked
    sampling parameters, thinking on by default): prelabel.testing.provider_profiles.MOONSHOT."""
    with FakeOpenAI(profile="moonshot") as server:
        yield server


@pytest.fixture(autouse=True)
def moonshot_env(fake_openai, monkeypatch):
    """Every test talks to the fake provider on loopback, never to Moonshot. Only the key and
    the URL are set, as a new user sets them: every other setting is the default."""
    for name in (
        "MOONSHOT_MODEL",
        "KIMI_API_TIMEOUT",
        "MAX_CONCURRENT",
        "LLM_PROMPT",
        "LLM_RESPONSE_FORMAT",
        "LLM_THINKING",
        "LLM_MAX_TOKENS",
        "LLM_TEMPERATURE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-test")
    monkeypatch.setenv("MOONSHOT_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("LLM_BACKOFF_BASE", "0.01")
    return fake_openai
