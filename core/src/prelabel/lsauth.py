"""Label Studio credentials: personal access tokens (JWT refresh tokens) and legacy tokens.

A personal access token is exchanged at ``/api/token/refresh/`` for a short-lived access
token sent as ``Bearer``; a legacy token is sent as ``Token``. Access tokens are cached until
shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import urlsplit

import httpx


class LabelStudioAuthError(RuntimeError):
    """Label Studio refused the token or could not be reached to refresh it."""


def is_personal_access_token(token: str) -> bool:
    """True for a JWT with an ``exp`` claim (Label Studio's PAT), as label-studio-sdk decides."""
    return jwt_expiry(token) is not None


def jwt_expiry(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, json.JSONDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in, for same-host comparisons."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class TokenCache:
    """Turns a Label Studio token into an Authorization header, refreshing PATs as needed."""

    def __init__(self, client: httpx.Client):
        self.client = client
        self._access: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def header(self, base_url: str, token: str) -> str:
        if not is_personal_access_token(token):
            return f"Token {token}"
        key = (base_url.rstrip("/"), token)
        with self._lock:
            cached = self._access.get(key)
            if cached and cached[1] - 30 > time.time():
                return f"Bearer {cached[0]}"
            access = self._refresh(key[0], token)
            self._access[key] = (access, jwt_expiry(access) or time.time() + 240)
            return f"Bearer {access}"

    def _refresh(self, base_url: str, token: str) -> str:
        url = f"{base_url}/api/token/refresh/"
        try:
            resp = self.client.post(url, json={"refresh": token}, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise LabelStudioAuthError(
                f"could not reach Label Studio at {base_url} to refresh the token: {exc}") from exc
        if resp.status_code != 200 or "access" not in resp.text:
            raise LabelStudioAuthError(
                f"Label Studio refused the personal access token ({resp.status_code} at {url}): "
                "check LABEL_STUDIO_API_KEY"
            )
        return resp.json()["access"]
