"""Provider failures turned into messages a person can act on.

Each failure class has its own message that names the variable or the action that fixes it;
the backend returns it as the task's ``TaskError`` and core logs it and puts it in the
result's ``error``.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any

from prelabel.backend import TaskError

if TYPE_CHECKING:
    from prelabel.llm.settings import LLMSettings

_QUOTA_WORDS = ("quota", "insufficient", "balance", "billing", "arrear", "credit", "suspended", "欠费", "额度")


class LLMError(TaskError):
    """A provider call failed; ``kind`` names the failure class (auth, quota, timeout...)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def error_text(exc: BaseException) -> str:
    """The provider's own error message and code, as far as it gave one."""
    body = getattr(exc, "body", None)
    parts: list[str] = []
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            parts += [str(err.get(k)) for k in ("message", "type", "code") if err.get(k)]
        elif err:
            parts.append(str(err))
    if not parts:
        parts.append(str(getattr(exc, "message", "") or exc))
    return "; ".join(parts)[:300]


def _allowance_used_up(exc: BaseException) -> bool:
    """A rate-limit header that counts a daily allowance says none is left: ModelScope's
    ``modelscope-ratelimit-requests-remaining: 0`` (free API-Inference calls per day, see
    https://modelscope.cn/docs/model-service/API-Inference/limits). Waiting seconds will not help."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    return any(
        k.lower().endswith("ratelimit-requests-remaining") or k.lower().endswith("ratelimit-model-requests-remaining")
        for k, v in headers.items()
        if str(v).strip() == "0"
    )


def is_quota(exc: BaseException) -> bool:
    status = status_of(exc)
    if status == 402:
        return True
    if status == 429 and _allowance_used_up(exc):
        return True
    return status in (429, 403) and any(w in error_text(exc).lower() for w in _QUOTA_WORDS)


def is_timeout(exc: BaseException) -> bool:
    import openai

    return isinstance(exc, openai.APITimeoutError)


def is_retryable(exc: BaseException) -> bool:
    """429 (not an exhausted quota), 5xx, timeouts and dropped connections."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is one too
        return True
    status = status_of(exc)
    if status is None:
        return False
    return (status == 429 and not is_quota(exc)) or status >= 500 or status == 408


def retry_after(exc: BaseException, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After``, ``retry-after-ms``), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def describe(exc: BaseException, settings: LLMSettings, attempts: int = 1) -> LLMError:
    """The actionable error for a failed call (after ``attempts`` tries)."""
    import openai

    p, model, url = settings.provider, settings.model, settings.base_url
    key, model_var, url_var = settings.env_name("api_key"), settings.env_name("model"), settings.env_name("base_url")
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = error_text(exc)
    status = status_of(exc)
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(
            f"{p} did not answer within {settings.timeout:g}s{tries}: raise "
            f"{settings.env_name('timeout')}, send shorter texts, or retry later",
            "timeout",
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return LLMError(
            f"cannot reach {p} at {url}{tries} ({type(cause).__name__}: {cause}): check the network, "
            f"firewall and proxy settings, and {url_var}",
            "network",
        )
    if is_quota(exc):
        where = f" ({settings.key_url})" if settings.key_url else ""
        return LLMError(
            f"{p} quota or balance is used up ({status}: {detail}): top up or upgrade the account"
            f"{where}, wait for the quota to reset, or lower the call rate",
            "quota",
        )
    if status == 401:
        return LLMError(
            f"{p} refused the API key (401: {detail}): check {key}; it may be wrong, revoked or expired", "auth"
        )
    if status == 403:
        return LLMError(
            f"no access to model {model!r} (403: {detail}): enable the model for your {p} account, "
            f"or set {model_var} to a model you can use",
            "forbidden",
        )
    if status == 404:
        return LLMError(
            f"{p} does not know model {model!r} at {url} (404: {detail}): check {model_var} (retired "
            f"or misspelt? `prelabel doctor` lists the models on offer) and {url_var}",
            "not_found",
        )
    if status == 429:
        return LLMError(f"{p} rate limit hit{tries} (429: {detail}): lower MAX_CONCURRENT or retry later", "rate_limit")
    if status is not None and status >= 500:
        return LLMError(f"{p} server error{tries} ({status}: {detail}): retry later", "server")
    if status is not None:
        return LLMError(f"{p} refused the request ({status}: {detail})", "bad_request")
    return LLMError(f"{p} call failed: {type(exc).__name__}: {exc}", "other")


def malformed(settings: LLMSettings, reason: Any, attempts: int) -> LLMError:
    return LLMError(
        f"{settings.provider} answered{' ' + str(attempts) + ' times' if attempts > 1 else ''} without "
        f"the JSON asked for ({reason}): retry, or set {settings.env_name('model')} to a model that "
        "follows JSON instructions",
        "malformed",
    )


def truncated(settings: LLMSettings, usage: Any, thought: bool, thinking_on: bool) -> LLMError:
    """The answer was cut off at max_tokens (``finish_reason: "length"``) before it was complete."""
    spent = f"{usage.completion_tokens} tokens" + (
        f", {usage.reasoning_tokens} of them thinking" if usage.reasoning_tokens else ""
    )
    hint = ""
    if thought and thinking_on:
        hint = ", or set LLM_THINKING=false: thinking spends the same budget"
    elif thought:
        hint = " (the model thought before answering: it cannot be switched off for this model)"
    return LLMError(
        f"{settings.provider} stopped at LLM_MAX_TOKENS={settings.llm_max_tokens} before the answer "
        f'was complete (finish_reason "length", {spent}): raise LLM_MAX_TOKENS{hint}',
        "truncated",
    )
