"""The plugin manager: entry points, the PRELABEL_PLUGINS allowlist and backend registry."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from dataclasses import dataclass, field
from types import ModuleType

import pluggy

from prelabel import hookspecs
from prelabel.backend import Backend, check_declaration
from prelabel.hookspecs import PluginError

log = logging.getLogger(__name__)

ENTRYPOINT_GROUP = "prelabel"


@dataclass
class BackendRegistry:
    """Backends registered through the ``register_backends`` hook, keyed by ``backend_id``."""

    backends: dict[str, type[Backend]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def register(self, backend_class: type[Backend], source: str = "?") -> None:
        if not (isinstance(backend_class, type) and issubclass(backend_class, Backend)):
            raise PluginError(f"{source} registered {backend_class!r}, which is not a prelabel.Backend subclass")
        check_declaration(backend_class)
        bid = backend_class.backend_id
        existing = self.backends.get(bid)
        if existing is not None and existing is not backend_class:
            raise PluginError(f"backend id {bid!r} is registered twice: by {self.sources[bid]} and by {source}")
        self.backends[bid] = backend_class
        self.sources[bid] = source


def _allowlist() -> set[str] | None:
    raw = os.environ.get("PRELABEL_PLUGINS", "").strip()
    if not raw:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def make_plugin_manager(
    load_entrypoints: bool = True, plugins: list[ModuleType | object] | None = None
) -> pluggy.PluginManager:
    """Build a plugin manager with prelabel's hookspecs.

    ``load_entrypoints`` loads installed plugins from the ``prelabel`` entry-point group,
    restricted to the comma-separated names in ``PRELABEL_PLUGINS`` when that is set.
    ``plugins`` are registered explicitly (tests use this instead of entry points).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        allowed = _allowlist()
        for ep in importlib.metadata.entry_points(group=ENTRYPOINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # one broken plugin must not hide the others
                log.error("plugin %s failed to load: %s", ep.name, exc)
                continue
            pm.register(module, name=ep.name)
    for plugin in plugins or []:
        pm.register(plugin)
    pm.check_pending()
    return pm


def collect_backends(pm: pluggy.PluginManager) -> BackendRegistry:
    """Call ``register_backends`` on every plugin and return the validated registry."""
    registry = BackendRegistry()
    for impl in pm.hook.register_backends.get_hookimpls():
        source = impl.plugin_name

        def register(backend_class: type[Backend], _source: str = source) -> None:
            registry.register(backend_class, _source)

        impl.function(register=register)
    return registry


def plugin_versions() -> dict[str, str]:
    """Installed plugin distributions: entry-point name -> distribution version."""
    versions: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=ENTRYPOINT_GROUP):
        dist = getattr(ep, "dist", None)
        versions[ep.name] = dist.version if dist is not None else "?"
    return versions


def load_backend_class(spec: str, pm: pluggy.PluginManager | None = None) -> type[Backend]:
    """Resolve a backend by id (``text_classifier``), by import path (``pkg.module:Class``), or
    from a label-studio-ml model file (``path/to/model.py[:Class]``, see ``prelabel.compat``)."""
    if spec.partition(":")[0].endswith(".py"):
        from prelabel.compat.loader import load_model_file

        return load_model_file(spec)
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        module = importlib.import_module(module_name)
        obj = getattr(module, attr, None)
        if not (isinstance(obj, type) and issubclass(obj, Backend)):
            raise PluginError(f"{spec} is not a prelabel.Backend subclass")
        check_declaration(obj)
        return obj
    registry = collect_backends(pm or make_plugin_manager())
    try:
        return registry.backends[spec]
    except KeyError:
        known = ", ".join(sorted(registry.backends)) or "none installed"
        raise PluginError(
            f"no backend named {spec!r} (installed: {known}); install it with "
            f"`pip install prelabel-{spec.replace('_', '-')}` or check PRELABEL_PLUGINS"
        ) from None
