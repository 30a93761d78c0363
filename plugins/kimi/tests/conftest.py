import pytest


@pytest.fixture(autouse=True)
def moonshot_env(fake_openai, monkeypatch):
    """Every test talks to the fake provider on loopback, never to Moonshot."""
    for name in ("MOONSHOT_MODEL", "KIMI_API_TIMEOUT", "MAX_CONCURRENT", "LLM_PROMPT", "LLM_RESPONSE_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-test")
    monkeypatch.setenv("MOONSHOT_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("LLM_BACKOFF_BASE", "0.01")
    return fake_openai
