"""Task media: turn a task's data value into bytes or a local file.

Handles Label Studio uploads (relative ``/data/upload/...``), ``/data/local-files/?d=``
(read from ``LOCAL_FILES_DOCUMENT_ROOT`` without path escape, else fetched from Label
Studio), cloud URIs (``s3://``, ``gs://``, ``azure-blob://``) through Label Studio's presign
endpoint, plain http(s), and ``data:`` URIs. Downloads are size- and time-limited and cached
on disk in a bounded cache. The Label Studio token is only ever sent to the Label Studio host:
redirects are followed by hand and lose the header when they leave it.
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
from urllib.parse import parse_qs, unquote, unquote_to_bytes, urljoin, urlsplit

import httpx

from prelabel.backend import TaskError
from prelabel.lsauth import LabelStudioAuthError, TokenCache, origin
from prelabel.settings import CoreSettings

log = logging.getLogger(__name__)

CLOUD_SCHEMES = ("s3://", "gs://", "azure-blob://", "azure-spi://")
MAX_REDIRECTS = 5


class MediaError(TaskError):
    """A task's media could not be fetched; the message says why and what to set."""


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
        files = sorted((p for p in self.root.glob("*") if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= self.max_bytes * 0.8:
                break
            size = p.stat().st_size
            p.unlink(missing_ok=True)
            total -= size
        self._size = total


class MediaFetcher:
    """Downloads task media for one Label Studio (URL + token), sharing one HTTP pool."""

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
            client = httpx.Client(timeout=core.media_timeout, follow_redirects=False,
                                  headers={"User-Agent": "prelabel"})
            _shared = (client, TokenCache(client), MediaCache(core.prelabel_home / "cache" / "media",
                                                                core.media_cache_max_bytes))
        self._client, self._tokens, self.cache = _shared
        self.ls_url = (core.label_studio_url or ls_url or "").rstrip("/") or None
        env_key = core.label_studio_api_key.get_secret_value() if core.label_studio_api_key else None
        self.token = env_key or token or None
        self.login = login or None
        self.password = password or None

    def bind(self, ls_url: str | None = None, token: str | None = None, login: str | None = None,
             password: str | None = None) -> MediaFetcher:
        """A fetcher for one project's Label Studio and data credentials, same pool and cache."""
        return MediaFetcher(self.core, ls_url, token, login, password,
                            _shared=(self._client, self._tokens, self.cache))

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
        suffix = _suffix(url)
        if url.startswith("data:"):
            data = _decode_data_uri(url, self.core.media_max_bytes)
            return self.cache.get(url[:4096] + str(len(url)), suffix) or self.cache.put(
                url[:4096] + str(len(url)), data, suffix)
        local = self._local_file(url)
        if local is not None:
            return local
        cached = self.cache.get(url, suffix)
        if cached is not None:
            return cached
        data = self._download(url, task_id)
        return self.cache.put(url, data, suffix)

    # -- resolution -------------------------------------------------------------------------
    def _local_file(self, url: str) -> Path | None:
        if "/data/local-files" not in url or self.core.local_files_document_root is None:
            return None
        query = parse_qs(urlsplit(url).query)
        if "d" not in query:
            raise MediaError(f"{url}: a local-files URL needs ?d=<path>")
        root = Path(self.core.local_files_document_root).resolve()
        candidate = (root / unquote(query["d"][0]).lstrip("/")).resolve()
        if candidate != root and root not in candidate.parents:
            raise MediaError(f"{url}: the path escapes LOCAL_FILES_DOCUMENT_ROOT; refused")
        if not candidate.is_file():
            raise MediaError(f"{url}: no such file under LOCAL_FILES_DOCUMENT_ROOT ({candidate})")
        if candidate.stat().st_size > self.core.media_max_bytes:
            raise MediaError(f"{url}: file is larger than MEDIA_MAX_BYTES={self.core.media_max_bytes}")
        return candidate

    def _resolve(self, url: str, task_id: int | None) -> str:
        if url.startswith(CLOUD_SCHEMES):
            if task_id is None:
                raise MediaError(f"{url}: cloud storage files are presigned by Label Studio per task; "
                                 "the task has no id")
            encoded = base64.urlsafe_b64encode(url.encode()).decode()
            return f"{self._require_ls(url)}/tasks/{task_id}/presign/?fileuri={encoded}"
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            return url
        if scheme == "" and url.startswith("/"):
            return self._require_ls(url) + url
        raise MediaError(f"{url}: unsupported media URL (use http(s), data:, s3/gs/azure-blob, or a Label Studio path)")

    def _require_ls(self, url: str) -> str:
        if not self.ls_url:
            raise MediaError(
                f"{url} is a Label Studio file, but the Label Studio URL is unknown: set LABEL_STUDIO_URL"
            )
        return self.ls_url

    def _is_ls(self, url: str) -> bool:
        return bool(self.ls_url) and origin(url) == origin(self.ls_url)

    def _headers_for(self, url: str) -> dict[str, str]:
        if self._is_ls(url):
            if not self.token:
                raise MediaError(
                    f"{url} needs a Label Studio token: set LABEL_STUDIO_API_KEY (a personal access token)"
                )
            try:
                return {"Authorization": self._tokens.header(self.ls_url, self.token)}
            except LabelStudioAuthError as exc:
                raise MediaError(str(exc)) from exc
        if self.login and self.password:
            raw = base64.b64encode(f"{self.login}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def _download(self, url: str, task_id: int | None) -> bytes:
        target = self._resolve(url, task_id)
        limit = self.core.media_max_bytes
        for _ in range(MAX_REDIRECTS + 1):
            headers = self._headers_for(target)
            started = time.monotonic()
            try:
                with self._client.stream("GET", target, headers=headers) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location", "")
                        target = urljoin(target, location)
                        if urlsplit(target).username is not None:
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
                    chunks, total = [], 0
                    for chunk in resp.iter_bytes():
                        total += len(chunk)
                        if total > limit:
                            raise MediaError(f"{target}: more than MEDIA_MAX_BYTES={limit} bytes; refused")
                        if time.monotonic() - started > self.core.media_timeout:
                            raise MediaError(
                                f"{target}: download took longer than MEDIA_TIMEOUT={self.core.media_timeout}s")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException as exc:
                raise MediaError(
                    f"{target}: timed out after {self.core.media_timeout}s ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise MediaError(f"{target}: could not download: {exc}") from exc
        raise MediaError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _suffix(url: str) -> str:
    if url.startswith("data:"):
        mime = url[5:].split(";", 1)[0].split(",", 1)[0]
        return {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "text/plain": ".txt",
                "application/pdf": ".pdf", "video/mp4": ".mp4"}.get(mime, "")
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
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise MediaError(f"data: URI is not valid base64: {exc}") from exc
    return unquote_to_bytes(payload)
