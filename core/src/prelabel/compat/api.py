"""``label_studio_ml.api.init_app``: what upstream's ``_wsgi.py`` files and example tests use.

``init_app(ModelClass)`` returns a :class:`LabelStudioMLApp`. It is not a Flask app: it serves
the model through prelabel's own server (the app ``prelabel serve --model-file`` runs), and
offers the part of Flask's app API that upstream's files touch:

- ``app.run(host=..., port=..., debug=...)``, which ``python _wsgi.py --host H --port N`` calls;
- ``app.test_client()``, a context manager whose ``get``/``post(url, data=json.dumps(...),
  content_type='application/json')`` (or ``json=...``) return responses with Flask's
  ``status_code``, ``json``, ``get_json()``, ``data``, ``text`` and ``headers``;
- ``app.config``, a dict (``app.config['TESTING'] = True`` is accepted and changes nothing);
- the app itself is an ASGI application, so ``uvicorn _wsgi:app`` serves it too.

A test client keeps its state (``get``/``set`` values, jobs) in a temporary directory that is
removed when the client closes, unless ``PRELABEL_HOME`` is set; ``run`` uses the same settings
as ``prelabel serve`` (``PRELABEL_HOME``, default ``~/.prelabel``).
"""

from __future__ import annotations

import json as jsonlib
import os
import shutil
import tempfile
import threading
import warnings
from typing import Any
from urllib.parse import urlencode

from prelabel.compat.adapter import LabelStudioMLAdapter, adapt, is_model_class

_REASONS = {
    200: "OK",
    201: "CREATED",
    204: "NO CONTENT",
    400: "BAD REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    405: "METHOD NOT ALLOWED",
    409: "CONFLICT",
    413: "REQUEST ENTITY TOO LARGE",
    422: "UNPROCESSABLE ENTITY",
    500: "INTERNAL SERVER ERROR",
    503: "SERVICE UNAVAILABLE",
}


class TestResponse:
    """A response as Flask's test client gives it, built from an httpx response."""

    __test__ = False  # not a pytest test class

    def __init__(self, response: Any):
        self._response = response
        self.status_code: int = response.status_code
        self.headers = response.headers
        self.data: bytes = response.content

    @property
    def status(self) -> str:
        return f"{self.status_code} {_REASONS.get(self.status_code, '')}".strip()

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def mimetype(self) -> str | None:
        value = self.content_type
        return value.split(";", 1)[0].strip().lower() if value else None

    @property
    def is_json(self) -> bool:
        mimetype = self.mimetype or ""
        return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))

    @property
    def text(self) -> str:
        return self.data.decode(self._response.encoding or "utf-8", errors="replace")

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.text if as_text else self.data

    def get_json(self, force: bool = False, silent: bool = False) -> Any:
        """The body parsed as JSON; None when it is not JSON (or, with ``silent``, unparsable)."""
        if not (force or self.is_json):
            return None
        try:
            return jsonlib.loads(self.data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        return self.get_json()

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status}]>"


class TestClient:
    """Flask's test client API over prelabel's app: requests run in this process, so mocks
    and patches a test sets up apply to the model. Use it as a context manager (or call
    ``close()``): the model's server starts on the first request or on ``__enter__``."""

    __test__ = False

    def __init__(self, app: LabelStudioMLApp):
        self.app = app
        self._client: Any = None
        self._home: str | None = None

    def __enter__(self) -> TestClient:
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> Any:
        if self._client is not None:
            return self._client
        with warnings.catch_warnings():  # starlette's notice about its own httpx dependency, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            from starlette.testclient import TestClient as StarletteClient

        overrides: dict[str, Any] = {"log_format": "text"}
        if not os.environ.get("PRELABEL_HOME"):
            self._home = tempfile.mkdtemp(prefix="prelabel-test-client-")
            overrides["prelabel_home"] = self._home
        asgi, runtime = self.app.build(**overrides)
        client = StarletteClient(asgi, raise_server_exceptions=False)
        client.__enter__()
        if not runtime.ready.wait(120):
            client.__exit__(None, None, None)
            raise TimeoutError(
                f"{self.app.model_class.__name__} did not load in 120 s: {runtime.setup_error or 'still loading'}"
            )
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def open(
        self,
        path: str = "/",
        method: str = "GET",
        data: Any = None,
        json: Any = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        query_string: dict[str, Any] | str | None = None,
        **_: Any,
    ) -> TestResponse:
        """One request. ``data`` may be bytes or text (sent as it is, with ``content_type``) or
        a dict (form-encoded, as Flask does); ``json`` is serialized as JSON."""
        client = self._start()
        headers = dict(headers or {})
        content: bytes | None = None
        if json is not None:
            content = jsonlib.dumps(json).encode()
            content_type = content_type or "application/json"
        elif isinstance(data, dict):
            content = urlencode(data, doseq=True).encode()
            content_type = content_type or "application/x-www-form-urlencoded"
        elif isinstance(data, str):
            content = data.encode()
        elif data is not None:
            content = bytes(data)
        if content_type:
            headers["Content-Type"] = content_type
        if query_string:
            query = query_string if isinstance(query_string, str) else urlencode(query_string, doseq=True)
            path = f"{path}{'&' if '?' in path else '?'}{query}"
        return TestResponse(client.request(method.upper(), path, content=content, headers=headers))

    def get(self, path: str = "/", **kwargs: Any) -> TestResponse:
        return self.open(path, "GET", **kwargs)

    def post(self, path: str = "/", **kwargs: Any) -> TestResponse:
        return self.open(path, "POST", **kwargs)

    def put(self, path: str = "/", **kwargs: Any) -> TestResponse:
        return self.open(path, "PUT", **kwargs)

    def patch(self, path: str = "/", **kwargs: Any) -> TestResponse:
        return self.open(path, "PATCH", **kwargs)

    def delete(self, path: str = "/", **kwargs: Any) -> TestResponse:
        return self.open(path, "DELETE", **kwargs)

    def head(self, path: str = "/", **kwargs: Any) -> TestResponse:
        return self.open(path, "HEAD", **kwargs)

    def options(self, path: str = "/", **kwargs: Any) -> TestResponse:
        return self.open(path, "OPTIONS", **kwargs)


class LabelStudioMLApp:
    """What :func:`init_app` returns: a model class served by prelabel, with the parts of
    Flask's app API that upstream's ``_wsgi.py`` and tests use."""

    def __init__(self, model_class: type, basic_auth_user: str | None = None, basic_auth_pass: str | None = None):
        self.model_class = model_class
        self.backend_class: type[LabelStudioMLAdapter] = adapt(model_class, model_file=_model_file(model_class))
        self.config: dict[str, Any] = {"TESTING": False, "DEBUG": False}
        self.basic_auth = (basic_auth_user, basic_auth_pass) if basic_auth_user and basic_auth_pass else None
        self._asgi: Any = None
        self._lock = threading.Lock()

    def settings(self, **overrides: Any) -> Any:
        """prelabel's CoreSettings from the environment, with init_app's Basic auth."""
        from prelabel.settings import CoreSettings

        if self.basic_auth is not None:
            overrides.setdefault("basic_auth_user", self.basic_auth[0])
            overrides.setdefault("basic_auth_pass", self.basic_auth[1])
        return CoreSettings(**overrides)

    def build(self, **overrides: Any) -> tuple[Any, Any]:
        """A new prelabel ASGI app for the model, and its Runtime."""
        from prelabel.runtime import Runtime
        from prelabel.server.app import create_app

        runtime = Runtime(self.backend_class, self.settings(**overrides))
        return create_app(runtime), runtime

    def test_client(self, use_cookies: bool = True, **_: Any) -> TestClient:
        return TestClient(self)

    def run(self, host: str | None = None, port: int | None = None, debug: bool | None = None, **_: Any) -> None:
        """Serve the model until interrupted, as ``prelabel serve --model-file`` does (one
        process; ``debug`` is ignored: there is no reloader)."""
        import uvicorn

        from prelabel.logsetup import configure_logging
        from prelabel.settings import KEEP_ALIVE_SECONDS

        core = self.settings()
        if not _logging_configured():  # _wsgi.py configures logging itself; keep what it set
            configure_logging(core.log_level, core.log_format)
        asgi, _runtime = self.build()
        uvicorn.run(
            asgi,
            host=host or "127.0.0.1",
            port=port or 5000,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """ASGI: ``uvicorn _wsgi:app`` (the app is built on the first event)."""
        if self._asgi is None:
            with self._lock:
                if self._asgi is None:
                    self._asgi = self.build()[0]
        await self._asgi(scope, receive, send)


def _model_file(model_class: type) -> str | None:
    import inspect

    try:
        return f"{inspect.getfile(model_class)}:{model_class.__name__}"
    except (TypeError, OSError):
        return None


def _logging_configured() -> bool:
    import logging

    return bool(logging.getLogger().handlers)


def init_app(
    model_class: type, basic_auth_user: str | None = None, basic_auth_pass: str | None = None, **_: Any
) -> LabelStudioMLApp:
    """Serve ``model_class`` (a LabelStudioMLBase subclass) with prelabel's server. Basic auth
    comes from the arguments, else BASIC_AUTH_USER/BASIC_AUTH_PASS, as upstream."""
    from prelabel.compat.distributions import refuse_two_label_studio_ml

    refuse_two_label_studio_ml()
    if not is_model_class(model_class):
        raise ValueError(
            f"{model_class!r} is not a subclass of LabelStudioMLBase "
            "(from label_studio_ml.model import LabelStudioMLBase)"
        )
    return LabelStudioMLApp(model_class, basic_auth_user, basic_auth_pass)


__all__ = ["LabelStudioMLApp", "TestClient", "TestResponse", "init_app"]
