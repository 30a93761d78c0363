"""Plugins (their packages under src/, what ships) import only prelabel's public API, and from
each other only names in ``__all__``.

Public: ``prelabel`` itself and ``prelabel.PUBLIC_MODULES``. Between plugins: grounding_sam
(and sam3) may use what sam2's package exports in ``__all__``, imported from the package.
Plugin tests may reach further (they drive the CLI and the app), so they are not checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
PUBLIC = {"prelabel", "prelabel.regions", "prelabel.testing", "prelabel.llm", "prelabel.sam_events"}


def _public_modules() -> set[str]:
    # read from prelabel/__init__.py, so this test needs no prelabel installed in its environment
    source = (ROOT / "core/src/prelabel/__init__.py").read_text(encoding="utf-8")
    match = re.search(r"PUBLIC_MODULES = \(([^)]*)\)", source)
    return {"prelabel", *re.findall(r'"([\w.]+)"', match[1])}


def _sam2_exports() -> set[str]:
    tree = ast.parse((ROOT / "plugins/sam2/src/prelabel_sam2/__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("prelabel_sam2 has no __all__")


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every absolute import in the file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def test_the_public_modules_are_the_ones_core_names():
    assert _public_modules() == PUBLIC


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_plugins_import_only_the_public_api(plugin):
    own = f"prelabel_{plugin.name}"
    sam2 = _sam2_exports()
    bad = []
    for path in sorted((plugin / "src").rglob("*.py")):
        for module, names in imports(path):
            top = module.split(".")[0]
            if top == "prelabel" and module not in PUBLIC:
                bad.append(f"{path.relative_to(ROOT)}: {module}")
            elif top.startswith("prelabel_") and top != own:
                if top != "prelabel_sam2" or plugin.name not in ("grounding_sam", "sam3"):
                    bad.append(f"{path.relative_to(ROOT)}: {module} (another plugin)")
                elif module != "prelabel_sam2":
                    bad.append(f"{path.relative_to(ROOT)}: {module} (import from prelabel_sam2 itself)")
                elif module == "prelabel_sam2" and set(names) - sam2:
                    bad.append(f"{path.relative_to(ROOT)}: {sorted(set(names) - sam2)} not in prelabel_sam2.__all__")
    assert not bad, "\n".join(bad)


def test_the_check_sees_an_internal_import(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from prelabel.imageio import open_image\n")
    assert imports(path) == [("prelabel.imageio", ["open_image"])]
