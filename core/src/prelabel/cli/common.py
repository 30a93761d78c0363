"""What the commands share: settings read from the environment with messages that say what
to set, and a backend resolved by name, import path or model file."""

from __future__ import annotations

import os

import click
import pydantic

from prelabel.plugins import PluginError, load_backend_class
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


def load_settings(backend_class):
    """Read core and backend settings from the environment, or exit with a clear message."""
    try:
        core = CoreSettings()
        settings = backend_class.Settings()
        backend_class.preflight(settings, core)
    except pydantic.ValidationError as exc:
        raise click.ClickException(
            f"{backend_class.backend_id}: invalid settings\n{settings_error_message(exc)}"
        ) from None
    except ValueError as exc:
        raise click.ClickException(f"{backend_class.backend_id}: {exc}") from None
    return core, settings


def resolve_backend(spec: str):
    try:
        return load_backend_class(spec)
    except (PluginError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None


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
