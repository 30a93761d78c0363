"""Secrets never leave in a message: every log line and every error a request returns passes
through :func:`redact`, which masks the secrets this process knows (API keys from settings,
tokens Label Studio sent to /setup, task-data passwords) and the password of any URL's
userinfo (``https://user:pass@host`` -> ``https://user:***@host``). A provider that echoes
the key in its error ("Incorrect API key provided: sk-...") is the usual way one leaks."""

from __future__ import annotations

import re
import threading

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*):(?P<pw>[^\s/@]+)@")

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    """Remember a secret so that it is masked wherever it would appear."""
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    global _pattern
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # longest first, so a secret that contains another is masked whole
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def redact(text: str) -> str:
    """``text`` with every known secret and URL password replaced by ``***``."""
    if not isinstance(text, str):
        text = str(text)
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return text


def register_settings_secrets(settings: object) -> None:
    """Register every ``SecretStr`` field of a pydantic settings object."""
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if hasattr(value, "get_secret_value"):
            register_secret(value)
