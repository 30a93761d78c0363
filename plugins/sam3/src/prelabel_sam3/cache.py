"""Bounded LRU caches for image embeddings and encoded prompts (pure Python)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class LruCache:
    """A bounded LRU. Concurrent lookups of one missing key compute it once (the others wait
    for the first); ``hits`` and ``misses`` count lookups, ``on_lookup`` hears each one."""

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

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached value for ``key`` (True) or a freshly computed one (False); a failed
        computation is not cached."""
        with self._lock:
            found, value = self._hit(key)
            pending = None if found else self._pending.setdefault(key, threading.Lock())
        if found:
            self._notify(True)
            return value, True
        with pending:
            with self._lock:
                found, value = self._hit(key)  # computed by a concurrent request meanwhile
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


def lookup_counter(metrics: Any, backend_id: str) -> Callable[[bool], None] | None:
    """``prelabel_<backend>_embedding_cache_total{result="hit"|"miss"}`` on /metrics."""
    if metrics is None:
        return None
    from prometheus_client import Counter

    counter = Counter(
        f"prelabel_{backend_id}_embedding_cache",
        "Image embedding cache lookups (a hit skips the image encoder)",
        ["result"],
        registry=metrics.registry,
    )
    return lambda hit: counter.labels(result="hit" if hit else "miss").inc()
