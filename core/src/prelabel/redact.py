"""Secrets never leave in a message: every log line and every error a request returns passes
through :func:`redact`, which masks the secrets this process knows (API keys from settings,
tokens Label Studio sent to /setup, task-data passwords) and the password of any URL's
userinfo (``https://user:pass@host`` -> ``https://user:***@host``). A provider that echoes
the key in its error ("Incorrect API key provided: sk-...") is the usual way one leaks."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words
# Secrets a request brings (the token a /setup carries) are kept only while recent, only if they
# look like tokens, and never task-data passwords: an unauthenticated caller must not be able
# to grow this set without bound, or to mask an ordinary word in every later line.
REQUEST_SECRET_LENGTH = (16, 512)
MAX_REQUEST_SECRETS = 64
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*):(?P<pw>[^\s/@]+)@")

_lock = threading.Lock()
_secrets: set[str] = set()  # from settings: for the life of the process
_request_secrets: OrderedDict[str, None] = OrderedDict()  # from requests: the most recent only
_pattern: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    """Remember a secret from the operator's settings so that it is masked wherever it would
    appear, for the life of the process."""
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value not in _secrets:
            _secrets.add(value)
            _recompile()


def register_request_secret(value: object) -> None:
    """Remember a token a request carried (a /setup ``access_token``): masked while it is among
    the MAX_REQUEST_SECRETS most recent, and only if it is token-sized."""
    low, high = REQUEST_SECRET_LENGTH
    if not isinstance(value, str) or not low <= len(value) <= high or " " in value:
        return
    with _lock:
        if value in _request_secrets:
            _request_secrets.move_to_end(value)
            return
        _request_secrets[value] = None
        while len(_request_secrets) > MAX_REQUEST_SECRETS:
            _request_secrets.popitem(last=False)
        _recompile()


def _recompile() -> None:
    global _pattern
    known = _secrets | set(_request_secrets)
    # longest first, so a secret that contains another is masked whole
    _pattern = re.compile("|".join(re.escape(s) for s in sorted(known, key=len, reverse=True))) if known else None


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
