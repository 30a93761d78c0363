"""Image embeddings on disk, shared by every process and replica that mounts the directory.

Layout: ``<root>/<model key>/<digest[:2]>/<digest>.pt``, where the digest hashes the image's
bytes and the model key names the model version and a fingerprint of what makes embeddings
differ (checkpoint content, config, input size, device kind). A new checkpoint or input size
is a new directory, so an embedding is never reused by a model it does not belong to; old
directories age out with the least recently used files.

- Writes are atomic: a file is written under a temporary name in its final directory and
  renamed over the final name (``os.replace``), so a reader in another process sees a whole
  file or none; two replicas writing the same image write the same bytes.
- The size is bounded: after writes, the least recently used files (by modification time,
  which a hit refreshes) are deleted until the total is under ``max_bytes``. Each process
  rescans the directory when its own count says the bound is reached, or every
  ``RESCAN_EVERY`` writes, so what other replicas wrote is seen within that many writes.
- Files are loaded with ``torch.load(weights_only=True)``: tensors, lists and integers only,
  never code, even from a volume another process writes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prelabel_sam2.model import Embedding

log = logging.getLogger(__name__)

RESCAN_EVERY = 64
SUFFIX = ".pt"
_FINGERPRINTS: dict[tuple, str] = {}
_FINGERPRINTS_LOCK = threading.Lock()


def file_digest(path: Path) -> str:
    """A content hash of a (checkpoint) file, computed once per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _FINGERPRINTS_LOCK:
        if key in _FINGERPRINTS:
            return _FINGERPRINTS[key]
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    with _FINGERPRINTS_LOCK:
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]


def model_key(version: str, model: Any) -> str:
    """The directory name of one model's embeddings: its version and a fingerprint of the
    checkpoint's content, the config, the input size and the device kind (CUDA runs the
    encoder in bfloat16, so its embeddings are not the CPU's)."""
    parts = [
        file_digest(model.files.checkpoint),
        model.files.config,
        str(model.image_size),
        str(model.device).split(":", 1)[0],
    ]
    fingerprint = hashlib.blake2b("|".join(parts).encode(), digest_size=6).hexdigest()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version)
    return f"{safe}-{fingerprint}"


class EmbeddingStore:
    """A bounded directory of embeddings; ``get``/``put`` by (model key, image digest)."""

    def __init__(self, root: Path, max_bytes: int, on_lookup: Callable[[bool], None] | None = None):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._on_lookup = on_lookup
        self.hits = self.misses = self.writes = self.evicted = 0
        self._approx_bytes: int | None = None  # this process's running estimate of the total
        self._writes_since_scan = 0
        self._lock = threading.Lock()

    def path(self, key: str, digest: str) -> Path:
        return self.root / key / digest[:2] / f"{digest}{SUFFIX}"

    def __contains__(self, item: tuple[str, str]) -> bool:
        return self.path(*item).is_file()

    def get(self, key: str, digest: str, device: str) -> Embedding | None:
        """The stored embedding on ``device``, or None (also for a damaged file, which is removed)."""
        import torch

        path = self.path(key, digest)
        try:
            raw = torch.load(path, map_location=device, weights_only=True)
            embedding = Embedding(
                {"image_embed": raw["image_embed"], "high_res_feats": list(raw["high_res_feats"])},
                int(raw["height"]),
                int(raw["width"]),
            )
        except FileNotFoundError:
            return self._miss()
        except Exception as exc:  # a truncated or foreign file: drop it, encode again
            log.warning("embedding file %s is unreadable (%s); removing it", path, exc)
            path.unlink(missing_ok=True)
            return self._miss()
        try:
            os.utime(path)  # least recently used goes first: a hit makes the file recent
        except OSError:
            pass  # evicted by another process meanwhile: the embedding is loaded anyway
        with self._lock:
            self.hits += 1
        if self._on_lookup is not None:
            self._on_lookup(True)
        return embedding

    def _miss(self) -> None:
        with self._lock:
            self.misses += 1
        if self._on_lookup is not None:
            self._on_lookup(False)
        return None

    def put(self, key: str, digest: str, embedding: Embedding) -> Path:
        """Write atomically (temporary name, then rename), then keep the total under the bound."""
        import torch

        features = embedding.features
        payload = {
            "image_embed": features["image_embed"].detach().clone().cpu(),  # clone: a batch slice
            "high_res_feats": [f.detach().clone().cpu() for f in features["high_res_feats"]],  # is a view
            "height": int(embedding.height),
            "width": int(embedding.width),
        }
        path = self.path(key, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{digest}.{uuid.uuid4().hex}.tmp"
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        size = path.stat().st_size
        with self._lock:
            self.writes += 1
            self._writes_since_scan += 1
            if self._approx_bytes is not None:
                self._approx_bytes += size
            rescan = (
                self._approx_bytes is None
                or self._approx_bytes > self.max_bytes
                or self._writes_since_scan >= RESCAN_EVERY
            )
        if rescan:
            self.evict()
        return path

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        for path in self.root.glob(f"*/*/*{SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed by another process during the scan
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        return found

    def evict(self) -> int:
        """Delete the least recently used files until the total is at most ``max_bytes``;
        returns how many were deleted."""
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        deleted = 0
        for _, size, path in files:
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                pass  # another replica evicted it first
            total -= size
        with self._lock:
            self._approx_bytes = total
            self._writes_since_scan = 0
            self.evicted += deleted
        return deleted

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self._files())

    def stats(self) -> dict[str, Any]:
        return {
            "dir": str(self.root),
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
            "writes": self.writes,
            "evicted": self.evicted,
        }
