"""A made-up OpenAI-compatible provider, "Acme", for core's LLM tests: its settings (env names
ACME_API_KEY, ACME_MODEL, ACME_BASE_URL, ACME_TIMEOUT) and an LLMBackend that uses them."""

from __future__ import annotations

from pydantic import SecretStr

from prelabel.llm import LLMBackend, LLMSettings


class AcmeSettings(LLMSettings):
    field_roles = {
        "api_key": "acme_api_key",
        "model": "acme_model",
        "base_url": "acme_base_url",
        "timeout": "acme_timeout",
    }
    provider = "Acme"
    acme_api_key: SecretStr
    acme_model: str = "acme-1"
    acme_base_url: str = "http://127.0.0.1:9/v1"
    acme_timeout: float = 5.0


class AcmeBackend(LLMBackend):
    backend_id = "acme"
    default_port = 9299
    Settings = AcmeSettings
