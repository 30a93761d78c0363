"""LLM engine concurrency: N tasks in one /predict against a provider with fixed latency.

The provider is prelabel's fake OpenAI-compatible server in its own process (a real HTTP
server on loopback, as a remote provider would be), answering every call after LATENCY.
prelabel serves an LLM backend in process with MAX_CONCURRENT calls in flight.

Prints the wall time over the ideal (tasks / concurrency x latency) and over the floor: a bare
httpx client making the same calls at the same concurrency, measured in the same run, which is
what this machine and the fake provider allow (1.07-1.12x the ideal on this 2-core machine,
moving with its load; target prelabel / floor at most 1.2, which a quiet run's 1.25x the ideal
was). Also the speed-up over one-at-a-time calls with the OpenAI client, as seed 001's backend
made them (target at least 12x). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "src"))

from _llm import BenchBackend

from prelabel.testing import configs, make_runtime, serve_in_process

TEXTS = ["the service was great", "it broke after a day", "nothing special", "I would buy it again"]


def tasks(n: int, tag: str) -> list[dict]:
    # distinct texts: the engine's cache must not answer any of them
    return [{"id": i, "data": {"text": f"{TEXTS[i % len(TEXTS)]} ({tag} #{i})"}} for i in range(n)]


def start_provider(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "prelabel.testing.fake_openai", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "core" / "src")},
    )
    base_url = proc.stdout.readline().strip()  # printed once the server listens
    if not base_url:
        raise RuntimeError("the fake provider did not start")
    return proc, base_url


def prelabel_walls(base_url: str, n: int, concurrency: int, home: Path, repeats: int) -> list[float]:
    """Wall times of ``repeats`` requests of ``n`` fresh tasks each to one warm server."""
    rt = make_runtime(
        BenchBackend, home, {"bench_base_url": base_url, "max_concurrent": concurrency}, log_level="WARNING"
    )
    body = {"project": "1.1", "label_config": configs.TEXT_CHOICES}
    walls = []
    with serve_in_process(rt) as client:
        warm = client.post("/predict", json={**body, "tasks": tasks(1, "warm-up")})  # client and pool set up
        assert warm.status_code == 200, warm.text
        for run in range(repeats):
            started = time.perf_counter()
            resp = client.post("/predict", json={**body, "tasks": tasks(n, f"run {run}")})
            walls.append(time.perf_counter() - started)
            results = resp.json()["results"]
            failed = [r for r in results if r.get("error") or not r["result"]]
            if resp.status_code != 200 or len(results) != n or failed:
                raise RuntimeError(f"/predict failed: {resp.status_code}, {len(failed)} failed tasks: {failed[:1]}")
    rt.close()
    return walls


def raw_httpx_floor(base_url: str, n: int, concurrency: int, repeats: int) -> list[float]:
    """The same calls from a bare httpx client under the same concurrency: what this machine
    and the fake provider allow, without prelabel or the SDK (context for the ratio)."""
    import asyncio

    import httpx

    async def run() -> list[float]:
        walls = []
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(text: str) -> None:
                async with gate:
                    resp = await client.post(
                        "/chat/completions",
                        json={"model": "fake-model", "messages": [{"role": "user", "content": text}]},
                    )
                    resp.raise_for_status()

            await one("warm-up")
            for run in range(repeats):
                started = time.perf_counter()
                await asyncio.gather(*(one(t["data"]["text"]) for t in tasks(n, f"floor {run}")))
                walls.append(time.perf_counter() - started)
        return walls

    return asyncio.run(run())


def one_at_a_time_wall(base_url: str, n: int) -> float:
    """Seed 001's way: the OpenAI client, one call after the other, one per task."""
    import openai

    client = openai.OpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)

    def call(text: str) -> None:
        client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": text}], max_tokens=2000, temperature=0.1
        )

    call("warm-up")
    started = time.perf_counter()
    for task in tasks(n, "sequential"):
        call(task["data"]["text"])
    wall = time.perf_counter() - started
    client.close()
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20, help="MAX_CONCURRENT")
    parser.add_argument("--latency", type=float, default=0.1, help="provider latency per call, seconds")
    parser.add_argument("--repeats", type=int, default=3, help="timed /predict requests (the median counts)")
    args = parser.parse_args()

    import tempfile

    proc, base_url = start_provider(args.latency)
    try:
        with tempfile.TemporaryDirectory() as home:
            walls = prelabel_walls(base_url, args.tasks, args.concurrency, Path(home), args.repeats)
        floor = statistics.median(raw_httpx_floor(base_url, args.tasks, args.concurrency, args.repeats))
        sequential = one_at_a_time_wall(base_url, args.tasks)
    finally:
        proc.terminate()
        proc.wait(10)

    wall = statistics.median(walls)
    ideal = args.tasks / args.concurrency * args.latency
    ratio, speedup = wall / ideal, sequential / wall
    print(
        f"{args.tasks} tasks in one /predict, provider latency {args.latency * 1000:.0f} ms, "
        f"MAX_CONCURRENT={args.concurrency}"
    )
    print(f"  prelabel wall time        {wall:7.3f} s   (median of {', '.join(f'{w:.3f}' for w in walls)})")
    print(f"  ideal (tasks/conc x lat)  {ideal:7.3f} s")
    print(f"  wall / ideal              {ratio:7.3f}")
    print(f"  bare httpx, same conc.    {floor:7.3f} s   ({floor / ideal:.3f} x ideal: this machine's floor)")
    over = wall / floor
    print(f"  prelabel / floor          {over:7.3f}   target <= 1.2  {'ok' if over <= 1.2 else 'MISSED'}")
    print(f"  one-at-a-time (seed 001)  {sequential:7.3f} s")
    print(f"  speed-up                  {speedup:7.1f}x  target >= 12x  {'ok' if speedup >= 12 else 'MISSED'}")
    return 0 if over <= 1.2 and speedup >= 12 else 1


if __name__ == "__main__":
    sys.exit(main())
