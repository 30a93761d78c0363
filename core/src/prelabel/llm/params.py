"""Which request parameters a model accepts: the one place that knows it.

Two sources, in this order:

1. Published rules per provider and model family (:data:`RULES`): sampling parameters a model
   locks (never sent, so the provider's fixed value applies) and the body field that turns its
   thinking on or off. Each rule cites the page it comes from.
2. What the process learns (:class:`ParameterFixes`): a 400 whose message names a parameter we
   sent drops that parameter (or sets the one value the message allows) and the call is retried
   once; the fix is remembered for the process. A 400 that names nothing we sent is not retried.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("prelabel.llm")

#: the sampling parameters some models lock
SAMPLING = ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty")
#: body keys that are never "fixed" by dropping them: without them there is no request
ESSENTIAL = frozenset({"model", "messages"})
#: words in a 400 that point at the requested output format (handled by the format step-down)
FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output", "schema")


def moonshot_thinking(on: bool) -> dict[str, Any]:
    # https://platform.kimi.ai/docs/api/models-overview ("thinking" parameter: {"type": "enabled"}
    # or {"type": "disabled"}, sent in the body; the OpenAI SDK passes it through extra_body)
    return {"thinking": {"type": "enabled" if on else "disabled"}}


def qwen3_thinking(on: bool) -> dict[str, Any]:
    # https://qwen.readthedocs.io/en/latest/getting_started/quickstart.html (hybrid Qwen3 models
    # switch with enable_thinking; OpenAI-compatible servers take it as a top-level body field)
    return {"enable_thinking": on}


@dataclass(frozen=True)
class ModelRules:
    """What one model family accepts."""

    family: str
    #: sampling parameters the model fixes: sending any other value is a 400, so none is sent
    locked: tuple[str, ...] = ()
    #: body fields that turn thinking on (True) or off (False); None: the model has no switch
    thinking: Callable[[bool], dict[str, Any]] | None = None
    #: the model always thinks (a dedicated reasoning model): thinking cannot be turned off
    always_thinks: bool = False
    source: str = ""

    @property
    def thinking_switch(self) -> bool:
        return self.thinking is not None


GENERIC = ModelRules("generic")

KIMI_PARAMS = "https://platform.kimi.ai/docs/api/models-overview"
KIMI_THINKING = "https://platform.kimi.ai/docs/guide/use-kimi-k2-thinking-model"
QWEN_2507 = "https://qwen.readthedocs.io/en/latest/getting_started/quickstart.html"

#: provider id (``LLMSettings.provider_id``) -> (model id pattern, rules), first match wins
RULES: dict[str, list[tuple[re.Pattern[str], ModelRules]]] = {
    "moonshot": [
        # kimi-k2.6 / kimi-k2.5: temperature, top_p (0.95), n (1), presence and frequency penalty
        # "cannot be modified"; thinking is supported and on by default for kimi-k2.6.
        (re.compile(r"^kimi-k2\.[56]\b"), ModelRules("kimi-k2.6", SAMPLING, moonshot_thinking, source=KIMI_PARAMS)),
        # kimi-k3 / kimi-k3.1-pro get "the same parameter constraints" as the k2.6 generation
        # (third-party migration notes; Moonshot's reference table lists k2.6's); if a k3 model
        # refuses the thinking field, the learned-fix rule drops it for the process.
        (re.compile(r"^kimi-k3"), ModelRules("kimi-k3", SAMPLING, moonshot_thinking, source=KIMI_PARAMS)),
        # kimi-k2.7-code and the kimi-k2-thinking series are dedicated thinking models
        (re.compile(r"^kimi-k2\.7"), ModelRules("kimi-k2.7-code", SAMPLING, always_thinks=True, source=KIMI_THINKING)),
        (re.compile(r"^kimi-k2-thinking"), ModelRules("kimi-k2-thinking", always_thinks=True, source=KIMI_THINKING)),
        # the kimi-k2 preview series and moonshot-v1: every sampling parameter can be modified
        (re.compile(r"^(kimi-k2|moonshot-v1|kimi-latest)"), ModelRules("kimi-k2 / moonshot-v1", source=KIMI_PARAMS)),
    ],
    "modelscope": [
        # Qwen3-*-Instruct-2507 and Qwen3-Coder are non-thinking only; "specifying
        # enable_thinking=False is no longer required or supported"
        (re.compile(r"(?i)qwen3-coder|qwen3-[^/]*instruct-2507"), ModelRules("qwen3-instruct", source=QWEN_2507)),
        (re.compile(r"(?i)thinking"), ModelRules("qwen3-thinking", always_thinks=True, source=QWEN_2507)),
        # hybrid Qwen3 (Qwen/Qwen3-32B, Qwen/Qwen3-235B-A22B): thinking on unless switched off
        (re.compile(r"(?i)^qwen/qwen3-\d"), ModelRules("qwen3-hybrid", thinking=qwen3_thinking, source=QWEN_2507)),
    ],
}


def rules_for(provider_id: str, model: str) -> ModelRules:
    """The published rules for ``model`` at ``provider_id``; :data:`GENERIC` when none are known."""
    for pattern, rules in RULES.get(provider_id, []):
        if pattern.search(model):
            return rules
    return GENERIC


# -- what a 400 teaches ------------------------------------------------------------------------
_ONLY_VALUE = re.compile(r"only\s+(-?\d+(?:\.\d+)?)\s+(?:is|are)\s+allowed", re.IGNORECASE)
DROP = object()  # the fix "do not send this parameter"


def names_format(message: str) -> bool:
    text = message.lower()
    return any(w in text for w in FORMAT_WORDS)


def named_parameter(message: str, body: dict[str, Any]) -> str | None:
    """The top-level body parameter a 400's message names (``invalid temperature: ...``), if any."""
    text = message.lower()
    for name in sorted(body, key=len, reverse=True):  # max_completion_tokens before max_tokens
        if name in ESSENTIAL or name == "response_format":
            continue
        if re.search(rf"(?<![a-z_.]){re.escape(name.lower())}(?![a-z_])", text):
            return name
    return None


def fix_for(name: str, message: str, body: dict[str, Any]) -> Any:
    """The fix for a refused parameter: the one value the message allows for a number, the
    newer name for a renamed field, else :data:`DROP`."""
    allowed = _ONLY_VALUE.search(message)
    if allowed and isinstance(body.get(name), (int, float)) and not isinstance(body.get(name), bool):
        value = float(allowed.group(1))
        return int(value) if isinstance(body[name], int) and value.is_integer() else value
    if name == "max_tokens" and "max_completion_tokens" in message:
        return ("rename", "max_completion_tokens")
    return DROP


class ParameterFixes:
    """Fixes learned from 400s, per model, for the life of the process (shared by engines)."""

    _lock = threading.Lock()
    _by_model: dict[tuple[str, str], dict[str, Any]] = {}

    def __init__(self, base_url: str, model: str):
        self.key = (base_url, model)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            fixes = dict(self._by_model.get(self.key, {}))
        for name, fix in fixes.items():
            if name not in body:
                continue
            if fix is DROP:
                body.pop(name)
            elif isinstance(fix, tuple) and fix[0] == "rename":
                body[fix[1]] = body.pop(name)
            else:
                body[name] = fix
        return body

    def learn(self, message: str, body: dict[str, Any]) -> str | None:
        """Remember the fix for the parameter ``message`` names; its name, or None when the
        message names no parameter we sent, or one already fixed (then nothing is retried)."""
        name = named_parameter(message, body)
        if name is None:
            return None
        if self.apply(dict(body)) != body:
            return name  # sent before another call learned the fix: the retry carries it
        fix = fix_for(name, message, body)
        with self._lock:
            known = self._by_model.setdefault(self.key, {})
            if name in known:
                return None
            known[name] = fix
        what = (
            "not sending it"
            if fix is DROP
            else (f"sending {fix[1]} instead" if isinstance(fix, tuple) else f"sending {name}={fix}")
        )
        log.warning("model %s refused %s (%s); %s from now on", self.key[1], name, message[:200], what)
        return name

    def known(self) -> dict[str, str]:
        """The fixes in force, for /health: parameter -> what is done instead."""
        with self._lock:
            fixes = dict(self._by_model.get(self.key, {}))
        return {
            k: "dropped" if v is DROP else (f"renamed to {v[1]}" if isinstance(v, tuple) else f"set to {v:g}")
            for k, v in fixes.items()
        }

    @classmethod
    def forget_all(cls) -> None:
        """Tests: start from a clean process."""
        with cls._lock:
            cls._by_model.clear()
