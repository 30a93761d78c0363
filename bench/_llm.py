"""The LLM backend the LLM benches serve in process: the engine with bench-only settings,
pointed at prelabel's fake OpenAI-compatible server through ``bench_base_url``."""

from __future__ import annotations

from pydantic import SecretStr

from prelabel.llm import LLMBackend, LLMSettings


class BenchSettings(LLMSettings):
    field_roles = {
        "api_key": "bench_api_key",
        "model": "bench_model",
        "base_url": "bench_base_url",
        "timeout": "bench_timeout",
    }
    bench_api_key: SecretStr = SecretStr("sk-bench")
    bench_model: str = "fake-model"
    bench_base_url: str = ""
    bench_timeout: float = 30.0


class BenchBackend(LLMBackend):
    backend_id = "bench_llm"
    Settings = BenchSettings
