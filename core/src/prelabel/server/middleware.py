"""One pure-ASGI middleware for every request: request id, Basic auth, body size limit,
metrics and one access-log line. It wraps the whole FastAPI stack, and serves the hot
endpoint (POST /predict) itself, without FastAPI's routing, dependency solving and
exception middlewares, which cost more CPU than the rest of a small request together.

Every Prometheus label it sets comes from a known, small set (an unknown method is
``other``), so made-up methods or paths cannot add series, even on requests refused with 401.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from prelabel.logsetup import AccessLog, request_id_var

if TYPE_CHECKING:
    from prelabel.runtime import Runtime

access_log = AccessLog("prelabel.access")

KNOWN = (
    "/health",
    "/setup",
    "/predict",
    "/webhook",
    "/train",
    "/versions",
    "/metrics",
    "/jobs",
    "/openapi.json",
    "/docs",
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
QUIET = {"/health", "/metrics"}

#: a handler the middleware calls for (method, path) instead of the FastAPI app: it gets the
#: request body and returns (status, JSON body bytes, extra headers)
FastHandler = Callable[[bytes], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]]


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected (or the server closed a stalled upload) before the body arrived."""


def endpoint_label(path: str) -> str:
    for known in KNOWN:
        if path == known or path.startswith(known + "/"):
            return known
    return "other"


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


async def send_json(send: Any, status: int, raw: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if headers:
        hdrs += headers
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


async def read_body(receive: Any, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes (BodyTooLarge beyond)."""
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone()
    body = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise BodyTooLarge()
        return body
    chunks = [body]
    total = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class PrelabelMiddleware:
    def __init__(self, app: Any, runtime: Runtime, fast: dict[tuple[str, str], FastHandler] | None = None):
        self.app = app
        self.runtime = runtime
        self.fast = fast or {}
        core = runtime.core
        self.max_body = core.max_body_bytes
        self.auth: bytes | None = None
        if core.auth_enabled:
            self.auth = f"{core.basic_auth_user}:{core.basic_auth_pass.get_secret_value()}".encode()
        # request ids: a random per-process prefix and a counter (unique without a syscall)
        self._rid_prefix = secrets.token_hex(6)
        self._rid_counter = itertools.count(1)
        self._observe = runtime.metrics.observe_request

    def _authorized(self, value: bytes) -> bool:
        if not value[:6].lower() == b"basic ":
            return False
        try:
            given = base64.b64decode(value[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(given, self.auth or b"")

    async def _buffered(self, receive: Any) -> Any:
        messages, total = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_body:
                raise BodyTooLarge()
            if not message.get("more_body"):
                break
        replay = iter(messages)

        async def replay_receive() -> dict:
            try:
                return next(replay)
            except StopIteration:
                return await receive()

        return replay_receive

    def _record(self, endpoint: str, method: str, status: int | None, elapsed: float, path: str) -> None:
        self._observe(endpoint, method_label(method), "499" if status is None else status_label(status), elapsed)
        shown = 499 if status is None else status  # 499: the client went away before an answer
        level = logging.DEBUG if path in QUIET and shown < 400 else logging.INFO
        access_log.log(level, method, path, shown, elapsed * 1000)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = auth = length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"authorization":
                auth = value
            elif name == b"content-length":
                length = value
        rid = incoming if incoming and _RID.match(incoming) else f"{self._rid_prefix}{next(self._rid_counter):08x}"
        token = request_id_var.set(rid)
        path, method = scope["path"], scope["method"]
        endpoint = endpoint_label(path)
        started = time.perf_counter()
        status: int | None = None
        failed = False
        rid_header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            await send(message)

        try:
            if self.auth is not None and not self._authorized(auth or b""):
                await send_json(
                    send_wrapper,
                    401,
                    b'{"error":"authentication required: this backend uses HTTP '
                    b'Basic auth (BASIC_AUTH_USER/BASIC_AUTH_PASS)"}',
                    [(b"www-authenticate", b'Basic realm="prelabel"')],
                )
                return
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await send_json(
                    send_wrapper,
                    413,
                    orjson.dumps(
                        {"error": f"request body of {int(length)} bytes is larger than MAX_BODY_BYTES={self.max_body}"}
                    ),
                )
                return
            handler = self.fast.get((method, path))
            if handler is not None:
                try:
                    body = await read_body(receive, self.max_body)
                except BodyTooLarge:
                    await send_json(
                        send_wrapper,
                        413,
                        orjson.dumps({"error": f"request body is larger than MAX_BODY_BYTES={self.max_body}"}),
                    )
                    return
                except ClientGone:
                    return
                code, raw, headers = await handler(body)
                status = code  # sent here directly, without the wrapper's copies
                await send_json(send, code, raw, [*headers, rid_header])
                return
            if (length is None or not length.isdigit()) and method in ("POST", "PUT", "PATCH"):
                # no declared length (chunked): read it here, within the limit, then replay it
                try:
                    receive = await self._buffered(receive)
                except BodyTooLarge:
                    await send_json(
                        send_wrapper,
                        413,
                        orjson.dumps({"error": f"request body is larger than MAX_BODY_BYTES={self.max_body}"}),
                    )
                    return
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            failed = True
            raise
        finally:
            self._record(
                endpoint, method, 500 if failed and status is None else status, time.perf_counter() - started, path
            )
            request_id_var.reset(token)
