"""uvicorn's httptools protocol with read timeouts, and one write per small response.

uvicorn arms no timer while a request arrives: a connection that sends its headers a byte at
a time (slowloris), or never sends the body its Content-Length promised, holds its socket
and its task for as long as the client likes. Here the headers must arrive within
``header_timeout`` of the connection (or of the request's first byte on a kept-alive one),
and a request body may not pause for more than ``body_timeout``; otherwise the server
answers 408 and closes the connection.

uvicorn writes a response's status line and headers, then its body, as two writes (two
syscalls, two TCP segments). Here the head waits until the end of the current event-loop
step, so a body sent right after it (every JSON response) goes out in the same write.
"""

from __future__ import annotations

import asyncio
import logging
import os

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("prelabel.server")

# ``prelabel serve --header-timeout/--body-timeout`` set these for its worker processes too
HEADER_TIMEOUT = float(os.environ.get("PRELABEL_HEADER_TIMEOUT") or 10.0)
BODY_TIMEOUT = float(os.environ.get("PRELABEL_BODY_TIMEOUT") or 15.0)


def _response_408(message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


class CoalescingTransport:
    """Holds a response head until the body's write, or the end of this loop iteration."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class TimeoutHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT

    _read_timer: asyncio.TimerHandle | None = None
    _began = False

    def _arm(self, delay: float, callback) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._arm(self.header_timeout, self._headers_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True
        if self._read_timer is None:  # a later request on a kept-alive connection
            self._arm(self.header_timeout, self._headers_timed_out)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._arm(self.body_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._read_timer is not None:  # progress: the pause starts again
            self._arm(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._disarm()
        self._began = False
        super().on_message_complete()

    def _headers_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._began:
            log.info(
                "closed a connection from %s: its request headers took longer than %.0fs",
                self.client and self.client[0],
                self.header_timeout,
            )
            self.transport.write(_response_408(f"the request headers took longer than {self.header_timeout:g} s"))
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        log.info(
            "closed a connection from %s: its request body paused for more than %.0fs",
            self.client and self.client[0],
            self.body_timeout,
        )
        if cycle is not None and not cycle.response_started:
            self.transport.write(_response_408(f"the request body paused for more than {self.body_timeout:g} s"))
        if cycle is not None:
            cycle.disconnected = True  # the app's receive() now returns http.disconnect
            cycle.message_event.set()
        self.transport.close()


def protocol_with_timeouts(
    header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT
) -> type[TimeoutHttpToolsProtocol]:
    """A protocol class for ``uvicorn.run(http=...)`` with these timeouts (seconds)."""
    return type(
        "TimeoutHttpToolsProtocol",
        (TimeoutHttpToolsProtocol,),
        {"header_timeout": float(header_timeout), "body_timeout": float(body_timeout)},
    )
