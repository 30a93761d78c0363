"""``prelabel doctor``."""

from __future__ import annotations

import click
import pydantic

from prelabel.cli.common import resolve_backend, settings_error_message
from prelabel.settings import CoreSettings


def _label_studio_checks(core: CoreSettings) -> list[tuple[str, str, str]]:
    """Label Studio's URL answers /health, and the token is accepted by /api/current-user/whoami."""
    import httpx

    from prelabel.lsauth import LabelStudioAuthError, TokenCache

    if not core.label_studio_url:
        return [
            (
                "Label Studio",
                "skip",
                "LABEL_STUDIO_URL is not set: the backend uses the URL and token Label Studio sends to /setup",
            )
        ]
    base = core.label_studio_url.rstrip("/")
    rows = []
    with httpx.Client(timeout=10.0) as client:
        try:
            resp = client.get(f"{base}/health")
        except httpx.HTTPError as exc:
            return [
                (
                    "Label Studio URL",
                    "fail",
                    f"cannot reach {base} ({type(exc).__name__}: {exc}): check "
                    "LABEL_STUDIO_URL and that Label Studio is running",
                )
            ]
        if resp.status_code != 200:
            return [
                (
                    "Label Studio URL",
                    "fail",
                    f"{base}/health answered {resp.status_code}: is LABEL_STUDIO_URL the address of Label Studio?",
                )
            ]
        rows.append(("Label Studio URL", "pass", f"{base} is up"))
        if core.label_studio_api_key is None:
            rows.append(
                ("Label Studio token", "skip", "LABEL_STUDIO_API_KEY is not set: the token /setup sends is used")
            )
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
            rows.append(
                (
                    "Label Studio token",
                    "fail",
                    f"Label Studio refused LABEL_STUDIO_API_KEY ({resp.status_code})"
                    ": create an access token under Account & Settings and set it",
                )
            )
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
        return (
            "label config",
            "fail",
            f"{path}: the {backend_class.backend_id} backend supports "
            f"{describe_supports(backend_class.supports)}; this label config has {config.describe()}",
        )
    return ("label config", "pass", f"{path}: fills " + ", ".join(f"{c.tag} {c.name!r}" for c in controls))


@click.command()
@click.argument("backend")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A label config (XML file) to check against the backend.",
)
def doctor(backend: str, config_file: str | None) -> None:
    """Check BACKEND's settings, its provider or model, Label Studio's URL and token, and a
    label config; print a table and exit 1 if any check fails."""
    from rich.console import Console
    from rich.table import Table

    backend_class = resolve_backend(backend)
    rows: list[tuple[str, str, str]] = [
        (
            "plugin",
            "pass",
            f"{backend_class.backend_id} ({backend_class.__module__}, port {backend_class.default_port})",
        )
    ]
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
