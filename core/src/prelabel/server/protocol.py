"""uvicorn's httptools protocol with read timeouts, and one write per small response.

uvicorn arms no timer while a request arrives: a connection that sends its headers a byte at
a time (slowloris), or never sends the body its Content-Length promised, holds its socket
and its task for as long as the client likes. Here the headers must arrive within
``header_timeout`` of the connection (or of the request's first byte on a kept-alive one),
and a request body may not pause for more than ``body_timeout``; otherwise the server
answers 408 and closes the connection. The deadlines are numbers set per request and checked
by one timer per event loop (``_Deadlines``), so a timeout fires up to a quarter of itself (at
most a second) late.

uvicorn writes a response's status line and headers, then its body, as two writes (two
syscalls, two TCP segments). Here the head waits until the end of the current event-loop
step, so a body sent right after it (every JSON response) goes out in the same write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref

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

    # looked up on every response by uvicorn: bound once, not found through __getattr__
    _BOUND = (
        "is_closing",
        "get_extra_info",
        "pause_reading",
        "resume_reading",
        "set_protocol",
        "get_protocol",
        "get_write_buffer_size",
        "abort",
    )

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._write = transport.write
        self._call_soon = loop.call_soon
        self._flush = self.flush
        self._held: bytes | None = None
        for name in self._BOUND:
            method = getattr(transport, name, None)
            if method is not None:
                setattr(self, name, method)

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._call_soon(self._flush)
            return
        self._write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            self._write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _Deadlines:
    """One timer per event loop for the read deadlines of all its connections. A timer armed
    and cancelled per request (loop.call_later) cost more than the rest of the protocol's work
    for a small request; a deadline is a number set per request, checked here every
    ``interval`` seconds (a quarter of the shortest timeout, at most one second), so a
    timeout fires at most that much late."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.interval = 1.0
        self.connections: set[TimeoutHttpToolsProtocol] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, conn: TimeoutHttpToolsProtocol, interval: float) -> None:
        self.interval = min(self.interval, interval)
        self.connections.add(conn)
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._sweep)

    def discard(self, conn: TimeoutHttpToolsProtocol) -> None:
        self.connections.discard(conn)

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        late = [c for c in self.connections if c._deadline is not None and c._deadline <= now]
        for conn in late:
            conn._expired()
        if self.connections:
            self._timer = self.loop.call_later(self.interval, self._sweep)


_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = weakref.WeakKeyDictionary()

_HEADERS, _BODY = 1, 2  # what a connection's deadline waits for


class TimeoutHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT

    _deadline: float | None = None  # loop time by which the awaited part must have arrived
    _waiting = 0  # _HEADERS or _BODY
    _began = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._time = self.loop.time
        tracker = _deadlines.get(self.loop)
        if tracker is None:
            tracker = _deadlines[self.loop] = _Deadlines(self.loop)
        self._tracker = tracker
        self._deadline, self._waiting = self._time() + self.header_timeout, _HEADERS
        tracker.add(self, min(self.header_timeout, self.body_timeout) / 4)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        self._tracker.discard(self)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True
        if self._deadline is None:  # a later request on a kept-alive connection
            self._deadline, self._waiting = self._time() + self.header_timeout, _HEADERS

    def on_headers_complete(self) -> None:
        self._deadline = None
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._deadline, self._waiting = self._time() + self.body_timeout, _BODY

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._deadline is not None:  # progress: the pause starts again
            self._deadline = self._time() + self.body_timeout

    def on_message_complete(self) -> None:
        self._deadline = None
        self._began = False
        super().on_message_complete()

    def _expired(self) -> None:
        waiting, self._deadline = self._waiting, None
        if waiting == _HEADERS:
            self._headers_timed_out()
        else:
            self._body_timed_out()

    def _headers_timed_out(self) -> None:
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
