"""Label Studio credentials: personal access tokens (JWT refresh tokens) and legacy tokens.

A personal access token is exchanged at ``/api/token/refresh/`` for a short-lived access
token sent as ``Bearer``; a legacy token is sent as ``Token``. Access tokens are cached until
shortly before they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from prelabel.redact import register_request_secret

if TYPE_CHECKING:
    from prelabel.settings import CoreSettings


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
    """(scheme, host, port) with default ports filled in, for same-host comparisons. A URL
    that cannot be parsed (``http://h:1:2/``) has an origin no real host shares."""
    try:
        parts = urlsplit(url)
        scheme = (parts.scheme or "").lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return "invalid", url, None
    return scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class LabelStudioAccess:
    """Where a project's Label Studio is, and the one token that may be sent there.

    The rule, enforced here for media, prediction jobs and training alike: a credential only
    goes to the host it came with. ``LABEL_STUDIO_API_KEY`` goes to ``LABEL_STUDIO_URL`` only;
    a token a /setup request carried goes to the ``hostname`` of that same /setup only. Any
    other host gets no Label Studio credential."""

    base_url: str | None
    token: str | None = None
    withheld: str | None = None  # why a configured key is not used here (for the error message)

    def token_for(self, url: str) -> str | None:
        if self.token and self.base_url and origin(url) == origin(self.base_url):
            return self.token
        return None

    @property
    def scope(self) -> str:
        """Identifies (base URL, credential) without holding the secret: part of cache keys,
        so one project's files are never served to a request with another's access."""
        raw = f"{self.base_url or ''}\0{self.token or ''}".encode()
        return hashlib.sha256(raw).hexdigest()[:24]


def resolve_access(
    core: CoreSettings, hostname: str | None = None, access_token: str | None = None
) -> LabelStudioAccess:
    """The Label Studio access for a project whose /setup sent ``hostname``/``access_token``."""
    env_url = (core.label_studio_url or "").rstrip("/") or None
    env_key = core.label_studio_api_key.get_secret_value() if core.label_studio_api_key else None
    hostname = (hostname or "").strip().rstrip("/") or None
    access_token = access_token or None
    if access_token:
        register_request_secret(access_token)
    if env_url:
        if env_key:
            return LabelStudioAccess(env_url, env_key)
        if hostname and access_token and origin(hostname) == origin(env_url):
            return LabelStudioAccess(env_url, access_token)
        return LabelStudioAccess(env_url)
    withheld = (
        (
            "LABEL_STUDIO_API_KEY is set, but it is only ever sent to LABEL_STUDIO_URL, which is "
            "not set: set LABEL_STUDIO_URL to your Label Studio's address"
        )
        if env_key
        else None
    )
    if hostname:
        return LabelStudioAccess(hostname, access_token, withheld)
    return LabelStudioAccess(None, None, withheld)


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
                f"could not reach Label Studio at {base_url} to refresh the token: {exc}"
            ) from exc
        if resp.status_code != 200 or "access" not in resp.text:
            raise LabelStudioAuthError(
                f"Label Studio refused the personal access token ({resp.status_code} at {url}): "
                "check LABEL_STUDIO_API_KEY"
            )
        return resp.json()["access"]
