"""Settings shared by every OpenAI-compatible backend.

A plugin subclasses :class:`LLMSettings`, declares its provider's variables under their own
names (``moonshot_api_key`` is read from ``MOONSHOT_API_KEY``) and maps them to the engine's
roles in ``field_roles``; error messages then name the variable a person has to change.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr

from prelabel.settings import BackendSettings

ROLES = ("api_key", "model", "base_url", "timeout")


def _env(name: str) -> AliasChoices:
    # the env name first (messages use it), the field name so tests can pass keywords
    return AliasChoices(name.upper(), name.lower())


class LLMSettings(BackendSettings):
    """Engine knobs (``MAX_CONCURRENT``, ``LLM_*``) plus the provider fields a subclass adds."""

    #: role -> field name of the subclass: api_key, model, base_url, timeout
    field_roles: ClassVar[dict[str, str]] = {}
    #: shown in messages: "Moonshot refused the API key"
    provider: ClassVar[str] = "the provider"
    #: where a person gets a key, for the "key missing / refused" messages
    key_url: ClassVar[str] = ""
    #: whose published parameter rules apply (prelabel.llm.params.RULES): moonshot, modelscope;
    #: "" for a server of unknown make (only the rules learned from its 400s apply)
    provider_id: ClassVar[str] = ""
    #: False: the API key may be empty (a self-hosted server without authentication)
    key_required: ClassVar[bool] = True

    max_concurrent: int = Field(default=10, ge=1, description="Provider calls in flight per process.")
    llm_max_retries: int = Field(
        default=3,
        ge=0,
        validation_alias=_env("llm_max_retries"),
        description="Retries on 429, 5xx, timeouts and dropped connections.",
    )
    llm_backoff_base: float = Field(
        default=0.5,
        gt=0,
        validation_alias=_env("llm_backoff_base"),
        description="First backoff in seconds; doubles per retry, with jitter.",
    )
    llm_backoff_max: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("llm_backoff_max"),
        description="Longest wait between retries, Retry-After included.",
    )
    llm_temperature: float = Field(
        default=0.0,
        ge=0,
        validation_alias=_env("llm_temperature"),
        description="Sampling temperature; not sent to models that lock it.",
    )
    llm_max_tokens: int = Field(
        default=2000,
        ge=1,
        validation_alias=_env("llm_max_tokens"),
        description="Most tokens per answer, thinking included.",
    )
    llm_thinking: bool = Field(
        default=False,
        validation_alias=_env("llm_thinking"),
        description="Let models that can think before answering do so (slower, "
        "several times the tokens; raise LLM_MAX_TOKENS with it).",
    )
    llm_extra_body: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=_env("llm_extra_body"),
        description="JSON object merged into every request body (server-specific fields).",
    )
    llm_response_format: Literal["auto", "json_schema", "json_object", "none"] = Field(
        default="auto",
        validation_alias=_env("llm_response_format"),
        description="auto: json_schema, falling back to json_object, then to the prompt alone.",
    )
    llm_cache_size: int = Field(
        default=1024,
        ge=0,
        validation_alias=_env("llm_cache_size"),
        description="Answers kept per process for identical requests (0: off).",
    )
    llm_prompt: str | None = Field(
        default=None,
        validation_alias=_env("llm_prompt"),
        description="Instruction put before every task ($field inserts task data).",
    )
    llm_system_prompt: str | None = Field(default=None, validation_alias=_env("llm_system_prompt"))
    llm_http2: bool = Field(
        default=True,
        validation_alias=_env("llm_http2"),
        description="Offer HTTP/2 (used where the provider supports it).",
    )
    llm_logprobs: Literal["auto", "on", "off"] = Field(
        default="auto",
        validation_alias=_env("llm_logprobs"),
        description="Ask for token log-probabilities (prediction scores): auto asks servers known to return "
        "them (vLLM, llama.cpp: openai_compatible), not Moonshot or ModelScope, whose APIs do not "
        "document them.",
    )
    # -- few-shot training (see prelabel.llm.fewshot) --------------------------------------------
    llm_fewshot_holdout: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        validation_alias=_env("llm_fewshot_holdout"),
        description="Share of annotated tasks held out to evaluate a version.",
    )
    llm_fewshot_min_examples: int = Field(
        default=4,
        ge=2,
        validation_alias=_env("llm_fewshot_min_examples"),
        description="Fewest annotated tasks worth training on.",
    )
    llm_fewshot_max_examples: int = Field(
        default=8,
        ge=1,
        validation_alias=_env("llm_fewshot_max_examples"),
        description="Most examples put in one prompt.",
    )
    llm_fewshot_token_budget: int = Field(
        default=1500,
        ge=50,
        validation_alias=_env("llm_fewshot_token_budget"),
        description="Most (estimated) tokens the examples may add to one prompt.",
    )
    llm_fewshot_eval_calls: int = Field(
        default=100,
        ge=2,
        validation_alias=_env("llm_fewshot_eval_calls"),
        description="Most answers a training job asks for to evaluate (zero-shot "
        "and few-shot on each held-out task: two per task).",
    )
    llm_fewshot_eval_tokens: int = Field(
        default=200_000,
        ge=100,
        validation_alias=_env("llm_fewshot_eval_tokens"),
        description="Tokens after which evaluation stops (the tasks done count).",
    )
    llm_fewshot_tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        validation_alias=_env("llm_fewshot_tolerance"),
        description="Promote when few-shot's mean per-task score is at least zero-shot's minus this.",
    )

    def _role(self, role: str):
        try:
            return getattr(self, self.field_roles[role])
        except KeyError:
            raise TypeError(f"{type(self).__name__}.field_roles does not map {role!r}") from None

    def env_name(self, role: str) -> str:
        """The environment variable behind a role: ``MOONSHOT_API_KEY`` for ``api_key``."""
        name = self.field_roles.get(role, role)
        alias = type(self).model_fields[name].validation_alias if name in type(self).model_fields else None
        if isinstance(alias, AliasChoices):
            return str(alias.choices[0]).upper()
        return str(alias or name).upper()

    @property
    def api_key(self) -> str:
        value = self._role("api_key")
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value or "")

    @property
    def model(self) -> str:
        return str(self._role("model"))

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL; a full ``.../chat/completions`` URL is cut back to it."""
        url = str(self._role("base_url")).strip().rstrip("/")
        for suffix in ("/chat/completions", "/completions"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        return url

    @property
    def timeout(self) -> float:
        return float(self._role("timeout"))

    def problems(self) -> list[str]:
        """What is wrong with these settings, as messages that name the variable to fix."""
        out = []
        if self.key_required and not self.api_key.strip():
            where = f" (get one at {self.key_url})" if self.key_url else ""
            out.append(f"{self.env_name('api_key')} is empty: set it to your {self.provider} API key{where}")
        if not self.base_url.startswith(("http://", "https://")):
            out.append(f"{self.env_name('base_url')}={self.base_url!r} is not an http(s) URL")
        if not self.model.strip():
            out.append(f"{self.env_name('model')} is empty: set the model name")
        if self.timeout <= 0:
            out.append(f"{self.env_name('timeout')} must be a positive number of seconds")
        return out
