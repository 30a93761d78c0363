"""``prelabel new``: a plugin package skeleton that passes the conformance suite as generated."""

from __future__ import annotations

from pathlib import Path

PYPROJECT = '''[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "prelabel-{dist}"
version = "0.1.0"
description = "prelabel backend: {name}"
requires-python = ">=3.10"
dependencies = ["prelabel"]

[project.entry-points.prelabel]
{name} = "prelabel_{name}"

[tool.hatch.build.targets.wheel]
packages = ["src/prelabel_{name}"]
'''

MODULE = '''"""prelabel backend {name}: replace the keyword rule with your model."""

from __future__ import annotations

from prelabel import Backend, BackendSettings, Prediction, hookimpl
from prelabel.regions import choices


class Settings(BackendSettings):
    """Environment variables of this backend (unknown keyword arguments are refused)."""

    {name}_min_length: int = 0


class {cls}(Backend):
    backend_id = "{name}"
    title = "{name}"
    supports = {{"Choices": frozenset({{"Text"}})}}
    max_batch_size = 32
    default_port = 9100
    Settings = Settings

    def setup(self, device: str | None) -> None:
        """Load weights here: once per process, never per request."""

    def predict(self, tasks, ctx):
        control = self.supported_controls(ctx.config)[0]
        key = control.object.data_key
        out = []
        for task in tasks:
            text = str(task.data.get(key, "")).lower()
            hits = [label for label in control.labels if label.lower() in text]
            out.append(Prediction([choices(control, hits[0], score=1.0)], score=1.0) if hits else None)
        return out


@hookimpl
def register_backends(register):
    register({cls})
'''

TEST = '''from prelabel.testing import BackendConformanceTests

from prelabel_{name} import {cls}


class TestConformance(BackendConformanceTests):
    backend_class = {cls}
'''

README = '''# prelabel-{dist}

A prelabel backend. Serve it with `prelabel serve {name}` (port 9100) and connect it in
Label Studio under Settings > Model.
'''


def scaffold_plugin(name: str, directory: str | Path = "plugins") -> Path:
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"plugin name {name!r} must be a lower-case Python identifier, e.g. my_model")
    root = Path(directory) / name
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    cls = "".join(part.capitalize() for part in name.split("_")) + "Backend"
    fields = {"name": name, "dist": name.replace("_", "-"), "cls": cls}
    files = {
        root / "pyproject.toml": PYPROJECT,
        root / "README.md": README,
        root / "src" / f"prelabel_{name}" / "__init__.py": MODULE,
        root / "tests" / "test_conformance.py": TEST,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields))
    return root
