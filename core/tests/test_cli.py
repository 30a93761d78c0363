"""The command line, run as users run it: real processes, real sockets on loopback."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from prelabel.testing.client import per_task_results
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.redisserver import free_port

PRELABEL = [sys.executable, "-m", "prelabel.cli"]


def run(*args, env=None, timeout=120):
    return subprocess.run(
        [*PRELABEL, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def wait_health(url, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            resp = httpx.get(url + "/health", timeout=1)
            if resp.status_code == 200:
                return resp.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not become healthy")


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("serve", "plugins", "new"):
        assert command in out.stdout


def test_plugins_json_is_valid(tmp_path):
    out = run("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    for row in rows:
        assert {"backend_id", "version", "default_port", "control_tags", "trainable"} <= set(row)


def test_unknown_backend_is_a_clear_error():
    out = run("serve", "no_such_backend")
    assert out.returncode != 0 and "no backend named 'no_such_backend'" in out.stderr


def test_missing_setting_names_the_variable(tmp_path):
    (tmp_path / "needs_key.py").write_text(
        textwrap.dedent("""
        from prelabel import Backend, BackendSettings

        class Settings(BackendSettings):
            acme_api_key: str

        class NeedsKey(Backend):
            backend_id = "needs_key"
            supports = {"Choices": frozenset({"Text"})}
            Settings = Settings
    """)
    )
    out = run("serve", "needs_key:NeedsKey", env={"PYTHONPATH": str(tmp_path), "PRELABEL_HOME": str(tmp_path)})
    assert out.returncode != 0
    assert "ACME_API_KEY is required" in out.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_label_studio_calls(tmp_path, workers):
    port = free_port()
    env = {**os.environ, "PRELABEL_HOME": str(tmp_path), "LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [
            *PRELABEL,
            "serve",
            "prelabel.testing.reference:ReferenceBackend",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_health(url, proc)
        assert health["status"] == "UP" and health["plugin"] == "reference"
        setup = httpx.post(url + "/setup", json={"project": "1.1", "schema": TEXT_CHOICES}).json()
        for _ in range(6 if workers > 1 else 1):
            resp = httpx.post(
                url + "/predict", json={"tasks": [{"id": 1, "data": {"text": "positive"}}], "project": "1.1"}
            )
            assert resp.status_code == 200, resp.text
            assert per_task_results(resp.json())[0]["model_version"] == setup["model_version"]
        metrics = httpx.get(url + "/metrics").text
        assert "prelabel_tasks_total" in metrics
    finally:
        proc.terminate()
        proc.wait(20)
    lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert any(line["msg"].startswith("POST /predict 200") for line in lines)


def test_new_scaffolds_a_plugin_that_passes_conformance(tmp_path):
    out = run("new", "my_model", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    root = tmp_path / "my_model"
    assert (root / "pyproject.toml").is_file()
    again = run("new", "my_model", "--dir", str(tmp_path))
    assert again.returncode != 0 and "already exists" in again.stderr
    assert run("new", "Bad-Name", "--dir", str(tmp_path)).returncode != 0
    # installed as a user installs it (its entry point is what `prelabel serve my_model` finds)
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("needs uv to install the scaffolded plugin: python3 -m pip install uv")
    site = tmp_path / "site"
    install = subprocess.run(
        [uv, "pip", "install", "-q", "--no-deps", "--python", sys.executable, "--target", str(site), str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    # and it is born formatted and lint-clean, as `make lint` wants the tree
    ruff_config = Path(__file__).resolve().parents[2] / "ruff.toml"
    for check in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *check, "--config", str(ruff_config), str(root)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


REPO_PARTS = ["ci", "compose", "plugins", "ruff.toml", "deploy", "core/pyproject.toml"]


def test_new_twice_in_the_repository_gives_two_shippable_plugins(tmp_path):
    """In a copy of this repository: two plugins on two free ports, their ci/images.py rows,
    rendered deployment files that ci/render.py --check agrees with, and a tree ruff still
    finds formatted (`make lint`)."""
    repo_root = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None or not (repo_root / ".git").exists():
        pytest.skip("needs this repository's git checkout (git archive copies it)")
    repo = tmp_path / "repo"
    repo.mkdir()
    archive = subprocess.run(
        [
            git,
            "-C",
            str(repo_root),
            "archive",
            "HEAD",
            "ci",
            "compose",
            "plugins",
            "ruff.toml",
            "deploy",
            "core/pyproject.toml",
        ],
        capture_output=True,
        timeout=120,
    )
    assert archive.returncode == 0, archive.stderr.decode()
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True, timeout=120)
    for name, kind in (("alpha_model", "text"), ("beta_model", "image")):
        out = subprocess.run(
            [*PRELABEL, "new", name, "--kind", kind, "--dir", "plugins"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
    ports = [
        int(re.search(rf'"{name}": Image\(\s*(\d+)', (repo / "ci" / "images.py").read_text()).group(1))
        for name in ("alpha_model", "beta_model")
    ]
    assert len(set(ports)) == 2, ports
    for name in ("alpha_model", "beta_model"):
        assert (repo / "plugins" / name / "Dockerfile").is_file() and (repo / "compose" / f"{name}.yml").is_file()
    check = subprocess.run(
        [sys.executable, "ci/render.py", "--check"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for args in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                *args,
                "--config",
                "ruff.toml",
                "ci",
                "plugins/alpha_model",
                "plugins/beta_model",
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
