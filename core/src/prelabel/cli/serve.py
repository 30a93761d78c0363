"""``prelabel serve``."""

from __future__ import annotations

import os
import tempfile

import click

from prelabel import __version__
from prelabel.cli.common import load_settings, model_file_spec, resolve_backend
from prelabel.settings import KEEP_ALIVE_SECONDS


@click.command()
@click.argument("backend", required=False)
@click.option(
    "--model-file",
    default=None,
    metavar="PATH.py[:CLASS]",
    help="Serve a label-studio-ml-backend model.py unchanged instead of a plugin (port 9090).",
)
@click.option(
    "--host",
    default=lambda: os.environ.get("BIND_HOST", "0.0.0.0"),
    show_default="0.0.0.0 or $BIND_HOST",
    help="Interface to listen on.",
)
@click.option("--port", type=int, default=None, help="Port (default: $BIND_PORT, else the plugin's own port).")
@click.option("--workers", type=int, default=None, help="Server processes (default: $WORKER_COUNT, else 1).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default: $LOG_LEVEL, else INFO).")
@click.option(
    "--header-timeout",
    type=float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Answer 408 and close a connection whose request headers take longer (slowloris).",
)
@click.option(
    "--body-timeout",
    type=float,
    default=15.0,
    show_default=True,
    metavar="SECONDS",
    help="Answer 408 and close a connection whose request body pauses longer.",
)
@click.option(
    "--shutdown-grace",
    type=float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, how long requests in flight may finish; the rest get 503 with Retry-After.",
)
def serve(
    backend: str | None,
    model_file: str | None,
    host: str,
    port: int | None,
    workers: int | None,
    log_level: str | None,
    header_timeout: float,
    body_timeout: float,
    shutdown_grace: float,
) -> None:
    """Serve BACKEND (a plugin name such as text_classifier, or module:Class), or a
    label-studio-ml model file (--model-file model.py[:Class]), to Label Studio."""
    import uvicorn

    from prelabel.logsetup import coalesce_access_lines, configure_logging

    if (backend is None) == (model_file is None):
        raise click.UsageError("name a BACKEND, or a label-studio-ml model with --model-file (not both)")
    if model_file is not None:
        backend = model_file_spec(model_file)
    backend_class = resolve_backend(backend)
    if log_level:
        os.environ["LOG_LEVEL"] = log_level
    core, settings = load_settings(backend_class)
    configure_logging(core.log_level, core.log_format)
    coalesce_access_lines()  # a served process: the access lines of one loop iteration in one write
    port = port or int(os.environ.get("BIND_PORT") or backend_class.default_port)
    workers = workers or int(os.environ.get("WORKER_COUNT") or 1)
    click.echo(
        f"prelabel {__version__}: serving {backend_class.backend_id} on http://{host}:{port} "
        f"({workers} process{'es' if workers > 1 else ''})",
        err=True,
    )
    # uvloop and httptools (uvicorn's "standard" extras, installed with prelabel), read
    # timeouts on top of httptools, no uvicorn access log (the middleware writes one line), no
    # X-Forwarded-For rewriting (nothing reads the client address; it is a layer per request)
    options = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "loop": "uvloop",
        "proxy_headers": False,
        "timeout_graceful_shutdown": shutdown_grace,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
    if workers > 1:
        os.environ["PRELABEL_SERVE_BACKEND"] = backend
        os.environ["PRELABEL_HEADER_TIMEOUT"] = str(header_timeout)
        os.environ["PRELABEL_BODY_TIMEOUT"] = str(body_timeout)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="prelabel-metrics-"))
        from prelabel.server.protocol import TimeoutHttpToolsProtocol  # reads the two timeouts above

        uvicorn.run(
            "prelabel.server.app:app_from_env", factory=True, workers=workers, http=TimeoutHttpToolsProtocol, **options
        )
        return
    from prelabel.runtime import Runtime
    from prelabel.server.app import create_app
    from prelabel.server.protocol import protocol_with_timeouts

    app = create_app(Runtime(backend_class, core, settings), gc_tuning=True)
    uvicorn.run(app, http=protocol_with_timeouts(header_timeout, body_timeout), **options)
