"""prelabel backend for Qwen models on ModelScope API-Inference (OpenAI-compatible API)."""

from __future__ import annotations

from pydantic import SecretStr

from prelabel import hookimpl
from prelabel.llm import LLMBackend, LLMSettings


class Settings(LLMSettings):
    """MODELSCOPE_API_KEY (required), MODELSCOPE_API_URL, MODELSCOPE_MODEL,
    MODELSCOPE_API_TIMEOUT, MAX_CONCURRENT, and the engine's LLM_* settings."""

    field_roles = {"api_key": "modelscope_api_key", "model": "modelscope_model",
                   "base_url": "modelscope_api_url", "timeout": "modelscope_api_timeout"}
    provider = "ModelScope"
    key_url = "https://modelscope.cn/my/myaccesstoken"

    modelscope_api_key: SecretStr
    # a full .../v1/chat/completions URL (as older setups had it) is cut back to .../v1
    modelscope_api_url: str = "https://api-inference.modelscope.cn/v1"
    modelscope_model: str = "Qwen/Qwen3-Coder-480B-A35B-Instruct"
    modelscope_api_timeout: float = 60.0


class ModelScopeQwenBackend(LLMBackend):
    backend_id = "modelscope_qwen"
    title = "Qwen3-Coder (ModelScope)"
    description = "Pre-labels text and code with Qwen on ModelScope: classification, comments, analysis, answers."
    default_port = 9090
    Settings = Settings


@hookimpl
def register_backends(register):
    register(ModelScopeQwenBackend)


@hookimpl
def doctor_checks(backend_class, settings):
    return ModelScopeQwenBackend.doctor_checks(settings) if backend_class is ModelScopeQwenBackend else []
