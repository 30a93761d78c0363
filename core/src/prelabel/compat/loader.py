"""Load a label-studio-ml ``model.py[:ClassName]`` and adapt its model class.

``pip install "prelabel[compat]"`` installs prelabel's own ``label_studio_ml`` package (the
``prelabel-compat`` distribution), which re-exports ``prelabel.compat``. Without it,
``label_studio_ml``, ``label_studio_ml.model``, ``.response``, ``.utils`` and ``.api`` are made to
resolve to ``prelabel.compat`` while a model file loads, so its upstream imports work unchanged.
Another ``label_studio_ml`` (an upstream checkout on ``sys.path``) is left alone, and subclasses
of its LabelStudioMLBase are accepted as well. PyPI's stale ``label-studio-ml`` distribution
installed next to ``prelabel-compat`` is refused: both write ``label_studio_ml/``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import sys
import types
from pathlib import Path

from prelabel.compat.adapter import LabelStudioMLAdapter, adapt, is_model_class
from prelabel.compat.distributions import (
    COMPAT_DISTRIBUTION,
    UPSTREAM_DISTRIBUTION,
    refuse_two_label_studio_ml,
    two_label_studio_ml_message,
)
from prelabel.hookspecs import PluginError

_SPEC = re.compile(r"^(?P<path>.+?\.py)(?::(?P<name>[A-Za-z_]\w*))?$")
_ALIAS_MARK = "__prelabel_compat__"


#: prelabel's distribution of the ``label_studio_ml`` package, and PyPI's stale one (1.0.9, 2023)
def parse_model_spec(spec: str) -> tuple[Path, str | None]:
    """``path/to/model.py:ClassName`` -> (absolute path, "ClassName"); the class is optional."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise PluginError(f"{spec!r} is not a model file: expected path/to/model.py or path/to/model.py:ClassName")
    path = Path(match["path"]).expanduser().resolve()
    if not path.is_file():
        raise PluginError(f"model file {path} does not exist")
    return path, match["name"]


def upstream_installed() -> bool:
    """True when an importable ``label_studio_ml`` is not prelabel's (neither the
    ``prelabel-compat`` package nor the stand-in of :func:`install_upstream_alias`)."""
    present = sys.modules.get("label_studio_ml")
    if present is None:
        try:
            if importlib.util.find_spec("label_studio_ml") is None:
                return False
        except (ImportError, ValueError):
            return False
        try:
            import label_studio_ml as present
        except Exception:
            return True
    return not getattr(present, _ALIAS_MARK, False)


def install_upstream_alias() -> bool:
    """Make ``import label_studio_ml...`` resolve to prelabel.compat unless another package
    provides it. Returns True when prelabel's (the stand-in or prelabel-compat) is in place."""
    refuse_two_label_studio_ml()
    if upstream_installed():
        return False
    if "label_studio_ml" in sys.modules:
        return True
    from prelabel.compat import api, base, response, utils

    package = types.ModuleType("label_studio_ml", "prelabel's stand-in for label-studio-ml (prelabel.compat)")
    package.__path__ = []  # a package, so submodule imports are looked up in sys.modules
    setattr(package, _ALIAS_MARK, True)
    package.api, package.model, package.response, package.utils = api, base, response, utils
    package.LabelStudioMLBase = base.LabelStudioMLBase
    sys.modules.update(
        {
            "label_studio_ml": package,
            "label_studio_ml.api": api,
            "label_studio_ml.model": base,
            "label_studio_ml.response": response,
            "label_studio_ml.utils": utils,
        }
    )
    return True


def example_folders(entries: list[str] | None = None, exclude: str | None = None) -> list[str]:
    """The search path of ``label_studio_ml.examples``: each ``label_studio_ml/examples``
    folder that is an entry of ``sys.path``, inside one (a checkout's root) or above one (an
    example's own folder, where pytest runs its tests); ``exclude`` is prelabel-compat's own."""
    found: list[str] = [str(Path(exclude).resolve())] if exclude else []
    for entry in sys.path if entries is None else entries:
        try:
            here = Path(entry or ".").resolve()
        except (OSError, ValueError):
            continue
        above = [p for p in (here, *here.parents) if p.name == "examples" and p.parent.name == "label_studio_ml"]
        candidates = [here / "label_studio_ml" / "examples", *above]
        for folder in candidates:
            if folder.is_dir() and str(folder) not in found:
                found.append(str(folder))
    return found[1:] if exclude else found


def _module_name(path: Path) -> str:
    """Stable per file, so pickles of classes defined in the model file load again."""
    stem = re.sub(r"\W", "_", path.stem)
    return f"prelabel_model_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def load_model_module(path: Path) -> types.ModuleType:
    """Import a model file (once per process); its directory goes on sys.path, as upstream
    does, so the file's sibling imports work."""
    name = _module_name(path)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    install_upstream_alias()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        hint = (
            ": install the model's requirements (pip install -r requirements.txt next to it)"
            if isinstance(exc, ImportError)
            else ""
        )
        raise PluginError(f"could not import {path}: {type(exc).__name__}: {exc}{hint}") from exc
    return module


def find_model_class(module: types.ModuleType, name: str | None = None) -> type:
    """The model class of a module: ``name``, else its only LabelStudioMLBase subclass."""
    where = getattr(module, "__file__", module.__name__)
    if name is not None:
        found = getattr(module, name, None)
        if found is None:
            raise PluginError(f"{where} has no class {name}")
        if not is_model_class(found):
            raise PluginError(f"{where}: {name} is not a subclass of LabelStudioMLBase")
        return found
    candidates = [obj for obj in vars(module).values() if is_model_class(obj)]
    own = [obj for obj in candidates if obj.__module__ == module.__name__]
    candidates = own or candidates
    if not candidates:
        raise PluginError(f"{where} defines no subclass of LabelStudioMLBase (from label_studio_ml.model)")
    if len(candidates) > 1:
        names = ", ".join(sorted(c.__name__ for c in candidates))
        raise PluginError(
            f"{where} has several model classes ({names}): name one, e.g. {where}:{candidates[0].__name__}"
        )
    return candidates[0]


def load_model_file(spec: str) -> type[LabelStudioMLAdapter]:
    """The prelabel Backend class for ``path/to/model.py[:ClassName]``."""
    path, name = parse_model_spec(spec)
    model_class = find_model_class(load_model_module(path), name)
    return adapt(model_class, model_file=f"{path}:{model_class.__name__}")


__all__ = [
    "COMPAT_DISTRIBUTION",
    "UPSTREAM_DISTRIBUTION",
    "example_folders",
    "find_model_class",
    "install_upstream_alias",
    "load_model_file",
    "load_model_module",
    "parse_model_spec",
    "refuse_two_label_studio_ml",
    "two_label_studio_ml_message",
    "upstream_installed",
]
