"""plugins/<name>/Dockerfile and ci/images.py agree: base image argument, what is copied and
installed, the non-root user, health check, port and command. No Docker needed; the images
themselves are built and run by ci/docker-smoke.sh (kimi, yolo) and the GitHub workflow (all)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("prelabel_ci_images", ROOT / "ci" / "images.py")
images = sys.modules.setdefault("prelabel_ci_images", importlib.util.module_from_spec(_spec))
if not hasattr(images, "IMAGES"):
    _spec.loader.exec_module(images)
IMAGES = images.IMAGES


def dockerfile(name: str) -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    text = (ROOT / "plugins" / name / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", list(IMAGES))
def test_dockerfile(name):
    lines = dockerfile(name)
    image = IMAGES[name]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim" and lines[1] == "FROM ${BASE_IMAGE}"
    copied = {line.split()[-2].rstrip("/") for line in lines if line.startswith("COPY ") and "pyproject" not in line}
    copied_plugins = {c for c in copied if c.startswith("plugins/")}
    assert copied_plugins == {f"plugins/{p}" for p in image.plugins}, "core plus this plugin (and what it needs) only"
    assert "core" in copied
    copy_env = [line for line in lines if line.startswith("COPY ") and ("ci/envs/" in line or ".constraints" in line)]
    assert len(copy_env) == 1 and copy_env[0].split()[1:-1] == images.env_files(name), (
        "the tested pins: every file of the environment (txt, constraints, overrides)"
    )
    assert (
        f"RUN --mount=type=secret,id=ca_bundle --mount=type=bind,source=ci/wheelhouse,target=/wheelhouse "
        f"sh /build/ci/docker/install.sh deps {name}" in lines
    )
    assert f"RUN sh /build/ci/docker/install.sh app {name}" in lines
    assert "USER prelabel" in lines and re.search(r"useradd --uid 10001 ", "\n".join(lines))
    assert f"BIND_PORT={image.port}" in " ".join(lines)
    assert f"EXPOSE {image.port}" in lines
    health = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and health[0].endswith('CMD ["prelabel-healthcheck"]')
    assert lines[-2:] == ['ENTRYPOINT ["prelabel"]', f'CMD ["serve", "{name}"]']
    if len(image.variants) > 1:
        assert f"ARG VARIANT={image.variants[0]}" in lines
    assert not any("ca-certificates.crt" in line for line in lines), (
        "the CA bundle is a build secret, never copied into the image"
    )


def test_dockerignore_keeps_environments_and_history_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".git", "**/.venv", "**/.venv-*", ".demo", "**/__pycache__", "**/.env"):
        assert pattern in ignored


@pytest.mark.parametrize("name", list(IMAGES))
def test_requirements_and_constraints_resolve_from_the_repository(name):
    for variant in IMAGES[name].variants:
        reqs = images.requirements(name, variant)
        cons = images.constraints(name, variant)
        assert "hatchling" in reqs
        assert not any(images.plugin_of(images.split_requirement(r)[0]) for r in reqs), "local packages are not pins"
        assert all("[" not in c.split(";")[0] for c in cons), "constraints carry no extras"
        if IMAGES[name].torch:
            torch = [c for c in cons if c.startswith("torch==")]
            assert torch and (torch[0].endswith("+cpu") == (variant == "cpu"))


def test_overrides_are_the_environments():
    assert images.overrides("yolo") == [] or (ROOT / "ci" / "envs" / "vision.overrides").is_file()
    paddle = ROOT / "ci" / "envs" / "paddle.overrides"
    if paddle.is_file():
        assert images.overrides("uie_x") and "ci/envs/paddle.overrides" in images.env_files("uie_x")


def test_core_extras_follow_the_plugin_dependencies():
    yolo = images.requirements("yolo")
    assert any(r.startswith("opencv-python-headless") for r in yolo)  # prelabel[vision]
    assert any(r.startswith("redis") for r in yolo)  # every image can keep state in Redis
    kimi = images.requirements("kimi")
    assert any(r.startswith("openai") for r in kimi) and not any(r.startswith("torch") for r in kimi)
    assert images.requirements("uie_x", "gpu")[-4:-2] == ["paddlepaddle-gpu", "setuptools"]


def test_image_env_matches_the_plugin_test_environment():
    for name, image in IMAGES.items():
        env = ROOT / "plugins" / name / "ENV"
        if env.is_file():
            assert env.read_text().strip() == image.env, f"plugins/{name}/ENV vs ci/images.py"


def test_cli():
    run = [sys.executable, str(ROOT / "ci" / "images.py")]
    assert subprocess.run([*run, "list"], capture_output=True, text=True, check=True).stdout.split() == list(IMAGES)
    assert (
        subprocess.run([*run, "repo", "text_classifier"], capture_output=True, text=True, check=True).stdout.strip()
        == "text-classifier"
    )
    out = subprocess.run(
        [*run, "index-args", "yolo", "--variant", "cpu"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["--extra-index-url", images.TORCH_CPU_INDEX]
    bad = subprocess.run([*run, "constraints", "kimi", "--variant", "gpu"], capture_output=True, text=True)
    assert bad.returncode != 0 and "no variant" in bad.stderr
