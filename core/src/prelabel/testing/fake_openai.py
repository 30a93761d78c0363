"""A fake OpenAI-compatible server: a real HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks ``POST /v1/chat/completions`` and ``GET /v1/models``, records every request, and
misbehaves on demand::

    with FakeOpenAI(latency=0.1) as fake:          # or the ``fake_openai`` pytest fixture
        fake.enqueue(Reply.rate_limited(retry_after=0.2), Reply.fenced())
        ...  # point the client at fake.base_url
        assert fake.chat_requests[-1].body["model"] == "kimi-k2.6"

Replies come from the queue (one per chat request, first in first out), else from
``responder(request)``, else from a default answer that fits the JSON schema the request
asked for (``response_format`` or a schema written in the prompt). Run it standalone with
``python -m prelabel.testing.fake_openai --latency 0.1`` (prints its base URL).

``FakeOpenAI(profile="moonshot")`` (or ``"modelscope"``) follows that provider's published
rules (see :mod:`prelabel.testing.provider_profiles`): its model list, 404 for retired ids,
400 for locked parameters with the provider's message, thinking (``reasoning_content``,
reasoning tokens, ``finish_reason: "length"`` when max_tokens runs out) and rate-limit headers.
``json_schema_status=500`` answers response_format json_schema as llama-cpp-python's server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

from prelabel.testing.provider_profiles import PROFILES, REASONING, ProviderProfile

__all__ = ["FakeOpenAI", "FakeRequest", "Reply", "answer_for_schema"]


@dataclass
class FakeRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    client_port: int = 0  # the client's side of the connection: equal ports mean a reused connection

    @property
    def messages(self) -> list[dict]:
        return list((self.body or {}).get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def prompt(self) -> str:
        """The last user message's text."""
        users = [m for m in self.messages if m.get("role") == "user"]
        content = users[-1].get("content", "") if users else ""
        return content if isinstance(content, str) else json.dumps(content)

    @property
    def response_format(self) -> str | None:
        rf = (self.body or {}).get("response_format") if isinstance(self.body, dict) else None
        return rf.get("type") if isinstance(rf, dict) else None

    @property
    def schema(self) -> dict | None:
        """The JSON schema asked for: from response_format, else the first one in the prompt."""
        rf = (self.body or {}).get("response_format") if isinstance(self.body, dict) else None
        if isinstance(rf, dict) and rf.get("type") == "json_schema":
            return (rf.get("json_schema") or {}).get("schema")
        decoder = json.JSONDecoder()
        for match in re.finditer(r"\{", self.prompt):
            try:
                value, _ = decoder.raw_decode(self.prompt, match.start())
            except ValueError:
                continue
            if isinstance(value, dict) and "properties" in value:
                return value
        return None


@dataclass
class Reply:
    """How to answer one chat request. ``content`` None: the responder's or default answer."""

    status: int = 200
    content: str | dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fence: bool = False
    raw: bytes | None = None
    error: dict | None = None
    #: the answer's total log-probability, spread over its tokens when the request asks for
    #: ``logprobs`` (default: -0.01 per token, a confident answer)
    logprob: float | None = None

    @classmethod
    def rate_limited(cls, retry_after: float | None = 0.1) -> Reply:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls(429, headers=headers, error={"message": "Rate limit reached", "type": "rate_limit_reached_error"})

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status, error={"message": "internal error", "type": "server_error"})

    @classmethod
    def stall(cls, seconds: float) -> Reply:
        """Answer only after ``seconds``: longer than the client's timeout, it is a timeout."""
        return cls(delay=seconds)

    @classmethod
    def fenced(cls, content: str | dict | None = None) -> Reply:
        """The answer inside a ```json fence, with prose before and after."""
        return cls(content=content, fence=True)

    @classmethod
    def malformed(cls, text: str = "Sure! Here is the label you asked for: positive") -> Reply:
        return cls(content=text)

    @classmethod
    def unauthorized(cls) -> Reply:
        return cls(401, error={"message": "Invalid Authentication", "type": "invalid_authentication_error"})

    @classmethod
    def forbidden(cls) -> Reply:
        return cls(403, error={"message": "You do not have access to this model", "type": "permission_denied"})

    @classmethod
    def quota_exhausted(cls) -> Reply:
        return cls(
            429,
            error={
                "message": "You exceeded your current quota, please check your plan and billing details",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            },
        )

    @classmethod
    def bad_request(cls, message: str = "invalid request") -> Reply:
        return cls(400, error={"message": message, "type": "invalid_request_error"})


def answer_for_schema(schema: dict | None) -> Any:
    """A small value that fits ``schema``: the first enum value, one item of enum arrays,
    "fake answer" for strings, the minimum for numbers."""
    if not isinstance(schema, dict):
        return "fake answer"
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), None)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {k: answer_for_schema(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        items = schema.get("items") or {}
        return [answer_for_schema(items)] if "enum" in items else []
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "fake answer"


class FakeOpenAI:
    """The fake provider. ``latency`` delays every chat answer; ``api_key`` (if set) must be
    sent as the Bearer token; ``reject_json_schema`` answers 400 to response_format
    json_schema, as providers without structured outputs do.

    HTTP/1.1 with keep-alive on asyncio streams, in a thread of its own: light enough that
    a benchmark measures the client, not the fake."""

    def __init__(
        self,
        latency: float = 0.0,
        api_key: str | None = None,
        models: list[str] | None = None,
        responder: Callable[[FakeRequest], str | dict | Reply] | None = None,
        port: int = 0,
        profile: ProviderProfile | str | None = None,
        daily_limit: int | None = None,
    ):
        self.latency = latency
        self.api_key = api_key
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.models = models or (list(self.profile.models) if self.profile else ["fake-model"])
        self.responder = responder
        self.reject_json_schema = False
        #: answer response_format json_schema with this status (llama-cpp-python's server: 500)
        self.json_schema_status: int | None = None
        #: chat calls allowed before 429 with the profile's "remaining: 0" headers (ModelScope's daily quota)
        self.daily_limit = daily_limit
        self.chat_calls = 0
        self.requests: list[FakeRequest] = []
        self.max_active = 0
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._port = port
        self._bound_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._active = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)  # this thread's loop
            self._loop = loop
            try:
                self._stopping = asyncio.Event()
                server = loop.run_until_complete(
                    asyncio.start_server(self._connection, "127.0.0.1", self._port, backlog=512)
                )
                self._bound_port = server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_until_complete(self._stopping.wait())
                server.close()  # not wait_closed(): it would wait for idle keep-alive clients
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving; requests still waiting (latency, stalls) are answered 503 at once."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
        self._bound_port = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._bound_port is not None, "the fake server is not started"
        return self._bound_port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and inspection -------------------------------------------------------------
    def enqueue(self, *replies: Reply | str | dict) -> None:
        """Answer the next chat requests with these, in order."""
        with self._lock:
            self._queue += [r if isinstance(r, Reply) else Reply(content=r) for r in replies]

    @property
    def chat_requests(self) -> list[FakeRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.max_active = 0

    # -- HTTP ----------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_port = (writer.get_extra_info("peername") or ("", 0))[1]
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                method, path = (line.decode("latin-1").split(" ") + ["", ""])[:2]
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                payload = await reader.readexactly(length) if length else b""
                status, body, extra = await self._dispatch(method, path, headers, payload, client_port)
                head = [
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(body)}",
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away (a timeout), or the server stops
        finally:
            writer.close()

    async def _dispatch(
        self, method: str, path: str, headers: dict[str, str], payload: bytes, client_port: int
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            body = json.loads(payload) if payload else None
        except ValueError:
            body = payload.decode("utf-8", "replace")
        req = FakeRequest(method, path, headers, body, time.time(), client_port)
        with self._lock:
            self.requests.append(req)
        route = path.split("?")[0].rstrip("/")
        if method == "GET" and route.endswith("/models"):
            if not self._authorized(headers.get("authorization")):
                return 401, json.dumps({"error": Reply.unauthorized().error}).encode(), {}
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return 200, json.dumps({"object": "list", "data": data}).encode(), {}
        if method != "POST" or not route.endswith("/chat/completions"):
            return 404, b'{"error": {"message": "not found"}}', {}
        with self._lock:
            reply = self._queue.pop(0) if self._queue else None
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            return await self._build(req, reply)
        finally:
            with self._lock:
                self._active -= 1

    def _rate_headers(self) -> dict[str, str]:
        """The profile's rate-limit headers, "remaining" counting down with each chat call."""
        if self.profile is None or not self.profile.rate_headers:
            return {}
        with self._lock:
            self.chat_calls += 1
            used = self.chat_calls
        out = {}
        for name, value in self.profile.rate_headers.items():
            if name.endswith("-remaining"):
                limit = self.daily_limit if self.daily_limit is not None else int(value) + 1
                value = str(max(0, limit - used))
            elif self.daily_limit is not None:
                value = str(self.daily_limit)
            out[name] = value
        return out

    def _logprobs(self, body: dict, text: str, total: float | None) -> dict[str, Any] | None:
        """Token log-probabilities when asked for and the profile's provider returns them."""
        if not body.get("logprobs"):
            return None
        if self.profile is not None and not self.profile.logprobs:
            return None
        return _token_logprobs(text, total)

    def _authorized(self, authorization: str | None) -> bool:
        return self.api_key is None or authorization == f"Bearer {self.api_key}"

    async def _build(self, req: FakeRequest, reply: Reply | None) -> tuple[int, bytes, dict[str, str]]:
        if not self._authorized(req.headers.get("authorization")):
            return 401, json.dumps({"error": Reply.unauthorized().error}).encode(), {}
        body = req.body if isinstance(req.body, dict) else {}
        if reply is None and self.reject_json_schema and req.response_format == "json_schema":
            reply = Reply.bad_request("response_format json_schema is not supported")
        if reply is None and self.json_schema_status and req.response_format == "json_schema":
            reply = Reply(self.json_schema_status, error={"message": "Internal Server Error", "type": "server_error"})
        headers = self._rate_headers()
        if reply is None and self.daily_limit is not None and self.chat_calls > self.daily_limit:
            # https://modelscope.cn/docs/model-service/API-Inference/limits: past the daily allowance, 429
            # with the rate-limit headers at 0 (the message wording is ours)
            reply = Reply(
                429,
                headers=headers,
                error={
                    "message": "Request limit exceeded for today, please try again tomorrow",
                    "type": "rate_limit_error",
                },
            )
        if reply is None and self.profile is not None:
            refused = self.profile.refuse(body)
            if refused is not None:
                reply = Reply(refused[0], error=refused[1])
        if reply is None and self.responder is not None:
            got = self.responder(req)
            reply = got if isinstance(got, Reply) else Reply(content=got)
        reply = reply or Reply()
        reply = replace(reply, headers={**headers, **reply.headers}) if headers else reply
        wait = self.latency + reply.delay
        if wait > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), wait)
                return 503, b'{"error": {"message": "shutting down"}}', {}
            except asyncio.TimeoutError:
                pass
        if reply.raw is not None:
            return reply.status, reply.raw, reply.headers
        if reply.status != 200:
            error = reply.error or {"message": f"error {reply.status}"}
            return reply.status, json.dumps({"error": error}).encode(), reply.headers
        content = reply.content if reply.content is not None else answer_for_schema(req.schema)
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        if reply.fence:
            text = f"Here is the result:\n```json\n{text}\n```\nLet me know if you need anything else."
        if body.get("max_tokens") == 1:
            text = text[:2]
        message: dict[str, Any] = {"role": "assistant", "content": text}
        choice_logprobs = self._logprobs(body, text, reply.logprob)
        finish, reasoning_tokens = "stop", 0
        if self.profile is not None and self.profile.thinks(body):
            # thinking spends max_tokens before the answer does; run out and the answer is cut
            # (https://platform.kimi.ai/docs/guide/use-kimi-k2-thinking-model: reasoning_content
            # beside content; set max_tokens large enough for both)
            budget = int(body.get("max_tokens") or 1_000_000)
            reasoning_tokens = min(budget, len(REASONING) // 4)
            message["reasoning_content"] = REASONING[: reasoning_tokens * 4]
            left = budget - reasoning_tokens
            if left < max(1, len(text) // 4):
                text, finish = text[: left * 4], "length"
                message["content"] = text
        prompt_tokens = max(1, len(req.prompt) // 4)
        completion_tokens = max(1, len(text) // 4) + reasoning_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        payload = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.models[0]),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish,
                    **({"logprobs": choice_logprobs} if choice_logprobs else {}),
                }
            ],
            "usage": usage,
        }
        return 200, json.dumps(payload, ensure_ascii=False).encode(), reply.headers


def _token_logprobs(text: str, total: float | None) -> dict[str, Any]:
    """``{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}`` with the text cut in
    4-character tokens, the shape of https://platform.openai.com/docs/api-reference/chat/object
    (``choices[].logprobs.content``) that vLLM's OpenAI-compatible server
    (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html) and llama.cpp's
    server return for ``logprobs: true``."""
    chunks = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
    each = (total / len(chunks)) if total is not None else -0.01
    return {"content": [{"token": c, "logprob": each, "bytes": list(c.encode()), "top_logprobs": []} for c in chunks]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each chat answer")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="follow this provider's published rules")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(latency=args.latency, port=args.port, profile=args.profile).start()
    print(fake.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
