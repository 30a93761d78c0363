"""``prelabel new``."""

from __future__ import annotations

import click


@click.command()
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["text", "image"]),
    default="text",
    show_default=True,
    help="text: Choices on Text; image: RectangleLabels on Image.",
)
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
