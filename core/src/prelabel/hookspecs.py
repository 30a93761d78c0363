"""Pluggy hook specifications for prelabel plugins.

A plugin package exposes a module under the entry-point group ``prelabel``; that module
implements some of these hooks with ``@prelabel.hookimpl``. Hooks are always called with
keyword arguments, and a hookimpl may accept fewer arguments than its spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from prelabel.backend import Backend

PROJECT_NAME = "prelabel"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered something invalid."""


hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Called once when the plugin manager is built: call ``register(BackendClass)`` for each
    backend the plugin provides. Core validates and deduplicates what is registered."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Called when the ``prelabel`` command line is built: add click commands to ``cli``."""
