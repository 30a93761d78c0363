"""prelabel backend for a self-hosted OpenAI-compatible model server (vLLM, Ollama, llama.cpp,
LM Studio, or any ``/v1/chat/completions`` endpoint), on core's LLM engine."""

from __future__ import annotations

from pydantic import SecretStr

from prelabel import hookimpl
from prelabel.llm import LLMBackend, LLMSettings

__all__ = ["OpenAICompatibleBackend", "Settings"]


class Settings(LLMSettings):
    """LLM_BASE_URL and LLM_MODEL (required), LLM_API_KEY (if the server wants one),
    LLM_TIMEOUT, MAX_CONCURRENT, and the engine's LLM_* settings.

    No parameter rules are known for a server of unknown make: a 400 that names a parameter
    drops or fixes it for the process, and the response format steps down json_schema ->
    json_object -> prompt only as the server allows (llama.cpp's answers json_schema with 500)."""

    field_roles = {"api_key": "llm_api_key", "model": "llm_model", "base_url": "llm_base_url", "timeout": "llm_timeout"}
    provider = "the model server"
    key_required = False

    llm_base_url: str
    llm_model: str
    llm_api_key: SecretStr = SecretStr("")
    llm_timeout: float = 120.0


class OpenAICompatibleBackend(LLMBackend):
    backend_id = "openai_compatible"
    title = "OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio)"
    description = "Pre-labels text with a model on your own OpenAI-compatible server: choices, spans, free text."
    default_port = 9096
    Settings = Settings


@hookimpl
def register_backends(register):
    register(OpenAICompatibleBackend)
