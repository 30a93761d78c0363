"""Server overhead: `prelabel serve` (the reference backend, default logging on) against the
floor, a bare Starlette app on the same stack (uvicorn, uvloop, httptools, no access log)
that reads the request body and returns a precomputed response body.

Both are driven by wrk over loopback with the same Label Studio-shaped /predict bodies, 1 task
and 100 tasks per request, at 1 and 16 connections. Runs are interleaved (floor, prelabel,
floor, ...) and repeated; the quietest run of each counts, because the machine may be shared.
For each case it prints req/s, the server process's CPU per request (utime+stime from
/proc/<pid>/stat over the run, steadier than req/s on a busy machine), p50 and p99, and:

  cpu ratio = floor CPU per request / prelabel CPU per request
              targets: >= 0.5 for 1-task requests, >= 0.3 for 100-task requests
  tail      = prelabel p99 / p50 at 16 connections; target <= 3

Exits 1 when a target misses, 0 when all are met, and 0 with "skipped" when wrk is missing
(apt-get install wrk; scripts/bootstrap.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "src"))
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.redisserver import free_port

WORDS = ["positive", "negative", "neutral", "film", "great", "day", "service"]
CPU_TARGET = {1: 0.5, 100: 0.3}
TAIL_TARGET = 3.0
TICK = os.sysconf("SC_CLK_TCK")


def body(n: int) -> dict:
    """A /predict body as Label Studio 1.23 sends it (docs/label-studio-protocol.md section 6)."""
    tasks = [
        {
            "id": i + 1,
            "data": {"text": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(12))},
            "meta": {},
            "created_at": "2026-12-01T10:00:00.000000Z",
            "updated_at": "2026-12-01T10:00:00.000000Z",
            "is_labeled": False,
            "overlap": 1,
            "inner_id": i + 1,
            "total_annotations": 0,
            "cancelled_annotations": 0,
            "total_predictions": 0,
            "comment_count": 0,
            "unresolved_comment_count": 0,
            "last_comment_updated_at": None,
            "project": 1,
            "updated_by": None,
            "file_upload": None,
            "comment_authors": [],
            "annotations": [],
            "predictions": [],
        }
        for i in range(n)
    ]
    return {
        "tasks": tasks,
        "project": "1.1764583200",
        "label_config": TEXT_CHOICES,
        "params": {"login": None, "password": None, "context": None},
    }


FLOOR_APP = textwrap.dedent("""
    import json, os
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    # request body length -> the response prelabel gives for it, precomputed
    PAYLOADS = {int(k): v.encode() for k, v in json.load(open(os.environ["BENCH_PAYLOADS"])).items()}

    async def predict(request):
        raw = await request.body()
        return Response(PAYLOADS[len(raw)], media_type="application/json")

    async def health(request):
        return Response(b'{"status":"UP"}', media_type="application/json")

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
""")

# wrk prints this JSON line at the end of a run (latencies in microseconds)
WRK_SCRIPT = textwrap.dedent("""
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = io.open(os.getenv("BENCH_BODY"), "rb"):read("*a")
    done = function(summary, latency, requests)
      io.write(string.format('\\n{"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, '
        .. '"p50": %d, "p99": %d}\\n', summary.requests, summary.duration, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        latency:percentile(50), latency:percentile(99)))
    end
""")


@dataclass
class Run:
    rps: float
    cpu_ms: float
    p50_ms: float
    p99_ms: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def start(cmd: list[str], env: dict, url: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling a starting process, not timing anything
    raise TimeoutError(cmd)


def wrk(url: str, body_file: Path, script: Path, connections: int, seconds: float, pid: int) -> Run:
    env = {**os.environ, "BENCH_BODY": str(body_file)}
    cmd = [
        "wrk",
        "-t",
        "1" if connections == 1 else "2",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url + "/predict",
    ]
    before = cpu_seconds(pid)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    stats = json.loads(out.strip().splitlines()[-1])
    if stats["non2xx"] or stats["errors"] or not stats["requests"]:
        raise RuntimeError(f"{url}: {stats}")
    return Run(
        rps=stats["requests"] / (stats["duration_us"] / 1e6),
        cpu_ms=1000 * cpu / stats["requests"],
        p50_ms=stats["p50"] / 1000,
        p99_ms=stats["p99"] / 1000,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per server and case")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: needs wrk (apt-get install wrk; scripts/bootstrap.sh installs it)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-"))
    env = {**os.environ, "PRELABEL_HOME": str(tmp / "home")}
    for key in ("LOG_LEVEL", "LOG_FORMAT", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "REDIS_URL"):
        env.pop(key, None)  # prelabel's defaults: INFO, JSON lines, one access-log line per request
    ours_port, floor_port = free_port(), free_port()
    ours_url, floor_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{floor_port}"
    procs = {
        "prelabel": start(
            [
                sys.executable,
                "-m",
                "prelabel.cli",
                "serve",
                "prelabel.testing.reference:ReferenceBackend",
                "--host",
                "127.0.0.1",
                "--port",
                str(ours_port),
            ],
            env,
            ours_url,
            tmp / "prelabel.log",
        )
    }
    try:
        sizes = (1, 100)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        payloads, files = {}, {}
        httpx.post(ours_url + "/setup", json={"project": "1.1764583200", "schema": TEXT_CHOICES}).raise_for_status()
        for n in sizes:
            raw = json.dumps(body(n)).encode()
            files[n] = tmp / f"body-{n}.json"
            files[n].write_bytes(raw)
            resp = httpx.post(ours_url + "/predict", content=raw, headers={"content-type": "application/json"})
            resp.raise_for_status()
            results = resp.json()["results"]
            assert len(results) == n and all(r["result"] for r in results), resp.text[:500]
            payloads[len(raw)] = resp.text
        (tmp / "payloads.json").write_text(json.dumps(payloads))
        (tmp / "floor_app.py").write_text(FLOOR_APP)
        procs["floor"] = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "floor_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(floor_port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            {**env, "BENCH_PAYLOADS": str(tmp / "payloads.json"), "PYTHONPATH": str(tmp)},
            floor_url,
            tmp / "floor.log",
        )
        urls = {"prelabel": ours_url, "floor": floor_url}
        cases = [(n, c) for n in sizes for c in (1, 16)]
        for name, url in urls.items():  # warm-up: imports, caches, connection pools
            for n, c in cases:
                wrk(url, files[n], script, c, 1, procs[name].pid)
        load_before = os.getloadavg()
        best: dict[tuple[str, int, int], Run] = {}
        for rep in range(args.repeats):
            for n, c in cases:
                order = ("floor", "prelabel") if rep % 2 == 0 else ("prelabel", "floor")
                for name in order:
                    run = wrk(urls[name], files[n], script, c, args.seconds, procs[name].pid)
                    key = (name, n, c)
                    if key not in best or run.cpu_ms < best[key].cpu_ms:
                        best[key] = run
        load_after = os.getloadavg()
        log_lines = sum(1 for _ in (tmp / "prelabel.log").open())
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(15)

    print(
        f"quietest of {args.repeats} interleaved {args.seconds:.0f}-second wrk runs per case; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"prelabel wrote {log_lines} log lines (default logging)"
    )
    print(
        f"{'tasks':>5} {'conns':>5} | {'floor req/s':>11} {'cpu ms':>7} {'p50':>6} {'p99':>6} | "
        f"{'prelabel req/s':>14} {'cpu ms':>7} {'p50':>6} {'p99':>6} | {'cpu ratio':>9} {'p99/p50':>7}"
    )
    misses = []
    for n, c in cases:
        floor, ours = best[("floor", n, c)], best[("prelabel", n, c)]
        ratio = floor.cpu_ms / ours.cpu_ms
        tail = ours.p99_ms / ours.p50_ms
        print(
            f"{n:>5} {c:>5} | {floor.rps:>11.0f} {floor.cpu_ms:>7.3f} {floor.p50_ms:>6.2f} {floor.p99_ms:>6.2f} | "
            f"{ours.rps:>14.0f} {ours.cpu_ms:>7.3f} {ours.p50_ms:>6.2f} {ours.p99_ms:>6.2f} | "
            f"{ratio:>9.2f} {tail:>7.2f}"
        )
        if ratio < CPU_TARGET[n]:
            misses.append(f"{n}-task c={c}: cpu ratio {ratio:.2f} < {CPU_TARGET[n]}")
        if c == 16 and tail > TAIL_TARGET:
            misses.append(f"{n}-task c={c}: p99/p50 {tail:.2f} > {TAIL_TARGET}")
    print("targets: cpu ratio >= 0.5 (1 task), >= 0.3 (100 tasks); p99/p50 <= 3 at 16 connections")
    if misses:
        print("FAIL: " + "; ".join(misses))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
