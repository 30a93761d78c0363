"""One pure-ASGI middleware for every request: request id, Basic auth, body size limit,
metrics and one access-log line. (Pure ASGI rather than BaseHTTPMiddleware: it is on the
hot path of every /predict.)"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

from prelabel.logsetup import request_id_var

if TYPE_CHECKING:
    from prelabel.runtime import Runtime

log = logging.getLogger("prelabel.access")

KNOWN = ("/health", "/setup", "/predict", "/webhook", "/train", "/versions", "/metrics", "/jobs",
         "/openapi.json", "/docs")
_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
QUIET = {"/health", "/metrics"}


class BodyTooLarge(Exception):
    pass


def endpoint_label(path: str) -> str:
    for known in KNOWN:
        if path == known or path.startswith(known + "/"):
            return known
    return "other"


async def _send_json(send: Any, status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())] + (headers or [])
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class PrelabelMiddleware:
    def __init__(self, app: Any, runtime: Runtime):
        self.app = app
        self.runtime = runtime
        core = runtime.core
        self.max_body = core.max_body_bytes
        self.auth: bytes | None = None
        if core.auth_enabled:
            self.auth = f"{core.basic_auth_user}:{core.basic_auth_pass.get_secret_value()}".encode()

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        value = headers.get(b"authorization", b"")
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

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _RID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        path, method = scope.get("path", ""), scope.get("method", "")
        endpoint = endpoint_label(path)
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        rid_header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message = {**message, "headers": list(message.get("headers", [])) + [rid_header]}
            await send(message)

        try:
            if self.auth is not None and not self._authorized(headers):
                await _send_json(send_wrapper, 401, {"error": "authentication required: this backend uses HTTP "
                                                     "Basic auth (BASIC_AUTH_USER/BASIC_AUTH_PASS)"},
                                 [(b"www-authenticate", b'Basic realm="prelabel"')])
                return
            length = headers.get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_body:
                await _send_json(send_wrapper, 413, {"error": f"request body of {int(length)} bytes is larger than "
                                                     f"MAX_BODY_BYTES={self.max_body}"})
                return
            if not length.isdigit() and method in ("POST", "PUT", "PATCH"):
                # no declared length (chunked): read it here, within the limit, then replay it
                try:
                    receive = await self._buffered(receive)
                except BodyTooLarge:
                    await _send_json(send_wrapper, 413, {"error": f"request body is larger than "
                                                         f"MAX_BODY_BYTES={self.max_body}"})
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            status = status_holder["status"]
            metrics = self.runtime.metrics
            metrics.requests.labels(endpoint, method, str(status)).inc()
            metrics.latency.labels(endpoint).observe(elapsed)
            level = logging.DEBUG if path in QUIET and status < 400 else logging.INFO
            if log.isEnabledFor(level):
                log.log(level, "%s %s %s %.1fms", method, path, status, elapsed * 1000,
                        extra={"status": status, "duration_ms": round(elapsed * 1000, 2), "path": path})
            request_id_var.reset(token)
