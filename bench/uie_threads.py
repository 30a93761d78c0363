"""UIE on the CPU: Paddle Inference with every core (the backend's default, UIE_CPU_THREADS)
versus Taskflow's own default of half the cores, in the same run, alternating rounds.

A random UIE the size of uie-base's encoder width (hidden 768, --layers deep; built offline
with the plugin tests' builder, no download), 16 texts of about 430 characters, one Taskflow
call each round. Prints seconds per round for both and the speed-up (target: at least 1.3 on
a machine with 2 or more cores, where half the cores is fewer than all of them). Needs
.venv-paddle (scripts/make-env.sh paddle); run with another interpreter it re-runs itself there.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _envs import run_in

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ["Person", "City"]
TEXT = "Alice works in Paris at Acme since 2019, and Bob joined her in Berlin. " * 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--texts", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-uie-"))
    os.environ.setdefault("PPNLP_HOME", str(tmp / "paddlenlp"))
    run_in("paddle", "paddlenlp")
    sys.path.insert(0, str(ROOT / "plugins" / "uie_x" / "tests"))
    from prelabel_uie_x.engine import load_engine
    from uie_x_tinymodels import build_uie

    model = build_uie(tmp / "uie", hidden=768, layers=args.layers)
    cores = os.cpu_count() or 1
    modes = {f"every core ({cores})": cores, f"Taskflow default ({math.ceil(cores / 2)})": None}
    texts = [TEXT] * args.texts
    engines = {m: load_engine("uie-base", model, "cpu", 512, 16, 0.5, threads) for m, threads in modes.items()}
    times: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for engine in engines.values():
            engine.extract(texts[:2], SCHEMA)  # warm-up
        for _ in range(args.rounds):
            for mode, engine in engines.items():
                started = time.perf_counter()
                engine.extract(texts, SCHEMA)
                times[mode].append(time.perf_counter() - started)
    finally:
        for engine in engines.values():
            engine.close()
    print(
        f"UIE hidden 768 x {args.layers} layers (random), {args.texts} texts of {len(TEXT)} chars, "
        f"median of {args.rounds} rounds"
    )
    for mode in modes:
        print(f"  {mode:<26} {statistics.median(times[mode]):7.2f} s")
    every, half = (statistics.median(t) for t in times.values())
    ratio = half / every
    if cores < 2:
        print(f"speed-up {ratio:.2f}: one core, nothing to compare")
        return 0
    print(f"speed-up every core / Taskflow default {ratio:.2f} (target >= 1.30): {'PASS' if ratio >= 1.3 else 'FAIL'}")
    return 0 if ratio >= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
