"""``prelabel new``: a plugin package that ships as generated.

Inside the prelabel repository (a ``ci/images.py`` beside ``plugins/``) it writes the package,
its tests and ``.env.example``, adds the plugin's row to ``ci/images.py`` on a port no other
row uses, and renders the Dockerfile and compose files from that row (``ci/render.py``), so
the plugin's own tests and the repository's deploy tests pass. Elsewhere it writes the
package alone.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

KINDS = ("text", "image")
FIRST_PORT = 9100

PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "prelabel-{dist}"
version = "0.1.0"
description = "prelabel backend: {name}"
readme = "README.md"
requires-python = ">=3.10"
dependencies = [{dependencies}]

[project.entry-points.prelabel]
{name} = "prelabel_{name}"

[tool.hatch.build.targets.wheel]
packages = ["src/prelabel_{name}"]
"""

TEXT_MODULE = '''"""prelabel backend {name}: Choices on Text. Replace the keyword rule with your model."""

from __future__ import annotations

from pydantic import Field

from prelabel import Backend, BackendSettings, Prediction, hookimpl
from prelabel.regions import choices


class Settings(BackendSettings):
    """Environment variables of this backend (unknown keyword arguments are refused)."""

    {name}_min_length: int = Field(0, ge=0, description="Texts shorter than this get no prediction.")


class {cls}(Backend):
    backend_id = "{name}"
    title = "{name}"
    supports = {{"Choices": frozenset({{"Text"}})}}
    max_batch_size = 32
    default_port = {port}
    Settings = Settings

    def setup(self, device: str | None) -> None:
        """Load weights here: once per process, never per request."""

    def predict(self, tasks, ctx):
        control = self.supported_controls(ctx.config)[0]
        key = control.object.data_key
        out = []
        for task in tasks:
            text = str(task.data.get(key, ""))
            hits = [label for label in control.labels if label.lower() in text.lower()]
            if len(text) < self.settings.{name}_min_length or not hits:
                out.append(None)
                continue
            out.append(Prediction([choices(control, hits[0], score=1.0)], score=1.0))
        return out


@hookimpl
def register_backends(register):
    register({cls})
'''

IMAGE_MODULE = '''"""prelabel backend {name}: RectangleLabels on Image. Replace the centre box with your model."""

from __future__ import annotations

from pydantic import Field

from prelabel import Backend, BackendSettings, Prediction, TaskError, hookimpl
from prelabel.regions import rectangle


class Settings(BackendSettings):
    """Environment variables of this backend (unknown keyword arguments are refused)."""

    {name}_box_share: float = Field(0.5, gt=0, le=1, description="Box side as a share of the image side.")


class {cls}(Backend):
    backend_id = "{name}"
    title = "{name}"
    supports = {{"RectangleLabels": frozenset({{"Image"}})}}
    max_batch_size = 8
    default_port = {port}
    Settings = Settings

    def setup(self, device: str | None) -> None:
        """Load weights here (on ``device`` when the settings have a DEVICE): once per process."""

    def predict(self, tasks, ctx):
        control = self.supported_controls(ctx.config)[0]
        key = control.object.data_key
        share = self.settings.{name}_box_share
        out = []
        for task in tasks:
            try:  # core downloads with the project's credentials, checks the size, applies EXIF
                image = ctx.media.open_image(task.data[key], task.id)
            except TaskError as exc:
                out.append(exc)
                continue
            w, h = image.width * share, image.height * share
            x, y = (image.width - w) / 2, (image.height - h) / 2
            box = rectangle(control, control.labels[0], x, y, w, h, image.width, image.height, score=1.0)
            out.append(Prediction([box], score=1.0))
        return out


@hookimpl
def register_backends(register):
    register({cls})
'''

TEXT_TEST = """from prelabel_{name} import {cls}

from prelabel.testing import BackendConformanceTests


class TestConformance(BackendConformanceTests):
    backend_class = {cls}
"""

IMAGE_TEST = """from prelabel_{name} import {cls}

from prelabel.testing import BackendConformanceTests, configs, data_uri, png_bytes


class TestConformance(BackendConformanceTests):
    backend_class = {cls}
    label_config = configs.IMAGE_RECTANGLES
    tasks = [{{"id": i, "data": {{"image": data_uri(png_bytes(64 + i, 48))}}}} for i in (1, 2, 3)]
"""

README = """# prelabel-{dist}

A prelabel backend: {what}. Serve it with `prelabel serve {name}` (port {port}) and connect it
in Label Studio under Settings > Model.

| Variable | Default | Meaning |
| --- | --- | --- |
| `{var}` | {default} | {meaning} |

`docker compose -f compose/{name}.yml up` builds and runs its image.
"""

ENV_EXAMPLE = """# prelabel serve {name}  (port {port}). Every variable is optional.
# Copy to plugins/{name}/.env for compose/{name}.yml.
# {var}={default}
"""

# one argument a line with a trailing comma: how ruff format keeps the table, whatever the name
ROW = """    "{name}": Image(
        {port},
        "light",
        ("{name}",),
        title="{name}",
        summary="{name}: {what}.",
    ),
"""

KIND = {
    "text": {
        "module": TEXT_MODULE,
        "test": TEXT_TEST,
        "what": "Choices on Text",
        "dependencies": '"prelabel>=0.1"',
        "setting": ("min_length", "0", "Texts shorter than this get no prediction."),
    },
    "image": {
        "module": IMAGE_MODULE,
        "test": IMAGE_TEST,
        "what": "RectangleLabels on Image",
        "dependencies": '"prelabel[vision]>=0.1"',
        "setting": ("box_share", "0.5", "Box side as a share of the image side."),
    },
}


def _load_images(repo: Path):
    spec = importlib.util.spec_from_file_location("prelabel_scaffold_ci_images", repo / "ci" / "images.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def free_port(used: set[int], first: int = FIRST_PORT) -> int:
    """The lowest port from ``first`` up that no row of ci/images.py uses."""
    port = first
    while port in used:
        port += 1
    return port


def add_row(images_py: Path, name: str, port: int, what: str) -> None:
    """Append the plugin's row to the IMAGES table (before its closing brace)."""
    source = images_py.read_text(encoding="utf-8")
    match = re.search(r"^IMAGES: dict\[str, Image\] = \{\n.*?^\}\n", source, re.S | re.M)
    if match is None:
        raise ValueError(f"{images_py} has no IMAGES table to add {name!r} to")
    row = ROW.format(name=name, port=port, what=what)
    end = match.end() - 2  # before "}\n"
    images_py.write_text(source[:end] + row + source[end:], encoding="utf-8")


def scaffold_plugin(name: str, directory: str | Path = "plugins", kind: str = "text") -> Path:
    """Write plugin ``name`` under ``directory``; in the repository, its table row and deployment
    files too. Returns the plugin's directory."""
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"plugin name {name!r} must be a lower-case Python identifier, e.g. my_model")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: use one of {', '.join(KINDS)}")
    root = Path(directory) / name
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    repo = Path(directory).resolve().parent
    in_repo = (repo / "ci" / "images.py").is_file() and (repo / "ci" / "render.py").is_file()
    port = FIRST_PORT
    if in_repo:
        images = _load_images(repo)
        if name in images.IMAGES:
            raise FileExistsError(f"ci/images.py already has a row {name!r}")
        port = free_port({image.port for image in images.IMAGES.values()})
    info = KIND[kind]
    setting, default, meaning = info["setting"]
    fields = {
        "name": name,
        "dist": name.replace("_", "-"),
        "cls": "".join(p.capitalize() for p in name.split("_")) + "Backend",
        "port": port,
        "what": info["what"],
        "dependencies": info["dependencies"],
        "var": f"{name}_{setting}".upper(),
        "default": default,
        "meaning": meaning,
    }
    files = {
        root / "pyproject.toml": PYPROJECT,
        root / "README.md": README,
        root / ".env.example": ENV_EXAMPLE,
        root / "src" / f"prelabel_{name}" / "__init__.py": info["module"],
        root / "tests" / "test_conformance.py": info["test"],
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields), encoding="utf-8")
    if in_repo:
        add_row(repo / "ci" / "images.py", name, port, info["what"])
        subprocess.run(
            [sys.executable, str(repo / "ci" / "render.py")], check=True, cwd=repo, stdout=subprocess.DEVNULL
        )
    return root
