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
from prelabel.settings import KEEP_ALIVE_SECONDS, CoreSettings


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


def load_settings(backend_class):
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


def resolve_backend(spec: str):
    try:
        return load_backend_class(spec)
    except (PluginError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prelabel")
def cli() -> None:
    """prelabel: Label Studio ML backends as plugins."""


def model_file_spec(model_file: str) -> str:
    """``--model-file``: the absolute ``path.py[:Class]`` (worker processes load it again), and
    MODEL_DIR, where upstream models keep their files, defaulted to PRELABEL_HOME/models/<file>."""
    from prelabel.compat.loader import parse_model_spec

    try:
        path, name = parse_model_spec(model_file)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    if not os.environ.get("MODEL_DIR"):
        try:
            home = CoreSettings().prelabel_home
        except pydantic.ValidationError:
            home = None  # load_settings reports it
        if home is not None:
            model_dir = home / "models" / path.stem
            model_dir.mkdir(parents=True, exist_ok=True)
            os.environ["MODEL_DIR"] = str(model_dir)
    return f"{path}:{name}" if name else str(path)


@cli.command()
@click.argument("backend", required=False)
@click.option("--model-file", default=None, metavar="PATH.py[:CLASS]",
              help="Serve a label-studio-ml-backend model.py unchanged instead of a plugin (port 9090).")
@click.option("--host", default=lambda: os.environ.get("BIND_HOST", "0.0.0.0"), show_default="0.0.0.0 or $BIND_HOST",
              help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: $BIND_PORT, else the plugin's own port).")
@click.option("--workers", type=int, default=None, help="Server processes (default: $WORKER_COUNT, else 1).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default: $LOG_LEVEL, else INFO).")
@click.option("--header-timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="Answer 408 and close a connection whose request headers take longer (slowloris).")
@click.option("--body-timeout", type=float, default=15.0, show_default=True, metavar="SECONDS",
              help="Answer 408 and close a connection whose request body pauses longer.")
@click.option("--shutdown-grace", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="On SIGTERM, how long requests in flight may finish; the rest get 503 with Retry-After.")
def serve(backend: str | None, model_file: str | None, host: str, port: int | None, workers: int | None,
          log_level: str | None, header_timeout: float, body_timeout: float, shutdown_grace: float) -> None:
    """Serve BACKEND (a plugin name such as text_classifier, or module:Class), or a
    label-studio-ml model file (--model-file model.py[:Class]), to Label Studio."""
    import uvicorn

    from prelabel.logsetup import configure_logging

    if (backend is None) == (model_file is None):
        raise click.UsageError("name a BACKEND, or a label-studio-ml model with --model-file (not both)")
    if model_file is not None:
        backend = model_file_spec(model_file)
    backend_class = resolve_backend(backend)
    if log_level:
        os.environ["LOG_LEVEL"] = log_level
    core, settings = load_settings(backend_class)
    configure_logging(core.log_level, core.log_format)
    port = port or int(os.environ.get("BIND_PORT") or backend_class.default_port)
    workers = workers or int(os.environ.get("WORKER_COUNT") or 1)
    click.echo(f"prelabel {__version__}: serving {backend_class.backend_id} on http://{host}:{port} "
               f"({workers} process{'es' if workers > 1 else ''})", err=True)
    # uvloop and httptools (uvicorn's "standard" extras, installed with prelabel), read
    # timeouts on top of httptools, no uvicorn access log (the middleware writes one line), no
    # X-Forwarded-For rewriting (nothing reads the client address; it is a layer per request)
    options = {"host": host, "port": port, "log_config": None, "access_log": False, "loop": "uvloop",
               "proxy_headers": False,
               "timeout_graceful_shutdown": shutdown_grace, "timeout_keep_alive": KEEP_ALIVE_SECONDS}
    if workers > 1:
        os.environ["PRELABEL_SERVE_BACKEND"] = backend
        os.environ["PRELABEL_HEADER_TIMEOUT"] = str(header_timeout)
        os.environ["PRELABEL_BODY_TIMEOUT"] = str(body_timeout)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="prelabel-metrics-"))
        from prelabel.server.protocol import TimeoutHttpToolsProtocol  # reads the two timeouts above

        uvicorn.run("prelabel.server.app:app_from_env", factory=True, workers=workers,
                    http=TimeoutHttpToolsProtocol, **options)
        return
    from prelabel.runtime import Runtime
    from prelabel.server.app import create_app
    from prelabel.server.protocol import protocol_with_timeouts

    app = create_app(Runtime(backend_class, core, settings), gc_tuning=True)
    uvicorn.run(app, http=protocol_with_timeouts(header_timeout, body_timeout), **options)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_plugins(as_json: bool) -> None:
    """List installed backends with their versions and capabilities."""
    registry = collect_backends(make_plugin_manager())
    versions = plugin_versions()
    rows = []
    for bid, cls in sorted(registry.backends.items()):
        rows.append({**_capabilities_in_force(cls), "plugin": registry.sources[bid],
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


def _capabilities_in_force(cls):
    """The backend's capabilities with the limits its settings set in this environment (the
    class defaults where its settings cannot be read, e.g. a required key is unset)."""
    from prelabel.backend import capabilities_of, limits_in_force

    try:
        return capabilities_of(cls, limits_in_force(cls, cls.Settings()))
    except (pydantic.ValidationError, ValueError):
        return capabilities_of(cls)


@cli.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["text", "image"]), default="text", show_default=True,
              help="text: Choices on Text; image: RectangleLabels on Image.")
@click.option("--dir", "directory", default="plugins", show_default=True, help="Where to create the package.")
def new(name: str, kind: str, directory: str) -> None:
    """Scaffold plugin NAME: the package, its tests and .env.example and, in the prelabel
    repository, its ci/images.py row on a free port with its Dockerfile and compose files."""
    from prelabel.scaffold import scaffold_plugin

    try:
        path = scaffold_plugin(name, directory, kind)
    except (ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {path}\nnext: pip install -e {path} && pytest {path}/tests")


def _label_studio_checks(core: CoreSettings) -> list[tuple[str, str, str]]:
    """Label Studio's URL answers /health, and the token is accepted by /api/current-user/whoami."""
    import httpx

    from prelabel.lsauth import LabelStudioAuthError, TokenCache

    if not core.label_studio_url:
        return [("Label Studio", "skip", "LABEL_STUDIO_URL is not set: the backend uses the URL and token "
                 "Label Studio sends to /setup")]
    base = core.label_studio_url.rstrip("/")
    rows = []
    with httpx.Client(timeout=10.0) as client:
        try:
            resp = client.get(f"{base}/health")
        except httpx.HTTPError as exc:
            return [("Label Studio URL", "fail", f"cannot reach {base} ({type(exc).__name__}: {exc}): check "
                     "LABEL_STUDIO_URL and that Label Studio is running")]
        if resp.status_code != 200:
            return [("Label Studio URL", "fail", f"{base}/health answered {resp.status_code}: is LABEL_STUDIO_URL "
                     "the address of Label Studio?")]
        rows.append(("Label Studio URL", "pass", f"{base} is up"))
        if core.label_studio_api_key is None:
            rows.append(("Label Studio token", "skip", "LABEL_STUDIO_API_KEY is not set: the token /setup sends "
                         "is used"))
            return rows
        try:
            header = TokenCache(client).header(base, core.label_studio_api_key.get_secret_value())
            resp = client.get(f"{base}/api/current-user/whoami", headers={"Authorization": header})
        except (LabelStudioAuthError, httpx.HTTPError) as exc:
            rows.append(("Label Studio token", "fail", str(exc)))
            return rows
        if resp.status_code == 200:
            who = resp.json().get("email") or resp.json().get("username") or "?"
            rows.append(("Label Studio token", "pass", f"accepted (user {who})"))
        else:
            rows.append(("Label Studio token", "fail", f"Label Studio refused LABEL_STUDIO_API_KEY ({resp.status_code})"
                         ": create an access token under Account & Settings and set it"))
    return rows


def _config_check(backend_class, path: str) -> tuple[str, str, str]:
    from pathlib import Path

    from prelabel.backend import describe_supports
    from prelabel.labelconfig import LabelConfigError, parse_label_config

    try:
        config = parse_label_config(Path(path).read_text(encoding="utf-8"))
    except (OSError, LabelConfigError) as exc:
        return ("label config", "fail", f"{path}: {exc}")
    backend = backend_class.__new__(backend_class)  # supported_controls needs no weights nor settings
    controls = backend.supported_controls(config)
    if not controls:
        return ("label config", "fail", f"{path}: the {backend_class.backend_id} backend supports "
                f"{describe_supports(backend_class.supports)}; this label config has {config.describe()}")
    return ("label config", "pass", f"{path}: fills " + ", ".join(f"{c.tag} {c.name!r}" for c in controls))


@cli.command()
@click.argument("backend")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="A label config (XML file) to check against the backend.")
def doctor(backend: str, config_file: str | None) -> None:
    """Check BACKEND's settings, its provider or model, Label Studio's URL and token, and a
    label config; print a table and exit 1 if any check fails."""
    from rich.console import Console
    from rich.table import Table

    backend_class = resolve_backend(backend)
    rows: list[tuple[str, str, str]] = [("plugin", "pass", f"{backend_class.backend_id} "
                                         f"({backend_class.__module__}, port {backend_class.default_port})")]
    core = settings = None
    try:
        core = CoreSettings()
        settings = backend_class.Settings()
        backend_class.preflight(settings, core)
        rows.append(("settings", "pass", "all required settings are set"))
    except pydantic.ValidationError as exc:
        rows.append(("settings", "fail", settings_error_message(exc)))
    except ValueError as exc:
        rows.append(("settings", "fail", str(exc)))
    if rows[-1][1] == "pass":
        found = backend_class.doctor(settings, core)
        rows += [(str(name), "pass" if ok else "fail", str(detail)) for name, ok, detail in found or []]
    else:
        rows.append((f"{backend_class.backend_id} checks", "skip", "fix the settings first"))
    if core is not None:
        rows += _label_studio_checks(core)
    if config_file:
        rows.append(_config_check(backend_class, config_file))
    table = Table("check", "result", "detail", title=f"prelabel doctor {backend_class.backend_id}")
    style = {"pass": "green", "fail": "bold red", "skip": "yellow"}
    for name, status, detail in rows:
        table.add_row(name, f"[{style[status]}]{status}[/]", detail)
    Console(width=max(100, Console().width)).print(table)
    if any(status == "fail" for _, status, _ in rows):
        raise SystemExit(1)


def _add_core_commands() -> None:
    from prelabel.predict_command import predict_command
    from prelabel.worker_command import worker_command

    cli.add_command(predict_command)
    cli.add_command(worker_command)


_add_core_commands()


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
