"""ci/changed-packages.py: which packages a change tests and which images it rebuilds."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ci" / "changed-packages.py"


@pytest.fixture(scope="module")
def cp():
    spec = importlib.util.spec_from_file_location("changed_packages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_core_change_rebuilds_every_plugin(cp):
    got = cp.classify(["core/src/prelabel/server/app.py"])
    plugins = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
    assert got["packages"] == ["core", *plugins]
    assert sorted(got["images"]) == sorted(cp.IMAGES)
    assert set(plugins) <= set(got["images"])  # every plugin has an image


def test_a_plugin_change_is_that_plugin_and_its_dependents(cp):
    assert cp.classify(["plugins/kimi/src/prelabel_kimi/__init__.py"]) == {"packages": ["kimi"], "images": ["kimi"]}
    # grounding_sam depends on prelabel-sam2 (its pyproject), so a sam2 change rebuilds both
    got = cp.classify(["plugins/sam2/src/prelabel_sam2/model.py"])
    assert got == {"packages": ["grounding_sam", "sam2"], "images": ["sam2", "grounding_sam"]}
    got = cp.classify(["plugins/grounding_sam/README.md"])
    assert got == {"packages": ["grounding_sam"], "images": ["grounding_sam"]}


def test_an_environment_change_is_the_plugins_tested_in_it(cp):
    got = cp.classify(["ci/envs/vision.constraints"])
    vision = set(got["packages"])
    assert {"yolo", "sam2", "grounding_sam"} <= vision
    assert "kimi" not in vision and "core" not in vision
    assert set(got["images"]) == vision
    assert cp.classify(["ci/envs/paddle.txt"]) == {"packages": ["uie_x"], "images": ["uie_x"]}
    assert cp.classify(["ci/envs/README.md"]) == {"packages": [], "images": []}


def test_image_machinery_rebuilds_images_and_tests_core(cp):
    got = cp.classify(["ci/docker/install.sh"])
    assert got["packages"] == ["core"]
    assert sorted(got["images"]) == sorted(cp.IMAGES)
    got = cp.classify(["ci/docker/light.constraints"])
    light = sorted(n for n, im in cp.IMAGES.items() if im.env == "light")  # a scaffolded plugin is light too
    assert {"kimi", "modelscope_qwen", "text_classifier"} <= set(light) and "yolo" not in light
    assert sorted(got["images"]) == light
    got = cp.classify(["plugins/yolo/Dockerfile"])
    assert got == {"packages": ["core", "yolo"], "images": ["yolo"]}


def test_docs_change_nothing_and_unknown_paths_change_everything(cp):
    assert cp.classify(["docs/moving-from-label-studio-ml-backend.md", "bench/yolo_batch.py", "README.md"]) == {
        "packages": [],
        "images": [],
    }
    assert cp.classify([]) == {"packages": [], "images": []}
    assert cp.classify(["compose/yolo.yml", "tests/deploy/test_compose.py"]) == {"packages": ["core"], "images": []}
    everything = cp.classify(["core/x"])
    assert cp.classify(["something/new.txt"]) == everything
    assert cp.classify([".github/workflows/ci.yml"]) == everything
    assert cp.classify(["Makefile"])["packages"] == everything["packages"]
    assert cp.classify(["Makefile"])["images"] == []


def test_command_line_json_stdin_and_github_output(cp):
    run = [sys.executable, str(SCRIPT)]
    out = subprocess.run(
        [*run, "plugins/yolo/src/prelabel_yolo/backend.py"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == {"packages": ["yolo"], "images": ["yolo"]}
    out = subprocess.run(
        run, input="plugins/kimi/README.md\nREADME.md\n", capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == {"packages": ["kimi"], "images": ["kimi"]}
    out = subprocess.run([*run, "--github", "plugins/kimi/x"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ['packages=["kimi"]', 'images=["kimi"]']
    # a new branch's all-zero base: git cannot tell, so everything
    out = subprocess.run([*run, "--from-git", "0" * 40], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["packages"][0] == "core" and len(json.loads(out)["images"]) == len(cp.IMAGES)
