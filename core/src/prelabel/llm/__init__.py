"""The OpenAI-compatible LLM engine shared by LLM plugins (install ``prelabel[llm]``).

A plugin is a settings class and a Backend subclass::

    class Settings(LLMSettings):
        field_roles = {"api_key": "acme_api_key", "model": "acme_model",
                       "base_url": "acme_base_url", "timeout": "acme_timeout"}
        acme_api_key: SecretStr
        acme_model: str = "acme-large"
        acme_base_url: str = "https://api.acme.example/v1"
        acme_timeout: float = 60

    class AcmeBackend(LLMBackend):
        backend_id = "acme"
        default_port = 9200
        Settings = Settings

The ``openai`` SDK is imported only when a client is made, so importing this package is cheap.
"""

from prelabel.llm.answer import MalformedAnswer, extract_json, locate, to_regions
from prelabel.llm.backend import LLMBackend
from prelabel.llm.engine import AnswerCache, LLMEngine, Outcome, Usage, require_openai
from prelabel.llm.errors import LLMError
from prelabel.llm.prompt import DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPLATES, build_messages
from prelabel.llm.schema import TaskSpec, can_fill, is_prompt_input, task_spec
from prelabel.llm.settings import LLMSettings

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_TEMPLATES",
    "AnswerCache",
    "LLMBackend",
    "LLMEngine",
    "LLMError",
    "LLMSettings",
    "MalformedAnswer",
    "Outcome",
    "TaskSpec",
    "Usage",
    "build_messages",
    "can_fill",
    "extract_json",
    "is_prompt_input",
    "locate",
    "require_openai",
    "task_spec",
    "to_regions",
]
