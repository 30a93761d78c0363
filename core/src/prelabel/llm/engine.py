"""The OpenAI-compatible engine: one pooled async client per process, bounded concurrency,
retries with backoff, a response-format fallback, a bounded answer cache and token metrics.

Everything provider-facing goes through :meth:`LLMEngine.ask`, which returns a parsed answer
or raises :class:`~prelabel.llm.errors.LLMError` with an actionable message.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import logging
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from prelabel.llm import errors, params
from prelabel.llm.answer import MalformedAnswer
from prelabel.llm.settings import LLMSettings

log = logging.getLogger("prelabel.llm")

T = TypeVar("T")
FORMATS = ("json_schema", "json_object", "none")
#: 5xx answers that a server gives for a request it cannot serve (llama-cpp-python answers
#: json_schema with 500), unlike 502/503/504 (gateway, overload, timeout): only these count
#: towards a format step-down, only for a format that has never worked in this process (a
#: server that cannot serve a format never can; a 500 after a success is an outage), and only
#: when the next format then succeeds
FORMAT_5XX = (500, 501)
FORMAT_5XX_STRIKES = 2  # consecutive 5xx for one format before the next format is tried
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def require_openai() -> Any:
    """The ``openai`` module, or an ImportError that says what to install."""
    try:
        import openai
    except ImportError as exc:
        raise ImportError('the LLM engine needs the openai SDK: pip install "prelabel[llm]"') from exc
    return openai


class LLMMetrics:
    """Token and call counters, registered once per registry (so /metrics shows them)."""

    _by_registry: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry):
        self.calls = Counter(
            "prelabel_llm_calls", "Provider calls by outcome (ok, error, retry, cached)", ["outcome"], registry=registry
        )
        self.tokens = Counter(
            "prelabel_llm_tokens",
            "Tokens used, by kind (prompt, completion, reasoning: the part of completion spent thinking)",
            ["model", "kind"],
            registry=registry,
        )
        self.retries = Counter(
            "prelabel_llm_retries", "Retried provider calls, by reason", ["reason"], registry=registry
        )
        self.seconds = Histogram(
            "prelabel_llm_call_seconds", "Provider call latency", buckets=CALL_BUCKETS, registry=registry
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None) -> LLMMetrics:
        registry = registry if registry is not None else CollectorRegistry()
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry)
        return found


@dataclass
class Usage:
    """Tokens of one answer, every attempt included. ``reasoning_tokens`` is the part of
    ``completion_tokens`` the model spent thinking (as the provider reports it)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Any) -> None:
        if usage is not None:
            self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            details = getattr(usage, "completion_tokens_details", None)
            reasoning = getattr(details, "reasoning_tokens", None) if details is not None else None
            if reasoning is None:  # some servers report it at the top level
                reasoning = getattr(usage, "reasoning_tokens", None) or (getattr(usage, "model_extra", None) or {}).get(
                    "reasoning_tokens"
                )
            self.reasoning_tokens += int(reasoning or 0)


@dataclass
class Outcome(Generic[T]):
    """A parsed answer with what it cost: tokens, attempts, and whether it came from the cache."""

    value: T
    usage: Usage = field(default_factory=Usage)
    attempts: int = 1
    cached: bool = False
    #: the answer's token log-probabilities, where the server returned them (see LLM_LOGPROBS)
    logprobs: list[float] | None = None


class AnswerCache:
    """A bounded LRU of parsed answers keyed by (model, messages, schema)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: str, value: Any) -> None:
        if self.maxsize <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _LoopState:
    """The client, semaphore and in-flight table of one event loop (a process serves on one)."""

    loop: asyncio.AbstractEventLoop | None  # None: made by prepare(), adopted by the first loop
    client: Any
    semaphore: asyncio.Semaphore | None = None
    inflight: dict[str, asyncio.Future] = field(default_factory=dict)


@dataclass
class Reply:
    """The answer part of a completion: ``content`` only, never ``reasoning_content`` (a
    thinking model's reasoning is not its answer)."""

    content: str
    finish_reason: str | None = None
    reasoned: bool = False  # the message carried reasoning_content
    logprobs: list[float] | None = None  # of the content's tokens, when the server sent them


def _logprobs(choice: Any) -> list[float] | None:
    """``choices[0].logprobs.content[*].logprob`` (the OpenAI shape vLLM and llama.cpp follow)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    values = [getattr(t, "logprob", None) for t in content]
    return [float(v) for v in values if isinstance(v, (int, float))] or None


def _reply(response: Any, usage: Usage) -> Reply:
    """The first choice's answer; MalformedAnswer when the response is not a chat completion."""
    if isinstance(response, BaseException):
        raise MalformedAnswer(
            f"the response is not a chat completion ({type(response).__name__}: {str(response)[:120]})"
        )
    usage.add(getattr(response, "usage", None))
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    reasoning = getattr(message, "reasoning_content", None) or (getattr(message, "model_extra", None) or {}).get(
        "reasoning_content"
    )
    return Reply(
        getattr(message, "content", None) or "",
        getattr(choices[0], "finish_reason", None) if choices else None,
        bool(reasoning),
        _logprobs(choices[0]) if choices else None,
    )


class LLMEngine:
    """Provider calls for one backend in one process: ``ask`` for answers, ``list_models`` for doctor."""

    def __init__(self, settings: LLMSettings, registry: CollectorRegistry | None = None):
        self.settings = settings
        self.metrics = LLMMetrics.for_registry(registry)
        self.cache = AnswerCache(settings.llm_cache_size)
        mode = settings.llm_response_format
        self.response_format = "json_schema" if mode == "auto" else mode
        self.rules = params.rules_for(settings.provider_id, settings.model)
        self.fixes = params.ParameterFixes(settings.base_url, settings.model)
        self._format_worked: set[str] = set()  # formats that got a 2xx in this process
        self._state: _LoopState | None = None

    # -- the client -------------------------------------------------------------------------
    def _make_client(self) -> Any:
        openai = require_openai()
        # keep-alive pool; HTTP/2 where the provider negotiates it (needs h2: httpx[http2])
        http2 = self.settings.llm_http2 and importlib.util.find_spec("h2") is not None
        http_client = openai.DefaultAsyncHttpxClient(http2=http2)
        # a server without authentication (openai_compatible) gets a placeholder: the SDK needs one
        return openai.AsyncOpenAI(
            api_key=self.settings.api_key or "no-key",
            base_url=self.settings.base_url,
            timeout=self.settings.timeout,
            max_retries=0,
            http_client=http_client,
        )

    def prepare(self) -> None:
        """Make the client now (setup, off the loop): loading TLS certificates takes a while,
        and the first request should not pay for it."""
        if self._state is None:
            self._state = _LoopState(None, self._make_client())
        transport_log = logging.getLogger("httpx2")  # the SDK's transport logs every call at INFO
        if transport_log.level == logging.NOTSET:
            transport_log.setLevel(logging.WARNING)

    def state(self) -> _LoopState:
        """This loop's pooled client; a new loop (tests, ``asyncio.run``) gets its own."""
        loop = asyncio.get_running_loop()
        if self._state is not None and self._state.loop is None:  # prepared: adopt it
            self._state.loop = loop
            self._state.semaphore = asyncio.Semaphore(self.settings.max_concurrent)
        if self._state is None or self._state.loop is not loop:
            self._state = _LoopState(loop, self._make_client(), asyncio.Semaphore(self.settings.max_concurrent))
        return self._state

    async def aclose(self) -> None:
        if self._state is not None and self._state.loop is asyncio.get_running_loop():
            await self._state.client.close()
        self._state = None

    # -- one call ---------------------------------------------------------------------------
    @property
    def logprobs(self) -> bool:
        """Whether requests ask for token log-probabilities: LLM_LOGPROBS=on, or auto for a
        self-hosted server (vLLM and llama.cpp return them; Moonshot's and ModelScope's APIs do
        not document them). A server that refuses the parameter with a 400 naming it gets it
        dropped for the process (:mod:`prelabel.llm.params`)."""
        mode = self.settings.llm_logprobs
        return mode == "on" or (mode == "auto" and not self.settings.provider_id)

    @property
    def thinking(self) -> bool:
        """Whether answers come with thinking: the setting, where the model has a switch."""
        return self.rules.always_thinks or (self.settings.llm_thinking and self.rules.thinking_switch)

    def request_body(
        self,
        messages: list[dict],
        schema: dict | None,
        fmt: str,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The body of one chat completion: only parameters the model accepts (its published
        rules, then the fixes learned from its 400s), thinking switched as set."""
        s = self.settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "temperature": s.llm_temperature,
            "max_tokens": max_tokens or s.llm_max_tokens,
        }
        for name in self.rules.locked:
            body.pop(name, None)
        if self.rules.thinking is not None:
            body.update(self.rules.thinking(s.llm_thinking))
        if self.logprobs:
            body["logprobs"] = True
        body.update(s.llm_extra_body)
        if fmt == "json_schema" and schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "label_studio_result", "schema": schema, "strict": True},
            }
        elif fmt in ("json_schema", "json_object"):
            body["response_format"] = {"type": "json_object"}
        return self.fixes.apply(body)

    async def _post(self, state: _LoopState, body: dict[str, Any], timeout: float) -> Any:
        """POST /chat/completions through the SDK's client (auth, errors, pool) with the body
        as built: ``chat.completions.create`` would re-walk messages and schema through its
        typed-parameter transform on every call, a fifth of its CPU time per call."""
        from openai.types.chat import ChatCompletion

        return await state.client.post(
            "/chat/completions", cast_to=ChatCompletion, body=body, options={"timeout": timeout}
        )

    async def _create(
        self,
        state: _LoopState,
        messages: list[dict],
        schema: dict | None,
        strikes: dict[str, int] | None = None,
        max_tokens: int | None = None,
    ) -> Any:
        """One completion. A 400 that names a parameter we sent fixes it and retries once (see
        :mod:`prelabel.llm.params`). In ``auto`` mode the format steps down json_schema ->
        json_object -> prompt only on a 400/422, and on a 500/501 that persisted over this call's
        attempts (FORMAT_5XX_STRIKES) for a format that never worked, when the next format then
        succeeds; the first
        format the provider accepts is kept for later calls (and shown in /health)."""
        openai = require_openai()
        auto = self.settings.llm_response_format == "auto"
        order = FORMATS[FORMATS.index(self.response_format) :] if auto else (self.response_format,)
        i, stepped_for_5xx = 0, None
        strikes = strikes if strikes is not None else {}
        while True:
            fmt = order[i]
            body = self.request_body(messages, schema, fmt, max_tokens)
            try:
                response = await self._post(state, body, self.settings.timeout)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                text = errors.error_text(exc)
                if not params.names_format(text) and self.fixes.learn(text, body):
                    continue  # the same format again, without the refused parameter
                if i == len(order) - 1:
                    raise
                log.info(
                    "%s refused response_format=%s (%s); trying the next format", self.settings.provider, fmt, text
                )
                i += 1
                continue
            except openai.InternalServerError as exc:
                status = errors.status_of(exc)
                if (
                    stepped_for_5xx is not None
                    or i == len(order) - 1
                    or status not in FORMAT_5XX
                    or fmt in self._format_worked
                ):
                    raise  # a probe that fails too, or a real outage: retried and reported as such
                # counted per call (the same request, retried after a backoff), not per process:
                # two tasks that each meet one 500 of a storm are no evidence about the format
                count = strikes[fmt] = strikes.get(fmt, 0) + 1
                if count < FORMAT_5XX_STRIKES:
                    raise  # once may be a blip: the caller retries with backoff
                log.info(
                    "%s answered response_format=%s with %s %d times in a row (%s); trying the next format",
                    self.settings.provider,
                    fmt,
                    status,
                    count,
                    errors.error_text(exc),
                )
                stepped_for_5xx = (fmt, status)
                i += 1
                continue
            self._format_worked.add(fmt)
            if fmt != self.response_format:
                why = (
                    f"answers it with HTTP {stepped_for_5xx[1]} every time while {fmt} works"
                    if stepped_for_5xx
                    else "refuses it"
                )
                log.warning(
                    "%s does not accept response_format=%s (it %s); using %s from now on",
                    self.settings.provider,
                    self.response_format,
                    why,
                    fmt,
                )
                self.response_format = fmt
            return response

    def _delay(self, exc: BaseException, attempt: int) -> float | None:
        """Seconds before the next attempt: Retry-After when given (None if it is longer than
        LLM_BACKOFF_MAX: then give up), else exponential backoff with jitter."""
        s = self.settings
        asked = errors.retry_after(exc)
        if asked is not None:
            return asked + random.uniform(0, 0.1 * max(asked, 0.1)) if asked <= s.llm_backoff_max else None
        step = min(s.llm_backoff_max, s.llm_backoff_base * 2 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)

    async def _ask(
        self, state: _LoopState, messages: list[dict], schema: dict | None, parse: Callable[[str], T]
    ) -> Outcome[T]:
        openai = require_openai()
        s, usage, attempts, reasked = self.settings, Usage(), 0, False
        strikes: dict[str, int] = {}  # 500s per format over this call's attempts
        while True:
            attempts += 1
            try:
                async with state.semaphore:
                    started = time.perf_counter()
                    try:
                        response = await self._create(state, messages, schema, strikes)
                    finally:
                        self.metrics.seconds.observe(time.perf_counter() - started)
            except (openai.APIResponseValidationError, ValueError) as exc:
                response = exc  # a 2xx body that is not a chat completion: a malformed answer
            except openai.APIError as exc:
                delay = self._delay(exc, attempts) if errors.is_retryable(exc) else None
                if delay is None or attempts > s.llm_max_retries:
                    self.metrics.calls.labels(outcome="error").inc()
                    raise errors.describe(exc, s, attempts) from exc
                reason = "timeout" if errors.is_timeout(exc) else str(errors.status_of(exc) or "connection")
                log.warning(
                    "%s call failed (%s); retry %d/%d in %.2fs",
                    s.provider,
                    errors.error_text(exc),
                    attempts,
                    s.llm_max_retries,
                    delay,
                )
                self.metrics.calls.labels(outcome="retry").inc()
                self.metrics.retries.labels(reason=reason).inc()
                await asyncio.sleep(delay)
                continue
            try:
                reply = _reply(response, usage)
            except MalformedAnswer as exc:
                reply, bad = None, exc
            try:
                if reply is None:
                    raise bad
                value = parse(reply.content)
            except MalformedAnswer as exc:
                if reply is not None and reply.finish_reason == "length":
                    # cut off at max_tokens (thinking spends them too): asking again gets the same
                    self.metrics.calls.labels(outcome="error").inc()
                    raise errors.truncated(
                        s, usage, reply.reasoned or usage.reasoning_tokens > 0, self.thinking
                    ) from exc
                if not reasked and attempts <= s.llm_max_retries:
                    reasked = True  # one more try: sampling may give well-formed JSON
                    log.warning("%s answer is not the JSON asked for (%s); asking again", s.provider, exc)
                    self.metrics.retries.labels(reason="malformed").inc()
                    continue
                self.metrics.calls.labels(outcome="error").inc()
                raise errors.malformed(s, exc, attempts) from exc
            self.metrics.calls.labels(outcome="ok").inc()
            self.metrics.tokens.labels(model=s.model, kind="prompt").inc(usage.prompt_tokens)
            self.metrics.tokens.labels(model=s.model, kind="completion").inc(usage.completion_tokens)
            if usage.reasoning_tokens:
                self.metrics.tokens.labels(model=s.model, kind="reasoning").inc(usage.reasoning_tokens)
            return Outcome(value, usage, attempts, logprobs=reply.logprobs)

    def cache_key(self, messages: list[dict], schema: dict | None) -> str:
        blob = json.dumps([self.settings.model, messages, schema, self.thinking], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def ask(self, messages: list[dict], schema: dict | None, parse: Callable[[str], T]) -> Outcome[T]:
        """The parsed answer to ``messages``. Identical requests are not sent twice: a cached
        answer, or the one already in flight, is shared (``cached=True``, no tokens)."""
        key = self.cache_key(messages, schema)
        hit = self.cache.get(key)
        if hit is not None:
            self.metrics.calls.labels(outcome="cached").inc()
            return Outcome(hit[0], Usage(), 0, cached=True, logprobs=hit[1])
        state = self.state()
        pending = state.inflight.get(key)
        if pending is not None:
            outcome = await asyncio.shield(pending)
            self.metrics.calls.labels(outcome="cached").inc()
            return replace(outcome, usage=Usage(), attempts=0, cached=True)
        future: asyncio.Future = state.loop.create_future()
        state.inflight[key] = future
        try:
            outcome = await self._ask(state, messages, schema, parse)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: nobody may be waiting
            raise
        else:
            future.set_result(outcome)
            self.cache.put(key, (outcome.value, outcome.logprobs))
            return outcome
        finally:
            state.inflight.pop(key, None)

    async def list_models(self) -> list[str]:
        """The model ids ``GET /models`` offers to this key (``prelabel doctor``). Raises
        :class:`LLMError` with the actionable message on failure."""
        openai = require_openai()
        state = self.state()
        try:
            page = await state.client.models.list(timeout=min(self.settings.timeout, 30.0))
        except openai.APIError as exc:
            raise errors.describe(exc, self.settings) from exc
        return [m.id for m in page.data]

    def describe_health(self) -> dict[str, Any]:
        """What /health shows about the calls: the format in use, thinking, learned fixes."""
        out: dict[str, Any] = {
            "response_format": self.response_format,
            "thinking": self.thinking,
            "model_family": self.rules.family,
        }
        fixes = self.fixes.known()
        if fixes:
            out["parameter_fixes"] = fixes
        return out
