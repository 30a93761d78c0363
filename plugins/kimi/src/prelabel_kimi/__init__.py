"""prelabel backend for Moonshot Kimi (OpenAI-compatible API), on core's LLM engine."""

from __future__ import annotations

from pydantic import SecretStr

from prelabel import hookimpl
from prelabel.llm import LLMBackend, LLMSettings

# Seed 000's project: a TextArea "label" filled for a Text "text"; used when a request
# carries no label config and /setup never ran (its curl example sends tasks only).
DEFAULT_LABEL_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="label" toName="text" placeholder="模型生成的标注内容..." editable="true"/>
</View>"""


class Settings(LLMSettings):
    """MOONSHOT_API_KEY (required), MOONSHOT_MODEL, MOONSHOT_BASE_URL, KIMI_API_TIMEOUT,
    MAX_CONCURRENT, and the engine's LLM_* settings (LLM_THINKING turns Kimi's thinking on).

    The default model is Moonshot's current general model; the kimi-k2 preview ids of the seed
    (kimi-k2-0905-preview...) were retired in 2026. Its sampling parameters are locked and
    thinking is on unless switched off: prelabel.llm.params knows both."""

    field_roles = {
        "api_key": "moonshot_api_key",
        "model": "moonshot_model",
        "base_url": "moonshot_base_url",
        "timeout": "kimi_api_timeout",
    }
    provider = "Moonshot"
    provider_id = "moonshot"
    key_url = "https://platform.moonshot.cn/console/api-keys"

    moonshot_api_key: SecretStr
    moonshot_model: str = "kimi-k2.6"
    moonshot_base_url: str = "https://api.moonshot.cn/v1"
    kimi_api_timeout: float = 120.0


class KimiBackend(LLMBackend):
    backend_id = "kimi"
    title = "Kimi (Moonshot)"
    description = "Pre-labels text with Moonshot's Kimi models: choices, spans, free text, ratings, numbers."
    default_port = 8751
    Settings = Settings
    default_label_config = DEFAULT_LABEL_CONFIG


@hookimpl
def register_backends(register):
    register(KimiBackend)
