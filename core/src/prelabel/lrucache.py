"""A bounded, thread-safe LRU cache whose lookups are counted (and can be exported to
/metrics): what the SAM backends keep image encodings, encoded prompts and video frames in.

Pure Python; a value is whatever the caller computes (a tensor, a tuple of them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["LruCache", "lookup_counter"]


class LruCache:
    """At most ``capacity`` entries (0 keeps nothing), least recently used evicted first.

    Concurrent lookups of one missing key compute it once: the others wait for the first and
    count as hits. A failed computation is not cached. ``hits`` and ``misses`` count lookups;
    ``on_lookup(hit)`` hears each one (see :func:`lookup_counter`)."""

    def __init__(self, capacity: int, on_lookup: Callable[[bool], None] | None = None):
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._pending: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self._on_lookup = on_lookup

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def _hit(self, key: Hashable) -> tuple[bool, Any]:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return True, self._items[key]
        return False, None

    def _store(self, key: Hashable, value: Any) -> None:
        if self.capacity > 0:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def put(self, key: Hashable, value: Any) -> None:
        """Store a value computed elsewhere (a batched encoder pass); counts as a miss."""
        with self._lock:
            self.misses += 1
            self._store(key, value)
        self._notify(False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached value for ``key`` (True) or a freshly computed one (False)."""
        with self._lock:
            found, value = self._hit(key)
            pending = None if found else self._pending.setdefault(key, threading.Lock())
        if found:
            self._notify(True)
            return value, True
        with pending:
            with self._lock:
                found, value = self._hit(key)  # computed by a concurrent request while this one waited
            if found:
                self._notify(True)
                return value, True
            try:
                value = compute()
                with self._lock:
                    self.misses += 1
                    self._store(key, value)
            finally:
                with self._lock:
                    self._pending.pop(key, None)
        self._notify(False)
        return value, False

    def discard(self, match: Callable[[Hashable], bool]) -> int:
        """Drop the entries whose key ``match`` accepts; how many were dropped."""
        with self._lock:
            keys = [k for k in self._items if match(k)]
            for k in keys:
                del self._items[k]
        return len(keys)

    def _notify(self, hit: bool) -> None:
        if self._on_lookup is not None:
            self._on_lookup(hit)

    def stats(self) -> dict[str, int]:
        return {"size": len(self._items), "capacity": self.capacity, "hits": self.hits, "misses": self.misses}


def lookup_counter(metrics: Any, backend_id: str, name: str = "embedding_cache") -> Callable[[bool], None] | None:
    """A Prometheus counter of a cache's lookups on the process's /metrics
    (``prelabel_<backend>_<name>_total{result="hit"|"miss"}``), for ``LruCache(on_lookup=...)``;
    None without metrics. sam2 names ``embedding_cache`` (in memory) and ``embedding_disk``."""
    if metrics is None:
        return None
    from prometheus_client import Counter

    counter = Counter(
        f"prelabel_{backend_id}_{name}",
        f"Image embedding lookups in the {name.replace('_', ' ')} (a hit skips the image encoder)",
        ["result"],
        registry=metrics.registry,
    )
    return lambda hit: counter.labels(result="hit" if hit else "miss").inc()
