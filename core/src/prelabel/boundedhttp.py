"""An httpx transport that bounds how many bytes a response may decode to.

httpx decodes ``Content-Encoding`` as it reads, before the caller can count: a 3.5 kB response
declaring ``gzip, gzip`` decodes to gigabytes in one chunk. This transport asks for
``gzip, deflate`` only, refuses stacked or unknown encodings, decodes itself with zlib's
``max_length`` so that no more than the limit is ever held, and hands httpx a plain body.
Every client prelabel opens toward a host a request can name (task media, Label Studio's API
and token refresh) uses it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

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


class BoundedTransport(httpx.BaseTransport):
    """Wraps a transport so that no response decodes to more than ``limit`` bytes."""

    def __init__(self, limit: int, inner: httpx.BaseTransport | None = None):
        self.limit = int(limit)
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING
        response = self.inner.handle_request(request)
        codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            response.close()
            raise UnsupportedEncoding(
                f"{request.url}: Content-Encoding {response.headers.get('content-encoding')!r} refused "
                f"(this client accepts one of: {ACCEPT_ENCODING})", request=request)
        headers = [(k, v) for k, v in response.headers.raw
                   if k.lower() not in (b"content-encoding", b"content-length") or not codings]
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code, headers=headers, request=request, extensions=response.extensions,
            stream=_BoundedStream(response.stream, codings[0] if codings else None, self.limit, request.url),
        )

    def close(self) -> None:
        self.inner.close()


def bounded_client(limit: int, **kwargs: object) -> httpx.Client:
    """An ``httpx.Client`` whose responses decode to at most ``limit`` bytes each."""
    return httpx.Client(transport=BoundedTransport(limit), **kwargs)  # type: ignore[arg-type]
