"""The torch device a ``DEVICE=auto`` setting means, for the plugins that run torch models.
torch is imported only when asked (core itself does not depend on it)."""

from __future__ import annotations


def resolve_torch_device(setting: str) -> str:
    """``auto`` is the first CUDA GPU when there is one, else Apple's mps, else the CPU;
    anything else is used as given."""
    if setting.strip().lower() != "auto":
        return setting.strip()
    import torch

    if torch.cuda.is_available():
        return "cuda:0"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
