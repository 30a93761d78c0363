"""Server overhead: the reference backend served by prelabel versus a bare FastAPI app that
returns the same payload (the floor), both under uvicorn on loopback, driven by the same
client in the same run, for 1-task and 100-task requests.

Prints tasks/s for both and the ratio prelabel/floor. Target: at least 0.7.

The floor parses the request and serializes the same response with FastAPI's default
JSONResponse; prelabel serializes /predict responses with orjson, which is why it can beat
the floor on large requests. The reference backend's predict is async (no worker-thread hop).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "src"))
from prelabel.testing.configs import TEXT_CHOICES  # noqa: E402
from prelabel.testing.redisserver import free_port  # noqa: E402

WORDS = ["positive", "negative", "neutral", "film", "great", "day", "service"]


def body(n: int) -> dict:
    tasks = [{"id": i, "data": {"text": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(12))}} for i in range(n)]
    return {"tasks": tasks, "project": "1.1", "label_config": TEXT_CHOICES,
            "params": {"login": None, "password": None, "context": None}}


BARE_APP = textwrap.dedent("""
    import json, os
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    payloads = {k: json.loads(v) for k, v in json.load(open(os.environ["BENCH_PAYLOADS"])).items()}
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        data = await request.json()  # parse the request and serialize the response, like any server must
        return JSONResponse(payloads[str(len(data["tasks"]))])
""")


def start(cmd: list[str], env: dict, url: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode())
        try:
            if httpx.get(url + "/health", timeout=1).status_code in (200, 404):
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(cmd)


def measure(url: str, payload: dict, seconds: float) -> float:
    """Tasks per second over sequential keep-alive requests for ``seconds``."""
    n = len(payload["tasks"])
    raw = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=30) as client:
        for _ in range(20):  # warm-up
            client.post(url + "/predict", content=raw, headers=headers).raise_for_status()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            client.post(url + "/predict", content=raw, headers=headers).raise_for_status()
            done += 1
        return done * n / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per case")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-"))
    env = {**os.environ, "PRELABEL_HOME": str(tmp / "home"), "LOG_LEVEL": "WARNING"}
    prelabel_port, bare_port = free_port(), free_port()
    prelabel_url, bare_url = f"http://127.0.0.1:{prelabel_port}", f"http://127.0.0.1:{bare_port}"
    procs = [start([sys.executable, "-m", "prelabel.cli", "serve", "prelabel.testing.reference:ReferenceBackend",
                    "--host", "127.0.0.1", "--port", str(prelabel_port)], env, prelabel_url)]
    try:
        sizes = (1, 100)
        payloads = {str(n): httpx.post(prelabel_url + "/predict", json=body(n)).text for n in sizes}
        (tmp / "payloads.json").write_text(json.dumps(payloads))
        (tmp / "bare_app.py").write_text(BARE_APP)
        procs.append(start([sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port",
                            str(bare_port), "--log-level", "warning", "--no-access-log"],
                           {**env, "BENCH_PAYLOADS": str(tmp / "payloads.json"), "PYTHONPATH": str(tmp)}, bare_url))
        worst = float("inf")
        print(f"{'tasks/request':>14} {'prelabel tasks/s':>17} {'floor tasks/s':>14} {'ratio':>6}")
        for n in sizes:
            payload = body(n)
            floor = measure(bare_url, payload, args.seconds)
            ours = measure(prelabel_url, payload, args.seconds)
            ratio = ours / floor
            worst = min(worst, ratio)
            print(f"{n:>14} {ours:>17.0f} {floor:>14.0f} {ratio:>6.2f}")
        print(f"worst ratio {worst:.2f} (target >= 0.70): {'PASS' if worst >= 0.7 else 'FAIL'}")
        return 0 if worst >= 0.7 else 1
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    sys.exit(main())
