"""Provider profiles for :class:`~prelabel.testing.fake_openai.FakeOpenAI`: the published rules
of real providers, so tests meet what a user with default settings meets today.

Every rule cites the page it comes from. A profile answers a request it refuses (404 for a
model not offered, 400 for a locked parameter, with the provider's message), says whether the
request thinks (then the reply carries ``reasoning_content`` and spends tokens on it), and adds
the provider's rate-limit headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODELSCOPE", "MOONSHOT", "PROFILES", "ProviderProfile"]

#: "reasoning" text of a thinking reply; about 4 characters per token, like the fake's counting
REASONING = "The user wants a label. Let me read the text carefully and weigh each option before I answer. " * 4


@dataclass(frozen=True)
class ProviderProfile:
    name: str
    #: GET /models lists these
    models: tuple[str, ...]
    #: ids the provider no longer serves: 404 like any id not offered
    retired: tuple[str, ...] = ()
    #: model id prefix -> parameter -> (value allowed, value allowed with thinking on)
    locked: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    #: model id prefix -> thinking when the request says nothing
    thinking_default: dict[str, bool] = field(default_factory=dict)
    #: body field that switches thinking: "thinking" ({"type": ...}) or "enable_thinking" (bool)
    thinking_field: str = ""
    #: response headers sent with every chat answer
    rate_headers: dict[str, str] = field(default_factory=dict)
    not_found_type: str = "resource_not_found_error"
    #: whether answers carry ``logprobs`` when asked. Neither Moonshot's chat reference
    #: (https://platform.kimi.ai/docs/api/chat) nor ModelScope's API-Inference pages
    #: (https://modelscope.cn/docs/model-service/API-Inference/intro) document the parameter, so
    #: the fake returns none for them (prelabel does not ask them; LLM_LOGPROBS=auto)
    logprobs: bool = False

    def _prefixed(self, table: dict[str, Any], model: str) -> Any:
        return next((v for k, v in table.items() if model.startswith(k)), None)

    def thinks(self, body: dict) -> bool:
        model = str(body.get("model", ""))
        default = self._prefixed(self.thinking_default, model)
        if default is None:
            return False
        if self.thinking_field == "thinking":
            asked = (body.get("thinking") or {}).get("type") if isinstance(body.get("thinking"), dict) else None
            return default if asked is None else asked == "enabled"
        if self.thinking_field == "enable_thinking" and "enable_thinking" in body:
            return bool(body["enable_thinking"])
        return default

    def refuse(self, body: dict) -> tuple[int, dict] | None:
        """(status, error object) for a request the provider refuses, else None."""
        model = str(body.get("model", ""))
        if model not in self.models:
            # a retired or unknown id is a 404: Moonshot's retired k2 ids ("five 400s, one 404",
            # https://dev.to/aihubmix/kimi-k31-pro-migration-guide-five-400s-one-404-and-the-claude-code-codex-config-13k);
            # ModelScope: "the model ID may be incorrect, the model may have been retired"
            # (https://docs.cherry-ai.com/pre-basic/providers/modelscope, from its API-Inference docs).
            # The message wording is ours; the tests match the status and the model id only.
            return 404, {"message": f"Not found the model {model} or Permission denied", "type": self.not_found_type}
        rules = self._prefixed(self.locked, model) or {}
        thinking = self.thinks(body)
        for name, (plain, with_thinking) in rules.items():
            allowed = with_thinking if thinking else plain
            if name in body and body[name] != allowed:
                return 400, {
                    "message": f"invalid {name}: only {allowed:g} is allowed for this model",
                    "type": "invalid_request_error",
                }
        return None


# Moonshot (platform.kimi.ai), checked 2026-12.
MOONSHOT = ProviderProfile(
    name="moonshot",
    # https://www.promptfoo.dev/docs/providers/moonshot/ (the live set, as GET /v1/models lists it:
    # kimi-k2.6, kimi-k2.5, kimi-k2.7-code, moonshot-v1-*), and kimi-k3 per
    # https://dev.to/aihubmix/kimi-k31-pro-migration-guide-five-400s-one-404-and-the-claude-code-codex-config-13k
    models=(
        "kimi-k2.6",
        "kimi-k2.5",
        "kimi-k3",
        "kimi-k2.7-code",
        "moonshot-v1-8k",
        "moonshot-v1-32k",
        "moonshot-v1-128k",
        "moonshot-v1-auto",
    ),
    # https://www.promptfoo.dev/docs/providers/moonshot/ ("kimi-k2-0711-preview, kimi-k2-0905-preview,
    # kimi-k2-turbo-preview, kimi-k2-thinking, kimi-k2-thinking-turbo, and kimi-latest ids were
    # discontinued in 2026"); https://platform.kimi.com/docs/models (kimi-latest, kimi-thinking-preview)
    retired=(
        "kimi-k2-0711-preview",
        "kimi-k2-0905-preview",
        "kimi-k2-turbo-preview",
        "kimi-k2-thinking",
        "kimi-k2-thinking-turbo",
        "kimi-latest",
        "kimi-thinking-preview",
    ),
    # https://platform.kimi.ai/docs/api/models-overview ("Model Parameter Reference": for kimi-k2.6
    # temperature, top_p 0.95, n 1, presence_penalty 0, frequency_penalty 0 "cannot be modified");
    # the fixed temperature is 1.0 with thinking and 0.6 without
    # (https://intl.cloud.tencent.com/ind/document/product/1300/80635), and another value is
    # "400 invalid temperature: only 1 is allowed for this model" (the dev.to page above)
    locked={
        prefix: {
            "temperature": (0.6, 1.0),
            "top_p": (0.95, 0.95),
            "n": (1, 1),
            "presence_penalty": (0, 0),
            "frequency_penalty": (0, 0),
        }
        for prefix in ("kimi-k2.6", "kimi-k2.5", "kimi-k3")
    },
    # https://platform.kimi.ai/docs/guide/use-kimi-k2-thinking-model ("kimi-k2.6: ... enabled by
    # default. You can disable thinking by using {"type": "disabled"}"); kimi-k2.7-code always thinks
    # (https://docs.openclaw.ai/providers/moonshot)
    thinking_default={"kimi-k2.6": True, "kimi-k2.5": True, "kimi-k3": True, "kimi-k2.7": True},
    thinking_field="thinking",
)

# ModelScope API-Inference (api-inference.modelscope.cn/v1), checked 2026-12.
MODELSCOPE = ProviderProfile(
    name="modelscope",
    # model ids as the API takes them, "<org>/<name>": https://mastra.ai/en/models/providers/modelscope
    # (Qwen/Qwen3-Coder-30B-A3B-Instruct, Qwen/Qwen3-235B-A22B-Instruct-2507 ...) and the
    # Qwen3-Coder-480B-A35B-Instruct model page's API-Inference example
    models=(
        "Qwen/Qwen3-Coder-480B-A35B-Instruct",
        "Qwen/Qwen3-Coder-30B-A3B-Instruct",
        "Qwen/Qwen3-235B-A22B-Instruct-2507",
        "Qwen/Qwen3-235B-A22B-Thinking-2507",
        "Qwen/Qwen3-30B-A3B-Instruct-2507",
        "Qwen/Qwen3-32B",
    ),
    # https://qwen.readthedocs.io/en/latest/getting_started/quickstart.html (hybrid Qwen3 think by
    # default and switch with enable_thinking; -Instruct-2507 and Coder never think)
    thinking_default={"Qwen/Qwen3-32B": True, "Qwen/Qwen3-235B-A22B-Thinking-2507": True},
    thinking_field="enable_thinking",
    # https://modelscope.cn/docs/model-service/API-Inference/limits (2,000 free calls per user per day,
    # about 200 per model; these headers carry what is left)
    rate_headers={
        "modelscope-ratelimit-requests-limit": "2000",
        "modelscope-ratelimit-requests-remaining": "1999",
        "modelscope-ratelimit-model-requests-limit": "200",
        "modelscope-ratelimit-model-requests-remaining": "199",
    },
)

PROFILES = {p.name: p for p in (MOONSHOT, MODELSCOPE)}
