"""prelabel.lrucache: the bounded LRU the SAM backends keep encodings in."""

from __future__ import annotations

import threading

import pytest

from prelabel.lrucache import LruCache, lookup_counter
from prelabel.metrics import Metrics


def test_a_bounded_lru_that_counts_hits_and_misses():
    seen = []
    cache = LruCache(2, on_lookup=seen.append)
    for key in "abacb":
        cache.get_or_compute(key, lambda k=key: k.upper())
    # a miss, b miss, a hit, c miss (evicts b, the least recently used), b miss again
    assert seen == [False, False, True, False, False]
    assert cache.stats() == {"size": 2, "capacity": 2, "hits": 1, "misses": 4}
    assert "a" not in cache and "c" in cache and "b" in cache
    cache.put("d", "D")  # computed elsewhere: a miss, and it evicts the least recent (c)
    assert seen[-1] is False and cache.misses == 5 and "c" not in cache
    assert cache.get_or_compute("d", lambda: "other") == ("D", True)


def test_capacity_zero_keeps_nothing():
    off = LruCache(0)
    off.get_or_compute("a", lambda: 1)
    off.put("b", 2)
    assert off.get_or_compute("a", lambda: 1)[1] is False and len(off) == 0


def test_concurrent_lookups_of_one_key_compute_it_once():
    cache = LruCache(4)
    started, release, calls, results = threading.Event(), threading.Event(), [], []

    def slow() -> int:
        calls.append(1)
        started.set()
        assert release.wait(10)
        return 1

    first = threading.Thread(target=lambda: results.append(cache.get_or_compute("img", slow)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: results.append(cache.get_or_compute("img", slow)))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1 and sorted(hit for _, hit in results) == [False, True]


def test_a_failed_computation_is_not_cached():
    cache = LruCache(4)
    with pytest.raises(RuntimeError):
        cache.get_or_compute("x", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert "x" not in cache
    assert cache.get_or_compute("x", lambda: 2) == (2, False)


def test_discard_drops_what_the_predicate_accepts():
    cache = LruCache(8)
    for key in [("m", "img1", 0), ("m", "img1", 1), ("m", "img2", 0)]:
        cache.put(key, key)
    assert cache.discard(lambda key: key[1] == "img1") == 2
    assert len(cache) == 1 and ("m", "img2", 0) in cache


def test_lookup_counter_exports_hits_and_misses():
    assert lookup_counter(None, "x") is None
    metrics = Metrics("demo")
    cache = LruCache(2, on_lookup=lookup_counter(metrics, "demo"))
    cache.get_or_compute("a", lambda: 1)
    cache.get_or_compute("a", lambda: 1)
    text = metrics.render().decode()
    assert 'prelabel_demo_embedding_cache_total{result="hit"} 1.0' in text
    assert 'prelabel_demo_embedding_cache_total{result="miss"} 1.0' in text
