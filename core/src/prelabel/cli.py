"""The ``prelabel`` command line: serve, plugins, new (and commands plugins register)."""

from __future__ import annotations

import json
import os
import sys
import tempfile

import click
import pydantic

from prelabel import __version__
from prelabel.plugins import PluginError, collect_backends, load_backend_class, make_plugin_manager, plugin_versions
from prelabel.settings import CoreSettings


def settings_error_message(exc: pydantic.ValidationError) -> str:
    """'MOONSHOT_API_KEY is required' rather than pydantic's field dump."""
    lines = []
    for err in exc.errors():
        name = str(err["loc"][0]).upper() if err.get("loc") else "?"
        if err["type"] == "missing":
            lines.append(f"{name} is required: set the environment variable {name}")
        else:
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def load_settings(backend_class):  # noqa: ANN001, ANN201
    """Read core and backend settings from the environment, or exit with a clear message."""
    try:
        core = CoreSettings()
        settings = backend_class.Settings()
        backend_class.preflight(settings, core)
    except pydantic.ValidationError as exc:
        raise click.ClickException(
            f"{backend_class.backend_id}: invalid settings\n{settings_error_message(exc)}") from None
    except ValueError as exc:
        raise click.ClickException(f"{backend_class.backend_id}: {exc}") from None
    return core, settings


def resolve_backend(spec: str):  # noqa: ANN201
    try:
        return load_backend_class(spec)
    except (PluginError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prelabel")
def cli() -> None:
    """prelabel: Label Studio ML backends as plugins."""


@cli.command()
@click.argument("backend")
@click.option("--host", default=lambda: os.environ.get("BIND_HOST", "0.0.0.0"), show_default="0.0.0.0 or $BIND_HOST",
              help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: $BIND_PORT, else the plugin's own port).")
@click.option("--workers", type=int, default=None, help="Server processes (default: $WORKER_COUNT, else 1).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default: $LOG_LEVEL, else INFO).")
def serve(backend: str, host: str, port: int | None, workers: int | None, log_level: str | None) -> None:
    """Serve BACKEND (a plugin name such as text_classifier, or module:Class) to Label Studio."""
    import uvicorn

    from prelabel.logsetup import configure_logging

    backend_class = resolve_backend(backend)
    if log_level:
        os.environ["LOG_LEVEL"] = log_level
    core, settings = load_settings(backend_class)
    configure_logging(core.log_level, core.log_format)
    port = port or int(os.environ.get("BIND_PORT") or backend_class.default_port)
    workers = workers or int(os.environ.get("WORKER_COUNT") or 1)
    click.echo(f"prelabel {__version__}: serving {backend_class.backend_id} on http://{host}:{port} "
               f"({workers} process{'es' if workers > 1 else ''})", err=True)
    if workers > 1:
        os.environ["PRELABEL_SERVE_BACKEND"] = backend
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="prelabel-metrics-"))
        uvicorn.run("prelabel.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_config=None, access_log=False, timeout_graceful_shutdown=10)
        return
    from prelabel.runtime import Runtime
    from prelabel.server.app import create_app

    app = create_app(Runtime(backend_class, core, settings))
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_plugins(as_json: bool) -> None:
    """List installed backends with their versions and capabilities."""
    registry = collect_backends(make_plugin_manager())
    versions = plugin_versions()
    rows = []
    for bid, cls in sorted(registry.backends.items()):
        rows.append({**cls.capabilities(), "plugin": registry.sources[bid],
                     "version": versions.get(registry.sources[bid], "?")})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no prelabel plugins installed (pip install prelabel-text-classifier, for example)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("plugin", "version", "port", "controls", "objects", "batch", "trainable")
    for r in rows:
        table.add_row(r["backend_id"], r["version"], str(r["default_port"]), ", ".join(r["control_tags"]),
                      ", ".join(r["object_tags"]), str(r["max_batch_size"]), "yes" if r["trainable"] else "no")
    Console().print(table)


@cli.command()
@click.argument("name")
@click.option("--dir", "directory", default="plugins", show_default=True, help="Where to create the package.")
def new(name: str, directory: str) -> None:
    """Scaffold a plugin package NAME that passes the conformance suite as generated."""
    from prelabel.scaffold import scaffold_plugin

    try:
        path = scaffold_plugin(name, directory)
    except (ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {path}\nnext: pip install -e {path} && pytest {path}/tests")


def build_cli() -> click.Group:
    """The CLI with every installed plugin's commands added."""
    pm = make_plugin_manager()
    pm.hook.register_commands(cli=cli)
    return cli


def main() -> None:
    try:
        build_cli()(prog_name="prelabel")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
