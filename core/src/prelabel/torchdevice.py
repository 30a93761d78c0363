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


def device_for(settings: object) -> str | None:
    """The device ``Backend.setup`` gets: the backend settings' ``device`` resolved (torch is
    imported only for ``auto``), or None when the settings have no ``device``."""
    setting = getattr(settings, "device", None)
    return resolve_torch_device(setting) if isinstance(setting, str) else None
