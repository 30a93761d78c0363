"""Paths that come from label configs or requests, confined to a root directory."""

from __future__ import annotations

from pathlib import Path


class PathEscapeError(ValueError):
    """A configured path points outside the directory it must stay in."""


def resolve_under(root: Path | str, relative: str, what: str = "path") -> Path:
    """``root / relative`` with symlinks resolved, refusing absolute paths, ``..`` and any
    result outside ``root`` (upstream backends accepted any path in ``model_path``)."""
    if not isinstance(relative, str) or not relative.strip():
        raise PathEscapeError(f"{what} is empty")
    if "\x00" in relative:
        raise PathEscapeError(f"{what}={relative!r} contains a NUL byte")
    candidate = Path(relative)
    if candidate.is_absolute() or relative.startswith(("~", "\\")) or ":" in candidate.parts[0]:
        raise PathEscapeError(f"{what}={relative!r} must be relative to {root}, not absolute")
    if ".." in candidate.parts:
        raise PathEscapeError(f"{what}={relative!r} must not contain '..'")
    base = Path(root).resolve()
    resolved = (base / candidate).resolve()
    if resolved != base and base not in resolved.parents:
        raise PathEscapeError(f"{what}={relative!r} resolves outside {root} (through a symlink)")
    return resolved
