"""Paths that come from label configs or requests, confined to a root directory."""

from __future__ import annotations

import re
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


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SAFE_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def safe_id(value: object, what: str = "project id") -> str:
    """``value`` as a string fit to be one path component or one state key: letters, digits,
    ``_`` and ``-``, at most 64 characters. Project ids, job ids and the like become directory
    names and Redis/SQLite keys; anything else (``/srv/x``, ``..``, a lone surrogate, ``a:b``)
    is refused here, the one place every such id passes through."""
    text = str(value)
    if not _SAFE_ID.fullmatch(text):
        raise InvalidIdentifier(
            f"{what} {_shown(text)} is not valid: use letters, digits, '_' and '-' only "
            "(at most 64 characters; Label Studio's project ids are numbers)"
        )
    return text


def safe_version(value: object) -> str:
    """A model version fit to be a directory name (``backend-20260101-120000-abc123``)."""
    text = str(value)
    if not _SAFE_VERSION.fullmatch(text) or ".." in text:
        raise InvalidIdentifier(f"model version {_shown(text)} is not valid as a directory name")
    return text


def _shown(text: str) -> str:
    return ascii(text[:80] + ("..." if len(text) > 80 else ""))


class InvalidIdentifier(ValueError):
    """A project id, job id or version from a request that cannot safely name a file or key."""
