"""YOLO batching: 32 images through one /predict of the yolo backend, with YOLO_MAX_BATCH_SIZE=8
(one model call per 8 images) versus 1 (one model call per image), in the same run, on the
same cached model, alternating rounds.

Prints images/s (wall clock) and CPU seconds for both, the model calls each made, and the
wall-clock ratio batched/per-image. Target: at least 1.3 on CPU, at the default --imgsz 320.
On a CPU the gain comes from per-call overhead and better thread use on small tensors, so it
shrinks as --imgsz grows: at 640 a 2-core CPU's convolutions are compute-bound at any batch
size and the ratio is 1.00-1.05 (run --imgsz 640 to see it; on a GPU 640 is where batching
pays). Needs .venv-vision (scripts/make-env.sh vision); run with another interpreter it
re-runs itself there. Random weights (yolo11n.yaml): no download.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _envs import run_in

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.25">
    <Label value="Person" predicted_values="person,0"/>
    <Label value="Car" predicted_values="car,2"/>
  </RectangleLabels>
</View>"""


def images(n: int, width: int, height: int) -> list[dict]:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    tasks = []
    for i in range(n):
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        cv2.rectangle(image, (width // 4, height // 4), (width // 2 + i, height // 2 + i), (255, 255, 255), -1)
        ok, jpg = cv2.imencode(".jpg", image)
        tasks.append({"id": i + 1, "data": {"image": "data:image/jpeg;base64," + base64.b64encode(jpg).decode()}})
    return tasks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", default="640x480", help="image width x height")
    parser.add_argument("--imgsz", type=int, default=320, help="YOLO_IMGSZ (the target is for 320 on a CPU)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per mode (alternating)")
    args = parser.parse_args()

    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "prelabel-bench-ultralytics"))
    run_in("vision", "prelabel_yolo", "ultralytics")
    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-yolo-"))
    from prelabel_yolo import YoloBackend
    from prelabel_yolo.models import CACHE
    from ultralytics import YOLO

    from prelabel.testing.client import make_runtime, serve_in_process

    model_root = tmp / "models"
    model_root.mkdir()
    YOLO("yolo11n.yaml").save(str(model_root / "yolo11n.pt"))  # random weights, as the default name
    width, height = (int(v) for v in args.size.split("x"))
    body = {"tasks": images(args.images, width, height), "project": "1.1", "label_config": CONFIG}
    modes = {"batched (8/call)": 8, "per image (1/call)": 1}
    clients, runtimes, times, calls = {}, [], {m: [] for m in modes}, {}
    cpu = {m: [] for m in modes}
    settings = {"model_root": str(model_root), "yolo_imgsz": args.imgsz}
    try:
        for mode, batch in modes.items():
            rt = make_runtime(
                YoloBackend, tmp / f"home-{batch}", {**settings, "yolo_max_batch_size": batch}, log_level="WARNING"
            )
            runtimes.append(rt)
            clients[mode] = serve_in_process(rt).__enter__()
            clients[mode].post("/predict", json=body).raise_for_status()  # warm-up: load, first call
        loaded = CACHE.get((model_root / "yolo11n.pt").resolve(), runtimes[0].backend.device)
        for _ in range(args.rounds):
            for mode, client in clients.items():
                before = loaded.calls
                started, cpu_started = time.perf_counter(), time.process_time()
                resp = client.post("/predict", json=body)
                times[mode].append(time.perf_counter() - started)
                cpu[mode].append(time.process_time() - cpu_started)
                resp.raise_for_status()
                assert len(resp.json()["results"]) == args.images
                calls[mode] = loaded.calls - before
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)
        for rt in runtimes:
            rt.close()
        shutil.rmtree(tmp, ignore_errors=True)

    backend = runtimes[0].backend
    print(
        f"{args.images} images {args.size}, imgsz {args.imgsz}, device {backend.device} "
        f"(CPU threads {backend.cpu_threads}), median of {args.rounds} rounds"
    )
    print(f"{'mode':>20} {'model calls':>12} {'seconds':>8} {'CPU s':>7} {'images/s':>9}")
    rates = {}
    for mode in modes:
        seconds = statistics.median(times[mode])
        rates[mode] = args.images / seconds
        print(f"{mode:>20} {calls[mode]:>12} {seconds:>8.2f} {statistics.median(cpu[mode]):>7.2f} {rates[mode]:>9.1f}")
    batched, single = rates.values()
    ratio = batched / single
    print(f"ratio batched/per-image {ratio:.2f} (target >= 1.30): {'PASS' if ratio >= 1.3 else 'FAIL'}")
    return 0 if ratio >= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
