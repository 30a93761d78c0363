"""The two distributions that provide ``label_studio_ml`` (PyPI's label-studio-ml and
prelabel-compat), and the refusal when both are installed. Imports nothing from prelabel, so
the adapter's API and its loader can both use it."""

from __future__ import annotations

import importlib.metadata

COMPAT_DISTRIBUTION = "prelabel-compat"
UPSTREAM_DISTRIBUTION = "label-studio-ml"


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def two_label_studio_ml_message() -> str | None:
    """Why this environment cannot work, when both distributions of ``label_studio_ml`` are
    installed (the files of the one installed last replaced the other's); None otherwise."""
    ours, theirs = _installed_version(COMPAT_DISTRIBUTION), _installed_version(UPSTREAM_DISTRIBUTION)
    if ours is None or theirs is None:
        return None
    return (
        f"both {UPSTREAM_DISTRIBUTION} {theirs} (PyPI's, from 2023) and {COMPAT_DISTRIBUTION} {ours} "
        f"(prelabel's) are installed, and both provide the label_studio_ml package: the files of one "
        f"overwrote the other's. Keep one: pip uninstall -y {UPSTREAM_DISTRIBUTION} {COMPAT_DISTRIBUTION} && "
        f'pip install "prelabel[compat]"'
    )


def refuse_two_label_studio_ml() -> None:
    """Raise ImportError with :func:`two_label_studio_ml_message` when it applies."""
    message = two_label_studio_ml_message()
    if message is not None:
        raise ImportError(message)
