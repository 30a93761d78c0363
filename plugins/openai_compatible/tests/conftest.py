import pytest


@pytest.fixture(autouse=True)
def server_env(fake_openai, monkeypatch):
    """Tests talk to the fake OpenAI-compatible server on loopback (test_llamacpp.py to a real one)."""
    for name in (
        "LLM_API_KEY",
        "LLM_TIMEOUT",
        "MAX_CONCURRENT",
        "LLM_PROMPT",
        "LLM_RESPONSE_FORMAT",
        "LLM_THINKING",
        "LLM_MAX_TOKENS",
        "LLM_EXTRA_BODY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    monkeypatch.setenv("LLM_BACKOFF_BASE", "0.01")
    return fake_openai
