"""The deployment files are rendered from one table (ci/images.py) by ci/render.py: every
committed Dockerfile and compose file equals its rendering, and every plugin has a row."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("prelabel_ci_render", ROOT / "ci" / "render.py")
render = sys.modules["prelabel_ci_render"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)


def test_committed_files_are_as_rendered():
    differ = [
        str(rel)
        for rel, text in render.rendered().items()
        if not (ROOT / rel).is_file() or (ROOT / rel).read_text() != text
    ]
    assert differ == [], f"edit ci/images.py or ci/render.py, then run python3 ci/render.py: {differ}"


def test_every_plugin_has_a_row_and_a_rendered_dockerfile():
    plugins = {p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml")}
    assert plugins == set(render.IMAGES), "add the plugin's row to ci/images.py (prelabel new does it)"
    for name in plugins:
        assert Path("plugins") / name / "Dockerfile" in render.rendered()


def test_ports_are_distinct():
    ports = [im.port for im in render.IMAGES.values()]
    assert len(ports) == len(set(ports))


def test_check_mode_reports_a_hand_edit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(render, "ROOT", tmp_path)
    assert render.main([]) == 0  # writes every file under tmp_path
    target = tmp_path / "compose" / "kimi.yml"
    target.write_text(target.read_text() + "# edited by hand\n")
    assert render.main(["--check"]) == 1
    assert "compose/kimi.yml" in capsys.readouterr().out
