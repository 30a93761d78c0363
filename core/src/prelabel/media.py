"""Task media: turn a task's data value into bytes or a local file.

Handles Label Studio uploads (relative ``/data/upload/...``), ``/data/local-files/?d=``
(read from ``LOCAL_FILES_DOCUMENT_ROOT`` without path escape, else fetched from Label
Studio), cloud URIs (``s3://``, ``gs://``, ``azure-blob://``) through Label Studio's presign
endpoint, plain http(s), and ``data:`` URIs. Downloads are size- and time-limited and cached
on disk in a bounded cache keyed by the resolved URL and the credentials used. The Label
Studio token is only ever sent to the Label Studio host it belongs to (see
``prelabel.lsauth.resolve_access``): redirects are followed by hand and lose the header when
they leave it. Response bodies are bounded after decoding (``prelabel.boundedhttp``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_to_bytes, urljoin, urlsplit

import httpx

from prelabel.boundedhttp import ResponseTooLarge, bounded_client, deadline
from prelabel.imageio import image_array, open_image
from prelabel.lsauth import LabelStudioAuthError, TokenCache, origin, resolve_access
from prelabel.mediaerrors import MediaError
from prelabel.paths import PathEscapeError, resolve_under
from prelabel.redact import redact
from prelabel.settings import CoreSettings

log = logging.getLogger(__name__)

CLOUD_SCHEMES = ("s3://", "gs://", "azure-blob://", "azure-spi://")
MAX_REDIRECTS = 5


class MediaCache:
    """A bounded on-disk cache of downloaded files, evicting the least recently written."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._size = sum(p.stat().st_size for p in self.root.glob("*") if p.is_file())

    def path_for(self, key: str, suffix: str = "") -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        return self.root / f"{digest}{suffix}"

    def get(self, key: str, suffix: str = "") -> Path | None:
        path = self.path_for(key, suffix)
        if path.is_file():
            os.utime(path)
            return path
        return None

    def put(self, key: str, data: bytes, suffix: str = "") -> Path:
        path = self.path_for(key, suffix)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        with self._lock:
            self._size += len(data)
            if self._size > self.max_bytes:
                self._evict()
        return path

    def _evict(self) -> None:
        files = sorted(
            (p for p in self.root.glob("*") if p.is_file() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= self.max_bytes * 0.8:
                break
            size = p.stat().st_size
            p.unlink(missing_ok=True)
            total -= size
        self._size = total


class MediaFetcher:
    """Downloads task media for one project's Label Studio access, sharing one HTTP pool.

    Credentials follow :func:`prelabel.lsauth.resolve_access`: the Label Studio token goes to
    the Label Studio host only, task-data ``login``/``password`` to the task URL's own host
    only (never along a redirect to another), and the cache is keyed by the resolved URL and
    the credentials used, so one project's private file is never served to another."""

    def __init__(
        self,
        core: CoreSettings,
        ls_url: str | None = None,
        token: str | None = None,
        login: str | None = None,
        password: str | None = None,
        *,
        _shared: tuple[httpx.Client, TokenCache, MediaCache] | None = None,
    ):
        self.core = core
        if _shared is None:
            client = bounded_client(
                core.media_max_bytes,
                timeout=core.media_timeout,
                follow_redirects=False,
                headers={"User-Agent": "prelabel"},
            )
            _shared = (
                client,
                TokenCache(client),
                MediaCache(core.prelabel_home / "cache" / "media", core.media_cache_max_bytes),
            )
        self._client, self._tokens, self.cache = _shared
        self.access = resolve_access(core, ls_url, token)
        self.ls_url = self.access.base_url
        self.token = self.access.token
        self.login = login or None
        self.password = password or None  # never logged by us; URL userinfo is masked by pattern

    def bind(
        self, ls_url: str | None = None, token: str | None = None, login: str | None = None, password: str | None = None
    ) -> MediaFetcher:
        """A fetcher for one project's Label Studio and data credentials, same pool and cache."""
        return MediaFetcher(self.core, ls_url, token, login, password, _shared=(self._client, self._tokens, self.cache))

    def close(self) -> None:
        self._client.close()

    # -- public API -------------------------------------------------------------------------
    def fetch(self, url: str, task_id: int | None = None) -> bytes:
        """The bytes behind a task data value. Raises MediaError with an actionable message."""
        return self.fetch_path(url, task_id).read_bytes()

    def fetch_path(self, url: str, task_id: int | None = None) -> Path:
        """A local file with the content behind ``url`` (from the cache when possible)."""
        if not isinstance(url, str) or not url.strip():
            raise MediaError(f"task data value {url!r} is not a URL or path")
        url = url.strip()
        if "\x00" in url:
            raise MediaError(f"{redact(url)!r}: a URL must not contain a NUL byte")
        suffix = _suffix(url)
        if url.startswith("data:"):
            data = _decode_data_uri(url, self.core.media_max_bytes)
            key = "data:" + hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
            return self.cache.get(key, suffix) or self.cache.put(key, data, suffix)
        local = self._local_file(url)
        if local is not None:
            return local
        target = self._resolve(url, task_id)
        key = self._cache_key(target)
        cached = self.cache.get(key, suffix)
        if cached is not None:
            return cached
        credentialed_hops: list[str] = []
        data = self._download(url, target, credentialed_hops)
        if credentialed_hops:
            # a redirect led to a host that got a credential the key above does not name (a
            # public URL that redirects into Label Studio): keyed by those credentials too, so
            # no request without them is ever served this file from the cache
            key += "\0via:" + hashlib.sha256("\0".join(credentialed_hops).encode()).hexdigest()[:24]
        return self.cache.put(key, data, suffix)

    def open_image(
        self, source: str | bytes | Path, task_id: int | None = None, mode: str | None = "RGB", orient: bool = True
    ) -> Any:
        """A PIL image: ``source`` is a task data value (fetched as :meth:`fetch_path` does), or
        bytes or a local file already in hand. Core's checks apply: more than MEDIA_MAX_PIXELS
        is refused before decoding, and the EXIF orientation is applied (unless ``orient`` is
        False), so its ``size`` is what Label Studio shows. Raises MediaError (ImageRejected)."""
        return open_image(
            self._image_source(source, task_id), max_pixels=self.core.media_max_pixels, mode=mode, orient=orient
        )

    def image_array(self, source: str | bytes | Path, task_id: int | None = None, channels: str = "RGB") -> Any:
        """The image as displayed (as :meth:`open_image`), as a writable H x W x 3 uint8 numpy
        array in ``channels`` order: ``RGB``, or ``BGR`` for OpenCV and ultralytics."""
        return image_array(
            self._image_source(source, task_id), max_pixels=self.core.media_max_pixels, channels=channels
        )

    def _image_source(self, source: str | bytes | Path, task_id: int | None) -> bytes | Path:
        return self.fetch_path(source, task_id) if isinstance(source, str) else source

    # -- resolution -------------------------------------------------------------------------
    def _local_file(self, url: str) -> Path | None:
        if "/data/local-files" not in url or self.core.local_files_document_root is None:
            return None
        query = parse_qs(urlsplit(url).query)
        if "d" not in query:
            raise MediaError(f"{url}: a local-files URL needs ?d=<path>")
        root = Path(self.core.local_files_document_root)
        try:
            candidate = resolve_under(root, unquote(query["d"][0]).lstrip("/"), "the local-files path")
        except PathEscapeError as exc:
            raise MediaError(f"{url}: {exc}; refused") from exc
        if not candidate.is_file():
            raise MediaError(f"{url}: no such file under LOCAL_FILES_DOCUMENT_ROOT ({candidate})")
        if candidate.stat().st_size > self.core.media_max_bytes:
            raise MediaError(f"{url}: file is larger than MEDIA_MAX_BYTES={self.core.media_max_bytes}")
        return candidate

    def _resolve(self, url: str, task_id: int | None) -> str:
        if url.startswith(CLOUD_SCHEMES):
            if task_id is None:
                raise MediaError(
                    f"{url}: cloud storage files are presigned by Label Studio per task; the task has no id"
                )
            encoded = base64.urlsafe_b64encode(url.encode()).decode()
            return f"{self._require_ls(url)}/tasks/{task_id}/presign/?fileuri={encoded}"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise MediaError(f"{redact(url)}: not a valid URL ({exc})") from exc
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.hostname:
                raise MediaError(f"{redact(url)}: not a valid URL (no host)")
            return url
        if scheme == "" and url.startswith("/"):
            return self._require_ls(url) + url
        raise MediaError(
            f"{redact(url)}: unsupported media URL (use http(s), data:, s3/gs/azure-blob, or a Label Studio path)"
        )

    def _require_ls(self, url: str) -> str:
        if not self.ls_url:
            raise MediaError(f"{url} is a Label Studio file, but the Label Studio URL is unknown: set LABEL_STUDIO_URL")
        return self.ls_url

    def _is_ls(self, url: str) -> bool:
        return bool(self.ls_url) and origin(url) == origin(self.ls_url)

    def _basic_auth_for(self, url: str, home: tuple) -> str | None:
        if self.login and self.password and not self._is_ls(url) and origin(url) == home:
            return base64.b64encode(f"{self.login}:{self.password}".encode()).decode()
        return None

    def _cache_key(self, target: str) -> str:
        """The resolved URL plus who asked for it: the Label Studio access for its host, and
        the data credentials, as digests."""
        scope = self.access.scope if self._is_ls(target) else ""
        basic = self._basic_auth_for(target, origin(target))
        if basic:
            scope += ":" + hashlib.sha256(basic.encode()).hexdigest()[:24]
        return f"{target}\0{scope}"

    def _headers_for(self, url: str, home: tuple) -> dict[str, str]:
        if self._is_ls(url):
            token = self.access.token_for(url)
            if not token:
                raise MediaError(
                    f"{url} needs a Label Studio token: "
                    + (
                        self.access.withheld
                        or "set LABEL_STUDIO_API_KEY (a personal access token) and LABEL_STUDIO_URL"
                    )
                )
            try:
                return {"Authorization": self._tokens.header(self.ls_url, token)}
            except LabelStudioAuthError as exc:
                raise MediaError(str(exc)) from exc
        basic = self._basic_auth_for(url, home)
        return {"Authorization": f"Basic {basic}"} if basic else {}

    def _download(self, url: str, target: str, credentialed_hops: list[str] | None = None) -> bytes:
        limit = self.core.media_max_bytes
        home = origin(target)  # task-data login/password belong to this host only
        first = target
        for _ in range(MAX_REDIRECTS + 1):
            headers = self._headers_for(target, home)
            if headers and target != first and credentialed_hops is not None:
                credentialed_hops.append(f"{target}\0{headers['Authorization']}")
            started = time.monotonic()
            try:
                with deadline(self.core.media_timeout), self._client.stream("GET", target, headers=headers) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location", "")
                        target = urljoin(target, location)
                        try:
                            has_userinfo = urlsplit(target).username is not None
                        except ValueError as exc:
                            raise MediaError(f"{url}: redirected to an invalid URL ({exc})") from exc
                        if has_userinfo:
                            raise MediaError(f"{url}: redirected to a URL with credentials in it; refused")
                        continue
                    if resp.status_code in (401, 403) and self._is_ls(target):
                        raise MediaError(
                            f"Label Studio refused {target} ({resp.status_code}): set LABEL_STUDIO_API_KEY to a "
                            "personal access token (Account & Settings), or enable legacy tokens"
                        )
                    if resp.status_code >= 400:
                        raise MediaError(f"{target}: HTTP {resp.status_code} while downloading")
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise MediaError(f"{target}: {declared} bytes is more than MEDIA_MAX_BYTES={limit}")
                    chunks = []
                    for chunk in resp.iter_bytes():
                        if time.monotonic() - started > self.core.media_timeout:
                            raise MediaError(
                                f"{target}: download took longer than MEDIA_TIMEOUT={self.core.media_timeout}s"
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)
            except ResponseTooLarge as exc:
                raise MediaError(f"{target}: more than MEDIA_MAX_BYTES={limit} bytes; refused") from exc
            except httpx.TimeoutException as exc:
                raise MediaError(
                    f"{target}: timed out after {self.core.media_timeout}s ({type(exc).__name__})"
                ) from exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise MediaError(f"{target}: could not download: {exc}") from exc
        raise MediaError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _suffix(url: str) -> str:
    if url.startswith("data:"):
        mime = url[5:].split(";", 1)[0].split(",", 1)[0]
        return {
            "image/png": ".png",
            "image/jpeg": ".jpg",
            "image/webp": ".webp",
            "text/plain": ".txt",
            "application/pdf": ".pdf",
            "video/mp4": ".mp4",
        }.get(mime, "")
    path = urlsplit(url).path
    query = parse_qs(urlsplit(url).query)
    if "d" in query:
        path = query["d"][0]
    ext = os.path.splitext(path)[1].lower()
    return ext if len(ext) <= 6 and ext[1:].isalnum() else ""


def _decode_data_uri(url: str, limit: int) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep:
        raise MediaError("data: URI has no ',' separating header and data")
    if len(payload) * 3 // 4 > limit:
        raise MediaError(f"data: URI is larger than MEDIA_MAX_BYTES={limit}")
    if header.endswith(";base64"):
        compact = "".join(unquote(payload).split())  # line breaks and %-escapes are allowed
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MediaError(f"data: URI is not valid base64 ({exc}): check how the file was encoded") from exc
    else:
        data = unquote_to_bytes(payload)
    if not data:
        raise MediaError("data: URI holds no data")
    return data
