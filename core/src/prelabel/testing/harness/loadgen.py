"""A bounded load generator: N requests at concurrency C against one URL, with latencies."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        ok = self.statuses.get(200, 0)
        return (
            f"{sum(self.statuses.values())} requests in {self.seconds:.1f}s ({ok} x 200, "
            f"{self.server_errors} x 5xx, {sum(self.errors.values())} transport errors), "
            f"p50 {self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms, "
            f"mean {statistics.fmean(self.latencies) * 1000 if self.latencies else float('nan'):.1f} ms"
        )


async def _run(url: str, bodies: list[dict], concurrency: int, timeout: float, auth) -> LoadResult:
    result = LoadResult()
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False, auth=auth) as client:

        async def worker() -> None:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                try:
                    resp = await client.post(url, json=body)
                    result.statuses[resp.status_code] += 1
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                result.latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def run_load(url: str, bodies: list[dict], concurrency: int = 64, timeout: float = 60.0, auth=None) -> LoadResult:
    return asyncio.run(_run(url, bodies, concurrency, timeout, auth))
