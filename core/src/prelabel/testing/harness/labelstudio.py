"""Run a real Label Studio headless on loopback, for end-to-end tests and ``make demo``.

Label Studio (LS) is installed in its own virtualenv by ``scripts/install-label-studio.sh``
(``<repo>/.venv-ls``), never in the project's environment. :class:`LabelStudioServer`
starts ``label-studio start`` with the recipe of docs/label-studio-protocol.md section 2
(SQLite in a data directory, a known admin user and legacy token, loopback ML backends
allowed, no outbound calls), waits until ``GET /health`` answers on the chosen port, and
hands out credentials:

- the legacy token (``Authorization: Token <legacy>``), enabled for the organization at
  its creation (first start on a data directory);
- a Personal Access Token (PAT, a JWT refresh token), cached in the data directory so a
  restarted server on the same directory hands out the same PAT;
- a short-lived access token (``Authorization: Bearer <access>``) derived from the PAT;
- ready-made ``label_studio_sdk`` clients for both kinds of key.

Example::

    with LabelStudioServer(tmp_path / "ls") as ls:
        client = ls.client()                 # PAT-based SDK client
        project = client.projects.create(title="t", label_config=CONFIG)

Only the standard library, ``httpx`` and (lazily) ``label_studio_sdk`` are imported.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import httpx

if TYPE_CHECKING:  # pragma: no cover - typing only
    from label_studio_sdk.client import LabelStudio

__all__ = [
    "DEFAULT_LEGACY_TOKEN",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "LABEL_STUDIO_BIN_ENV",
    "LOG_NAME",
    "PAT_CACHE_NAME",
    "LabelStudioError",
    "LabelStudioServer",
    "PortInUseError",
    "copy_data_dir",
    "find_label_studio_executable",
    "free_port",
]

#: Environment variable naming the ``label-studio`` executable to use.
LABEL_STUDIO_BIN_ENV = "PRELABEL_LABEL_STUDIO_BIN"
DEFAULT_USERNAME = "admin@example.com"
DEFAULT_PASSWORD = "prelabel-e2e-password"
#: LS requires more than 5 characters; 40 hex characters look like a real LS token.
DEFAULT_LEGACY_TOKEN = "0123456789abcdef0123456789abcdef01234567"

#: File in the data directory that caches the PAT across restarts.
PAT_CACHE_NAME = ".prelabel-pat.json"
#: Default log file name, inside the data directory.
LOG_NAME = "prelabel-label-studio.log"

#: Host environment variables passed through to LS. Everything else is dropped: LS reads
#: about 180 settings through ``get_env(NAME)``, which accepts ``LABEL_STUDIO_NAME``,
#: ``HEARTEX_NAME`` *and the bare ``NAME``*, so stray ``USERNAME``, ``PASSWORD``,
#: ``USER_TOKEN``, ``HOST``, ``PORT``, ``DEBUG``, ``CI``, ``LOG_LEVEL`` ... in the caller's
#: shell would silently change the server. Proxy variables are dropped too, so LS reaches
#: a loopback ML backend directly.
_PASSTHROUGH_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SYSTEMROOT",
)

AuthKind = Literal["pat", "legacy", "bearer"]


class LabelStudioError(RuntimeError):
    """Label Studio could not be started, or did not answer as expected."""


class PortInUseError(LabelStudioError):
    """The chosen port was taken (before the start, or by a race LS lost)."""


def _repo_root_candidates() -> list[Path]:
    """Directories that may be the monorepo root (holding ``.venv-ls``)."""
    here = Path(__file__).resolve()
    candidates: list[Path] = []
    # <repo>/core/src/prelabel/testing/harness/labelstudio.py -> parents[5] == <repo>
    if len(here.parents) > 4:
        candidates.append(here.parents[5])
    cwd = Path.cwd().resolve()
    candidates.extend([cwd, *cwd.parents])
    return candidates


def find_label_studio_executable() -> Path | None:
    """Locate the ``label-studio`` executable, or return ``None``.

    Order: ``$PRELABEL_LABEL_STUDIO_BIN`` (returned even if it does not exist, so that a
    wrong setting fails loudly), then ``.venv-ls/bin/label-studio`` in the repository that
    holds this file, then in the current directory or one of its parents.
    """
    override = os.environ.get(LABEL_STUDIO_BIN_ENV)
    if override:
        return Path(override).expanduser()
    for root in _repo_root_candidates():
        candidate = root / ".venv-ls" / "bin" / "label-studio"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def read_log(path: Path, offset: int = 0) -> str:
    """What a child process wrote to ``path`` after ``offset`` ("" if unreadable)."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def describe_tail(path: Path, text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text`` for an error message, headed by the log's path."""
    text = text.rstrip()
    if not text:
        return f" (log {path} is empty)"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"\n--- last lines of {path} ---\n{tail}"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies (Linux).

    ``atexit`` does not run when a test runner is killed (CI timeout, SIGKILL); without
    this, LS would keep running in its own session. ``prctl`` is looked up here, in the
    parent, so that the child only makes one foreign call between fork and exec.
    ``None`` where prctl is missing.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_pdeathsig


def copy_data_dir(src: Path, dst: Path) -> None:
    """Copy an LS data directory, safely even while a server is using it.

    SQLite databases are copied with the SQLite backup API (a consistent snapshot);
    everything else (the secret key, media, the PAT cache) with :func:`shutil.copy2`.
    The log file is not copied. A server started on ``dst`` restarts in seconds instead of
    running the migrations again, and accepts the same tokens (the JWT signing key lives
    in the data directory).
    """
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.name == LOG_NAME or path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        elif path.suffix in {".sqlite3", ".sqlite", ".db"}:
            with (
                closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as source,
                closing(sqlite3.connect(target)) as dest,
            ):
                source.backup(dest)
        else:
            shutil.copy2(path, target)


class LabelStudioServer:
    """A real Label Studio server on loopback, as a context manager.

    Args:
        data_dir: LS data directory (SQLite database, secret key, uploads, this harness's
            log and PAT cache). Created if missing. Reusing a directory skips the
            migrations and the user creation: a restart takes about 4 s instead of 30-50 s.
        port: TCP port; ``None`` picks a free loopback port.
        host: interface to bind (``--internal-host``). Keep it on loopback.
        executable: the ``label-studio`` console script; default
            :func:`find_label_studio_executable`.
        username: admin e-mail, created on the first start.
        password: admin password, set on the first start.
        legacy_token: the admin's legacy API token, set on the first start.
        log_file: where LS's stdout and stderr go (appended); default
            ``<data_dir>/prelabel-label-studio.log``.
        extra_env: more environment variables for LS (applied last, so they may override
            the recipe).

    Credentials are fixed when a data directory is first used: starting on an existing
    directory with another username or legacy token fails in :meth:`start`; another
    password is silently ignored by LS (the first one stays).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        executable: Path | None = None,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        legacy_token: str = DEFAULT_LEGACY_TOKEN,
        log_file: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if len(legacy_token) <= 5:
            raise ValueError("LS ignores legacy tokens of 5 characters or fewer")
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self._requested_port = port
        self.port: int = port if port is not None else 0
        self.executable = Path(executable) if executable is not None else find_label_studio_executable()
        self.username = username
        self.password = password
        self._legacy_token = legacy_token
        self.log_file = Path(log_file).resolve() if log_file is not None else self.data_dir / LOG_NAME
        self.extra_env = dict(extra_env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._pat: str | None = None
        #: seconds the last :meth:`start` took until ``/health`` answered 200.
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if not self.port:
            raise LabelStudioError("the server has no port yet: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def legacy_token(self) -> str:
        """The admin's legacy API token (``Authorization: Token <legacy>``)."""
        return self._legacy_token

    @property
    def pid(self) -> int | None:
        """Process id of LS (also its process group id), or ``None`` when not started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def pat_cache_file(self) -> Path:
        """Where the PAT is cached (inside the data directory)."""
        return self.data_dir / PAT_CACHE_NAME

    def is_running(self) -> bool:
        """True while the LS process started by :meth:`start` is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------ lifecycle

    def environment(self) -> dict[str, str]:
        """The complete environment LS is started with (see ``_PASSTHROUGH_ENV``)."""
        env = {name: os.environ[name] for name in _PASSTHROUGH_ENV if name in os.environ}
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_USERNAME": self.username,
                "LABEL_STUDIO_PASSWORD": self.password,
                "LABEL_STUDIO_USER_TOKEN": self._legacy_token,
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
                "LABEL_STUDIO_HOST": self.url,
                "ML_BLOCK_LOCAL_IP": "false",
                "SSRF_PROTECTION_ENABLED": "false",
                "SENTRY_DSN": "",
                "FRONTEND_SENTRY_DSN": "",
                "COLLECT_ANALYTICS": "false",
                "LATEST_VERSION_CHECK": "false",
                "PYTHONUNBUFFERED": "1",  # the log shows progress as it happens
            }
        )
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        """The command line used to start LS."""
        return [
            str(self.executable),
            "start",
            "--no-browser",
            "--internal-host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "INFO",
        ]

    def start(self, timeout: float = 180.0) -> LabelStudioServer:
        """Start LS and wait until ``GET /health`` answers 200 on :attr:`port`.

        Also checks that the legacy token authenticates, which catches a data directory
        initialised with other credentials and a foreign server on the port.

        With ``port=None`` a port lost to a race is replaced by another free one (up to 3
        attempts); a port given by the caller is never changed.

        Raises:
            PortInUseError: the port is busy, or LS found it busy and moved away.
            LabelStudioError: the executable is missing, LS exited, or it was not ready
                within ``timeout`` seconds. The message carries the tail of the LS log.
                The process is stopped before raising.
        """
        if self.is_running():
            return self
        if self.executable is None or not self.executable.is_file():
            raise LabelStudioError(
                f"label-studio executable not found ({self.executable or 'no .venv-ls found'}); "
                f"run scripts/install-label-studio.sh or set {LABEL_STUDIO_BIN_ENV}"
            )
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            if self._requested_port is None and (not self.port or attempt > 1):
                self.port = free_port(self.host)
            try:
                return self._start_once(timeout)
            except PortInUseError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self, timeout: float) -> LabelStudioServer:
        if _port_in_use(self.host, self.port) or _port_in_use("localhost", self.port):
            raise PortInUseError(f"port {self.port} is already in use")

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n=== prelabel: {' '.join(self.command())}\n".encode())
            log.flush()
            started = time.monotonic()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.data_dir,
                start_new_session=True,  # own process group: stop() kills all of it
                preexec_fn=_parent_death_signal(),
            )
        atexit.register(self.stop)
        try:
            self._wait_ready(started, timeout)
            self._check_legacy_token()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float, timeout: float) -> None:
        moved_marker = f"Port {self.port} is in use"
        deadline = started + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    raise LabelStudioError(f"label-studio exited with code {code} before it was ready{self._tail()}")
                if moved_marker in self._log_text():
                    raise PortInUseError(f"port {self.port} was taken; LS moved to another port{self._tail()}")
                try:
                    response = http.get(f"{self.url}/health")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LabelStudioError(f"label-studio not ready on {self.url} after {timeout:.0f} s{self._tail()}")
                time.sleep(0.25)

    def _check_legacy_token(self) -> None:
        with self._http() as http:
            response = http.get("/api/current-user/whoami", headers=self.auth_headers("legacy"))
        if response.status_code != 200:
            raise LabelStudioError(
                f"LS on {self.url} is up but rejects the legacy token ({response.status_code} {response.text[:300]}); "
                f"was {self.data_dir} initialised with other credentials?{self._tail()}"
            )
        email = response.json().get("email")
        if email != self.username:
            raise LabelStudioError(f"legacy token belongs to {email!r}, expected {self.username!r}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop LS: SIGTERM to its process group, SIGKILL after ``timeout`` seconds.

        Safe to call more than once; also registered with :mod:`atexit` by :meth:`start`.
        """
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group, leader included
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for LS to exit; its exit code, or ``None`` if not started (or still running
        after ``timeout`` seconds)."""
        proc = self._proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def restart(self, timeout: float = 180.0) -> LabelStudioServer:
        """Stop and start again on the same data directory and port."""
        self.stop()
        return self.start(timeout=timeout)

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"LabelStudioServer({self.data_dir}, port={self.port or None}, {state})"

    # ------------------------------------------------------------------ logs

    def _log_text(self) -> str:
        return read_log(self.log_file, self._log_offset)

    def _tail(self, lines: int = 40) -> str:
        return describe_tail(self.log_file, self._log_text(), lines)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines LS wrote since the last :meth:`start`."""
        return "\n".join(self._log_text().splitlines()[-lines:])

    # ------------------------------------------------------------------ auth

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)

    def health(self) -> httpx.Response:
        """``GET /health`` (no auth)."""
        with self._http() as http:
            return http.get("/health")

    def personal_access_token(self, *, refresh: bool = False) -> str:
        """Return a PAT (a JWT refresh token) for the admin user.

        Order: the in-memory value; the cache file in the data directory if LS still
        accepts it; ``POST /api/token/`` with the legacy token. LS allows one valid PAT
        per user and answers 409 to a second ``POST``; the PAT itself cannot be read back
        (``GET /api/token/`` lists tokens without their signature) and ``/api/token/rotate/``
        needs the full PAT, so on 409 this revokes the listed tokens at
        ``/api/token/blacklist/`` (which accepts the truncated form) and creates a new one.
        That invalidates a PAT held elsewhere for this user. The result is cached.

        Args:
            refresh: ignore the in-memory value and re-validate (or re-create) the PAT.
        """
        if self._pat is not None and not refresh:
            return self._pat
        cached = self._read_pat_cache()
        if cached is not None and self._exchange(cached) is not None:
            self._pat = cached
            return cached
        with self._http() as http:
            headers = self.auth_headers("legacy")
            response = http.post("/api/token/", headers=headers)
            if response.status_code == 409:
                listed = http.get("/api/token/", headers=headers)
                listed.raise_for_status()
                for item in listed.json():
                    http.post(
                        "/api/token/blacklist/",
                        json={"refresh": item["token"]},
                        headers=headers,
                    )
                response = http.post("/api/token/", headers=headers)
            if response.status_code != 201:
                raise LabelStudioError(f"POST /api/token/ -> {response.status_code}: {response.text[:300]}")
        token = str(response.json()["token"])
        self._store_pat(token)
        return token

    def rotate_personal_access_token(self) -> str:
        """Replace the PAT via ``POST /api/token/rotate/`` (the old one is blacklisted)."""
        old = self.personal_access_token()
        with self._http() as http:
            response = http.post(
                "/api/token/rotate/",
                json={"refresh": old},
                headers=self.auth_headers("legacy"),
            )
        if response.status_code != 200:
            raise LabelStudioError(f"POST /api/token/rotate/ -> {response.status_code}: {response.text[:300]}")
        token = str(response.json()["refresh"])
        self._store_pat(token)
        return token

    def access_token(self) -> str:
        """A fresh access token (valid 5 minutes) from ``POST /api/token/refresh/``."""
        access = self._exchange(self.personal_access_token())
        if access is None:
            access = self._exchange(self.personal_access_token(refresh=True))
        if access is None:
            raise LabelStudioError("LS refused to refresh a PAT it just issued")
        return access

    def auth_headers(self, kind: AuthKind = "legacy") -> dict[str, str]:
        """``Authorization`` header for raw HTTP calls.

        ``legacy`` -> ``Token <legacy token>``; ``bearer`` or ``pat`` -> ``Bearer <access
        token>`` (LS rejects the PAT itself in both ``Token`` and ``Bearer`` form).
        """
        if kind == "legacy":
            return {"Authorization": f"Token {self._legacy_token}"}
        if kind in ("pat", "bearer"):
            return {"Authorization": f"Bearer {self.access_token()}"}
        raise ValueError(f"unknown auth kind {kind!r}")

    def client(self, kind: Literal["pat", "legacy"] = "pat", **kwargs: object) -> LabelStudio:
        """A ``label_studio_sdk`` client for this server.

        ``pat`` passes the PAT as ``api_key`` (the SDK exchanges it for access tokens);
        ``legacy`` passes the legacy token. ``kwargs`` go to ``LabelStudio(...)``
        (e.g. ``max_retries=0``: the SDK retries HTTP 500 twice by default).
        """
        from label_studio_sdk.client import LabelStudio

        if kind == "pat":
            key = self.personal_access_token()
        elif kind == "legacy":
            key = self._legacy_token
        else:
            raise ValueError(f"unknown client kind {kind!r}")
        return LabelStudio(base_url=self.url, api_key=key, **kwargs)  # type: ignore[arg-type]

    def _exchange(self, pat: str) -> str | None:
        """Access token for ``pat``, or ``None`` when LS refuses it."""
        with self._http() as http:
            response = http.post("/api/token/refresh/", json={"refresh": pat})
        if response.status_code != 200:
            return None
        return str(response.json()["access"])

    def _read_pat_cache(self) -> str | None:
        try:
            data = json.loads(self.pat_cache_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("username") != self.username:
            return None
        token = data.get("token")
        return token if isinstance(token, str) and token else None

    def _store_pat(self, token: str) -> None:
        self._pat = token
        tmp = self.pat_cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"username": self.username, "token": token}))
        tmp.chmod(0o600)
        tmp.replace(self.pat_cache_file)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run LS in the foreground until Ctrl-C (``make demo``).

    ``python -m prelabel.testing.harness.labelstudio --data-dir .demo/ls --port 8080`` prints the
    URL and the credentials as ``KEY=value`` lines (shell-friendly), then waits.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--executable", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    server = LabelStudioServer(args.data_dir, port=args.port, host=args.host, executable=args.executable)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start(timeout=args.timeout)
        print(f"LABEL_STUDIO_URL={server.url}")
        print(f"LABEL_STUDIO_USERNAME={server.username}")
        print(f"LABEL_STUDIO_PASSWORD={server.password}")
        print(f"LABEL_STUDIO_LEGACY_TOKEN={server.legacy_token}")
        print(f"LABEL_STUDIO_API_KEY={server.personal_access_token()}")
        print(
            f"# ready in {server.startup_seconds:.1f} s; log: {server.log_file}; Ctrl-C stops",
            flush=True,
        )
        code = server.wait()
        print(f"label-studio exited with code {code}\n{server.log_tail()}")
        return 1
    except KeyboardInterrupt:
        return 0
    except LabelStudioError as error:
        print(error)
        return 1
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
