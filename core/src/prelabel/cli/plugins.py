"""``prelabel plugins``."""

from __future__ import annotations

import json

import click
import pydantic

from prelabel.plugins import collect_backends, make_plugin_manager, plugin_versions


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_plugins(as_json: bool) -> None:
    """List installed backends with their versions and capabilities."""
    registry = collect_backends(make_plugin_manager())
    versions = plugin_versions()
    rows = []
    for bid, cls in sorted(registry.backends.items()):
        rows.append(
            {
                **_capabilities_in_force(cls),
                "plugin": registry.sources[bid],
                "version": versions.get(registry.sources[bid], "?"),
            }
        )
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
        table.add_row(
            r["backend_id"],
            r["version"],
            str(r["default_port"]),
            ", ".join(r["control_tags"]),
            ", ".join(r["object_tags"]),
            str(r["max_batch_size"]),
            "yes" if r["trainable"] else "no",
        )
    Console().print(table)


def _capabilities_in_force(cls):
    """The backend's capabilities with the limits its settings set in this environment (the
    class defaults where its settings cannot be read, e.g. a required key is unset)."""
    from prelabel.backend import capabilities_of, limits_in_force

    try:
        return capabilities_of(cls, limits_in_force(cls, cls.Settings()))
    except (pydantic.ValidationError, ValueError):
        return capabilities_of(cls)
