"""Test support: a random-weight SAM 2 checkpoint in the release format, built offline.

Used by this plugin's tests, grounding_sam's and the benchmarks; the checkpoint loads through
the same ``build_sam2_video_predictor(config, path)`` call as a real one.
"""

from __future__ import annotations

from pathlib import Path


def write_random_checkpoint(path: Path, config: str = "tiny", seed: int = 0) -> Path:
    """Save ``{"model": state_dict}`` of a randomly initialised model of ``config`` (a
    MODEL_CONFIG value: tiny, small, base+, large or a config name) to ``path``."""
    import torch
    from sam2.build_sam import build_sam2

    from prelabel_sam2.settings import resolve_config

    torch.manual_seed(seed)
    model = build_sam2(resolve_config(config)[0], ckpt_path=None, device="cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path
