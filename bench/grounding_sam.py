"""Grounding SAM: per-image time of /predict on the grounding_sam backend, split into detection
(Grounding DINO) and segmentation (SAM 2 masks for the boxes), 4 images per call, with
GROUNDING_IMAGES_PER_PASS=4 (one Grounding DINO pass and one SAM 2 encoder pass for the 4
images) versus 1 (one image per pass, the default on a CPU), in the same run, alternating
rounds, on the same loaded models.

Random weights built offline (no download). ``--arch small`` (default) is a reduced Grounding
DINO that runs in seconds on a CPU; ``--arch full`` is grounding-dino-tiny's own architecture
(Swin-T + BERT-base, 172M parameters; about half a minute per image on a busy 2-core CPU).
SAM 2.1 tiny at ``--sam-image-size``. A low box threshold and GROUNDING_MAX_DETECTIONS fix the
number of boxes per image, so both modes segment the same number of boxes. The embedding
cache is off, so every round encodes its images. Prints seconds per image and the ratio
one-at-a-time/batched; no target: it shows where the time goes. Needs .venv-vision
(scripts/make-env.sh vision); run with another interpreter it re-runs itself there.
"""

from __future__ import annotations

import argparse
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
  <RectangleLabels name="box" toName="image">
    <Label value="Car" predicted_values="truck,bus"/>
    <Label value="Person" predicted_values="pedestrian"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="Car" predicted_values="truck,bus"/>
    <Label value="Person" predicted_values="pedestrian"/>
  </BrushLabels>
</View>"""


def write_dino(path: Path, arch: str) -> None:
    """A random Grounding DINO with its processor (bert-base-uncased's vocabulary)."""
    from prelabel_grounding_sam.testing import save_grounding_dino
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    if arch == "full":
        config = GroundingDinoConfig()  # grounding-dino-tiny: Swin-T, BERT-base, 900 queries
    else:
        config = GroundingDinoConfig(
            backbone_config=SwinConfig(
                embed_dim=48, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16], out_indices=[2, 3, 4]
            ),
            text_config=BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
            d_model=128,
            encoder_layers=3,
            decoder_layers=3,
            encoder_ffn_dim=512,
            decoder_ffn_dim=512,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            num_queries=300,
        )
    save_grounding_dino(path, config)


def tasks(n: int, width: int, height: int, seed: int) -> list[dict]:
    import base64

    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        cv2.rectangle(image, (width // 5, height // 4), (width // 2, height // 2 + 3 * i), (255, 255, 255), -1)
        ok, jpg = cv2.imencode(".jpg", image)
        uri = "data:image/jpeg;base64," + base64.b64encode(jpg).decode()
        out.append({"id": seed * 100 + i, "data": {"image": uri}})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=4, help="images per request")
    parser.add_argument("--size", default="640x480", help="image width x height")
    parser.add_argument("--arch", choices=("small", "full"), default="small")
    parser.add_argument("--sam-image-size", type=int, default=512, help="SAM2_IMAGE_SIZE")
    parser.add_argument("--boxes", type=int, default=5, help="GROUNDING_MAX_DETECTIONS (boxes per image)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per mode (alternating)")
    args = parser.parse_args()
    run_in("vision", "prelabel_grounding_sam", "sam2", "transformers")
    from prelabel_grounding_sam import GroundingSamBackend
    from prelabel_sam2.testing import write_random_checkpoint

    from prelabel.testing.client import make_runtime, serve_in_process

    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-gsam-"))
    write_dino(tmp / "gdino", args.arch)
    write_random_checkpoint(tmp / "sam2.1_hiera_tiny.pt", "tiny")
    width, height = (int(v) for v in args.size.split("x"))
    settings = {
        "model_root": str(tmp),
        "grounding_dino_model": "gdino",
        "model_config_name": "tiny",
        "sam2_image_size": args.sam_image_size,
        "sam2_embedding_cache_size": 0,
        "box_threshold": 0.0,
        "text_threshold": 0.0,
        "grounding_max_detections": args.boxes,
        "grounding_nms_iou": 1.0,
    }
    modes = {"batched (4/pass)": 4, "one image at a time": 1}
    clients, runtimes = {}, {}
    per_image: dict[str, dict[str, list[float]]] = {m: {"wall": [], "detect": [], "segment": []} for m in modes}
    regions: dict[str, int] = {}
    try:
        for mode, batch in modes.items():
            rt = make_runtime(
                GroundingSamBackend,
                tmp / f"home-{batch}",
                {**settings, "grounding_max_batch_size": 4, "grounding_images_per_pass": batch},
                log_level="WARNING",
            )
            runtimes[mode] = rt
            clients[mode] = serve_in_process(rt, wait_ready=900).__enter__()
            body = {"tasks": tasks(args.images, width, height, seed=99), "project": "1", "label_config": CONFIG}
            clients[mode].post("/predict", json=body).raise_for_status()  # warm-up
        for r in range(args.rounds):
            for mode, client in clients.items():
                backend = runtimes[mode].backend
                before = dict(backend.timings)
                body = {"tasks": tasks(args.images, width, height, seed=r), "project": "1", "label_config": CONFIG}
                started = time.perf_counter()
                resp = client.post("/predict", json=body)
                wall = time.perf_counter() - started
                resp.raise_for_status()
                results = resp.json()["results"]
                assert all("error" not in item for item in results), results
                regions[mode] = sum(len(item["result"]) for item in results)
                n = backend.timings["images"] - before["images"]
                per_image[mode]["wall"].append(wall / n)
                per_image[mode]["detect"].append((backend.timings["detect_seconds"] - before["detect_seconds"]) / n)
                per_image[mode]["segment"].append((backend.timings["segment_seconds"] - before["segment_seconds"]) / n)
        device = runtimes[next(iter(modes))].backend.detector.device
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)
        for rt in runtimes.values():
            rt.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"Grounding DINO ({args.arch}, random weights) + SAM 2.1 tiny @{args.sam_image_size}, {args.images} images "
        f"{args.size}, {args.boxes} boxes each, device {device}, median of {args.rounds} rounds"
    )
    print(f"{'mode':>22} {'s/image':>8} {'detect':>8} {'segment':>8} {'regions':>8}")
    walls = {}
    for mode in modes:
        med = {k: statistics.median(v) for k, v in per_image[mode].items()}
        walls[mode] = med["wall"]
        print(f"{mode:>22} {med['wall']:>8.3f} {med['detect']:>8.3f} {med['segment']:>8.3f} {regions[mode]:>8}")
    batched, single = walls.values()
    print(f"one at a time / batched (seconds per image): {single / batched:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
