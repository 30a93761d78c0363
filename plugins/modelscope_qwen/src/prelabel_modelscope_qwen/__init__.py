"""prelabel backend for Qwen models on ModelScope API-Inference (OpenAI-compatible API)."""

from __future__ import annotations

from pydantic import SecretStr

from prelabel import hookimpl
from prelabel.llm import LLMBackend, LLMSettings


class Settings(LLMSettings):
    """MODELSCOPE_API_KEY (required), MODELSCOPE_API_URL, MODELSCOPE_MODEL,
    MODELSCOPE_API_TIMEOUT, MAX_CONCURRENT, and the engine's LLM_* settings.

    The free API-Inference tier allows about 2,000 calls per user per day (fewer per model); a
    429 whose ModelScope rate-limit headers say nothing is left is reported as a used-up quota,
    not retried. Qwen3-Coder does not think; hybrid Qwen3 models get enable_thinking from
    LLM_THINKING (prelabel.llm.params)."""

    field_roles = {
        "api_key": "modelscope_api_key",
        "model": "modelscope_model",
        "base_url": "modelscope_api_url",
        "timeout": "modelscope_api_timeout",
    }
    provider = "ModelScope"
    provider_id = "modelscope"
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
