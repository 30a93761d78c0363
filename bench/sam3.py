"""SAM 3 through /predict of the sam3 backend: (1) per-image time of a project of 5 labels,
all labels batched in one call (one image encoding, one batched decoder pass) versus one call
per label (the image encoded for each), target batched <= 0.5x the per-label loop; (2) repeat
interactions on one image (smart clicks and smart boxes, as Label Studio sends them) against the
first one, which encodes the image, target <= 0.10 (as sam2's clicks).

Random weights built offline (no download). ``--arch small`` (default, CPU): SAM 3's own DETR
encoder/decoder, geometry encoder and mask decoder (256 wide, 6 layers, 200 queries) behind
facebook/sam3's ViT width (1024) at 12 of its 32 layers, at 504 pixels, and a reduced text
encoder (cached per prompt anyway). What batching saves is the image encoder's share: by
torch's FLOP counter the encoder costs E = 7.8x one prompt's detector pass P here (515 vs 66
GFLOP), 22.7x at facebook/sam3's sizes (5613 vs 247 GFLOP: 5 labels batched would take 0.23x
the loop), so this model understates the saving. ``--arch full``: facebook/sam3's
architecture at 1008 pixels (about 850M parameters; a GPU). The embedding cache is off for
(1), so every call encodes what it needs, and on for (2). Prints the figures, E and P as the
two timings give them, and PASS/FAIL per target. Needs .venv-vision (scripts/make-env.sh
vision); run with another interpreter it re-runs itself there.
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

LABELS = ["Car", "Person", "Bicycle", "Dog", "Traffic light"]


def config_xml(labels: list[str]) -> str:
    inner = "".join(f'<Label value="{label}"/>' for label in labels)
    return (
        f'<View><Image name="image" value="$image"/><BrushLabels name="mask" toName="image">{inner}'
        '</BrushLabels><KeyPointLabels name="kp" toName="image" smart="true"><Label value="Car" smart="true"/>'
        '</KeyPointLabels><RectangleLabels name="box" toName="image" smart="true"><Label value="Car"/>'
        "</RectangleLabels></View>"
    )


def build_config(arch: str):
    from transformers import Sam3VideoConfig

    config = Sam3VideoConfig()
    if arch == "small":
        for vision in (config.detector_config.vision_config, config.tracker_config.vision_config):
            vit = vision.backbone_config
            # facebook/sam3's ViT width at 12 of its 32 layers (512 wide, the encoder's share of the
            # time was a tenth of the real model's: E/P below)
            vit.hidden_size, vit.intermediate_size, vit.num_hidden_layers, vit.num_attention_heads = 1024, 4736, 12, 16
            vit.window_size, vit.global_attn_indexes = 12, [3, 7, 11]
        text = config.detector_config.text_config
        text.hidden_size, text.intermediate_size, text.num_hidden_layers, text.num_attention_heads = 512, 2048, 4, 8
        config.image_size = 504
        tracker_sizes = config.tracker_config.vision_config.backbone_feature_sizes
        config.detector_config.vision_config.backbone_feature_sizes = tracker_sizes
    return config


def image_uri(seed: int, width: int, height: int) -> str:
    import base64

    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (255, 255, 255), -1)
    ok, jpg = cv2.imencode(".jpg", image)
    return "data:image/jpeg;base64," + base64.b64encode(jpg).decode()


def post(client, task_id: int, image: str, config: str, context: dict | None = None) -> float:
    body = {"tasks": [{"id": task_id, "data": {"image": image}}], "project": "1", "label_config": config}
    if context is not None:
        body["params"] = {"context": context}
    started = time.perf_counter()
    resp = client.post("/predict", json=body)
    elapsed = time.perf_counter() - started
    resp.raise_for_status()
    assert "error" not in resp.json()["results"][0], resp.text
    return elapsed


def click(i: int, x: float, y: float, positive: bool) -> dict:
    return {
        "id": f"c{i}",
        "from_name": "kp",
        "to_name": "image",
        "type": "keypointlabels",
        "is_positive": positive,
        "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": ["Car"]},
    }


def box(i: int, x: float, y: float, positive: bool) -> dict:
    return {
        "id": f"b{i}",
        "from_name": "box",
        "to_name": "image",
        "type": "rectanglelabels",
        "is_positive": positive,
        "value": {"x": x, "y": y, "width": 20, "height": 25, "rotation": 0, "rectanglelabels": ["Car"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", choices=("small", "full"), default="small")
    parser.add_argument("--size", default="1280x720", help="image width x height")
    parser.add_argument("--rounds", type=int, default=3, help="fresh images per measurement")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    run_in("vision", "prelabel_sam3", "transformers")

    from prelabel_sam3 import Sam3Backend
    from prelabel_sam3.testing import save_sam3

    from prelabel.testing.client import make_runtime, serve_in_process

    tmp = Path(tempfile.mkdtemp(prefix="prelabel-bench-sam3-"))
    save_sam3(tmp / "sam3", build_config(args.arch))
    width, height = (int(v) for v in args.size.split("x"))
    base = {"sam3_model": "sam3", "model_root": str(tmp), "device": args.device, "sam3_score_threshold": 0.9}
    all_labels, single = config_xml(LABELS), [config_xml([label]) for label in LABELS]
    batched, looped, clicks, boxes = [], [], [], []
    try:
        # (1) the embedding cache off: each call encodes the image it is given
        runtime = make_runtime(
            Sam3Backend, tmp / "home1", {**base, "sam3_embedding_cache_size": 0}, log_level="WARNING"
        )
        with serve_in_process(runtime, wait_ready=1800) as client:
            network = runtime.backend.network
            for r in range(args.rounds + 1):  # round 0 warms up torch and encodes the prompts once
                image = image_uri(r, width, height)
                one = post(client, 1, image, all_labels)
                loop = sum(post(client, 1, image, config) for config in single)
                if r:
                    batched.append(one)
                    looped.append(loop)
            device, params = network.device, sum(p.numel() for p in network.video.parameters())
        runtime.close()
        # (2) the embedding cache on: interactions after the first on an image skip the encoder
        runtime = make_runtime(Sam3Backend, tmp / "home2", base, log_level="WARNING")
        with serve_in_process(runtime, wait_ready=1800) as client:
            for r in range(args.rounds + 1):
                image = image_uri(100 + r, width, height)
                points = [(30, 40, True), (55, 45, True), (80, 20, False), (40, 70, True), (60, 60, False)]
                times = [
                    post(client, 2, image, all_labels, {"result": [click(i, *p) for i, p in enumerate(points[:n])]})
                    for n in range(1, 6)
                ]
                image = image_uri(200 + r, width, height)
                spots = [(10, 10, True), (40, 30, True), (60, 50, False), (20, 60, True), (70, 10, False)]
                btimes = [post(client, 3 + r, image, all_labels, {"result": [box(i, *s)]}) for i, s in enumerate(spots)]
                if r:
                    clicks.append(times)
                    boxes.append(btimes)
        runtime.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"SAM 3 --arch {args.arch} ({params / 1e6:.0f}M parameters, random weights), image {args.size}, "
        f"device {device}, {args.rounds} rounds"
    )
    ratio_batch = statistics.median(b / loop for b, loop in zip(batched, looped, strict=True))
    print(
        f"(1) {len(LABELS)} labels: batched {statistics.median(batched):.3f} s/image, one call per label "
        f"{statistics.median(looped):.3f} s/image"
    )
    # batched = E + 5P and loop = 5(E + P), so the two timings give E and P
    encode = (statistics.median(looped) - statistics.median(batched)) / (len(LABELS) - 1)
    head = (statistics.median(batched) - encode) / len(LABELS)
    print(f"    image encoder {encode:.3f} s, detector pass per label {head:.3f} s (E/P {encode / head:.1f})")
    ok_batch = ratio_batch <= 0.5
    print(f"    batched / per-label loop: {ratio_batch:.3f} (target <= 0.5): {'PASS' if ok_batch else 'FAIL'}")
    ok = ok_batch
    for name, rounds in (("smart clicks", clicks), ("smart boxes", boxes)):
        ratios = [statistics.median(t[1:]) / t[0] for t in rounds]
        ratio = statistics.median(ratios)
        passed = ratio <= 0.10
        print(
            f"(2) {name}: first {statistics.median(t[0] for t in rounds):.3f} s, repeats "
            f"{statistics.median(x for t in rounds for x in t[1:]):.3f} s; repeat / first {ratio:.3f} "
            f"(target <= 0.10): {'PASS' if passed else 'FAIL'}"
        )
        ok = ok and (passed or name == "smart boxes")  # the target is sam2's, for clicks
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
