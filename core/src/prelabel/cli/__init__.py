"""The ``prelabel`` command line: one module per command (serve, plugins, new, doctor, predict,
worker), the helpers they share in ``prelabel.cli.common``, and the commands plugins register."""

from __future__ import annotations

import sys

import click

from prelabel import __version__
from prelabel.cli.common import load_settings, model_file_spec, resolve_backend, settings_error_message
from prelabel.cli.doctor import doctor
from prelabel.cli.new import new
from prelabel.cli.plugins import list_plugins
from prelabel.cli.predict import predict_command
from prelabel.cli.serve import serve
from prelabel.cli.worker import worker_command
from prelabel.plugins import make_plugin_manager

__all__ = ["build_cli", "cli", "load_settings", "main", "model_file_spec", "resolve_backend", "settings_error_message"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prelabel")
def cli() -> None:
    """prelabel: Label Studio ML backends as plugins."""


for _command in (serve, list_plugins, new, doctor, predict_command, worker_command):
    cli.add_command(_command)


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
