"""An httpx transport that bounds how many bytes a response may decode to.

httpx decodes ``Content-Encoding`` as it reads, before the caller can count: a 3.5 kB response
declaring ``gzip, gzip`` decodes to gigabytes in one chunk. This transport asks for
``gzip, deflate`` only, refuses stacked or unknown encodings, decodes itself with zlib's
``max_length`` so that no more than the limit is ever held, and hands httpx a plain body.
Every client prelabel opens toward a host a request can name (task media, Label Studio's API
and token refresh) uses it.

httpx's timeouts bound each socket operation, not a request: a host that drips its response
(headers included) a byte at a time within the read timeout holds the caller for ever. Inside
``deadline(seconds)``, every connect, read and write of this thread's requests through these
clients is bounded by what is left of that time, and times out (``httpx.ReadTimeout`` and
kin) once it is spent.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

ACCEPT_ENCODING = "gzip, deflate"


class ResponseTooLarge(httpx.DecodingError):
    """The response body (after decoding) is larger than the client allows."""

    def __init__(self, url: object, limit: int):
        super().__init__(f"{url}: the response is larger than {limit} bytes; refused")
        self.limit = limit


class UnsupportedEncoding(httpx.DecodingError):
    """A Content-Encoding this client did not ask for (or several stacked)."""


def _decoder(encoding: str | None) -> zlib._Decompress | None:
    if encoding is None:
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    return zlib.decompressobj()  # deflate (zlib-wrapped; raw deflate is retried below)


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, encoding: str | None, limit: int, url: object):
        self.inner, self.encoding, self.limit, self.url = inner, encoding, limit, url

    def __iter__(self) -> Iterator[bytes]:
        decoder = _decoder(self.encoding)
        raw_total = total = 0
        first = True
        for raw in self.inner:
            raw_total += len(raw)
            if raw_total > self.limit:
                raise ResponseTooLarge(self.url, self.limit)
            if decoder is None:
                total += len(raw)
                yield raw
                continue
            data = raw
            while data:
                try:
                    out = decoder.decompress(data, self.limit - total + 1)
                except zlib.error as exc:
                    if first and self.encoding == "deflate":  # some servers send raw deflate
                        decoder, first = zlib.decompressobj(-zlib.MAX_WBITS), False
                        continue
                    raise httpx.DecodingError(f"{self.url}: invalid {self.encoding} data: {exc}") from exc
                first = False
                total += len(out)
                if total > self.limit:
                    raise ResponseTooLarge(self.url, self.limit)
                if out:
                    yield out
                data = decoder.unconsumed_tail
        if decoder is not None:
            out = decoder.flush()
            total += len(out)
            if total > self.limit:
                raise ResponseTooLarge(self.url, self.limit)
            if out:
                yield out

    def close(self) -> None:
        self.inner.close()


_DEADLINE = threading.local()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound this thread's requests through bounded clients to ``seconds`` in all."""
    outer = getattr(_DEADLINE, "at", None)
    at = time.monotonic() + seconds
    _DEADLINE.at = at if outer is None else min(outer, at)
    try:
        yield
    finally:
        _DEADLINE.at = outer


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """The socket timeout to use: ``timeout``, or less where a deadline is nearer."""
    at = getattr(_DEADLINE, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self.inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend):
        self.inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self.inner.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout), local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self.inner.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def _deadline_transport() -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport()
    # httpx's HTTPTransport takes no network backend, so the one of its (private) httpcore pool is
    # wrapped; httpcore.ConnectionPool's network_backend is the documented hook for this
    pool = transport._pool
    pool._network_backend = _DeadlineBackend(pool._network_backend)
    return transport


class BoundedTransport(httpx.BaseTransport):
    """Wraps a transport so that no response decodes to more than ``limit`` bytes (and its
    socket operations keep to the thread's ``deadline``)."""

    def __init__(self, limit: int, inner: httpx.BaseTransport | None = None):
        self.limit = int(limit)
        self.inner = inner or _deadline_transport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING
        response = self.inner.handle_request(request)
        codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            response.close()
            raise UnsupportedEncoding(
                f"{request.url}: Content-Encoding {response.headers.get('content-encoding')!r} refused "
                f"(this client accepts one of: {ACCEPT_ENCODING})",
                request=request,
            )
        headers = [
            (k, v)
            for k, v in response.headers.raw
            if k.lower() not in (b"content-encoding", b"content-length") or not codings
        ]
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=headers,
            request=request,
            extensions=response.extensions,
            stream=_BoundedStream(response.stream, codings[0] if codings else None, self.limit, request.url),
        )

    def close(self) -> None:
        self.inner.close()


def bounded_client(limit: int, **kwargs: object) -> httpx.Client:
    """An ``httpx.Client`` whose responses decode to at most ``limit`` bytes each."""
    return httpx.Client(transport=BoundedTransport(limit), **kwargs)  # type: ignore[arg-type]
