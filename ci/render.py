#!/usr/bin/env python3
"""Render every plugin's deployment files from its row in ci/images.py.

One row per plugin (port, environment, variants, volumes, extra environment, descriptions)
and the templates below make: plugins/<name>/Dockerfile, compose/<name>.yml,
compose/<name>.gpu.yml (GPU plugins), compose/ci/<name>.yml (the CI smoke override),
compose/stack.yml and compose/stack.gpu.yml. Edit the table or a template, never the
rendered files; tests/deploy/test_render.py fails when a committed file differs.

    python3 ci/render.py          # write every file
    python3 ci/render.py --check  # exit 1 naming the files that differ

Standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("prelabel_ci_images", ROOT / "ci" / "images.py")
images = sys.modules.setdefault("prelabel_ci_images", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(images)
IMAGES = images.IMAGES
Image = images.Image

LS_TOKEN = "${LABEL_STUDIO_TOKEN:?copy compose/.env.example to compose/.env and set it}"


def service(name: str) -> str:
    return name.replace("_", "-")


def var(name: str) -> str:
    return name.upper()


def start_period(image: Image) -> int:
    return 300 if image.torch or image.env == "paddle" else 60  # weights to load, or an API client


def env_pins(image: Image) -> str:
    if image.env == "light":
        return "ci/docker/light.constraints (the versions .venv tested)"
    files = [f"ci/envs/{image.env}.txt", f"ci/envs/{image.env}.constraints"]
    if (ROOT / "ci" / "envs" / f"{image.env}.overrides").is_file():
        files.append(f"ci/envs/{image.env}.overrides")
    return ", ".join(files)


def env_copy(image: Image) -> str:
    if image.env == "light":
        return "COPY ci/docker/light.constraints /build/ci/docker/"
    files = [f"ci/envs/{image.env}.txt", f"ci/envs/{image.env}.constraints"]
    if (ROOT / "ci" / "envs" / f"{image.env}.overrides").is_file():
        files.append(f"ci/envs/{image.env}.overrides")
    return f"COPY {' '.join(files)} /build/ci/envs/"


def image_env(image: Image) -> dict[str, str]:
    """The environment the image and every compose service set, beyond core's own."""
    extra = {}
    if "models" in image.volumes and image.model_root:
        extra["MODEL_ROOT"] = "/models"
    extra.update(dict(image.environment))
    return extra


# -- Dockerfile ---------------------------------------------------------------------------------
def dockerfile(name: str, image: Image) -> str:
    plugins = " and ".join(f"plugins/{p}" for p in image.plugins)
    variant_lines = ""
    args = ""
    if image.torch:
        variant_lines = (
            "# VARIANT=gpu (default): PyPI's torch, CUDA builds that also run on CPU (about 6 GB).\n"
            "# VARIANT=cpu: the CPU-only torch and torchvision from TORCH_CPU_INDEX, a much smaller image.\n"
        )
        args = f"ARG VARIANT={image.variants[0]}\nARG TORCH_CPU_INDEX={images.TORCH_CPU_INDEX}\n"
    elif image.env == "paddle":
        variant_lines = (
            "# VARIANT=cpu (default): PyPI's paddlepaddle. VARIANT=gpu: paddlepaddle-gpu from PADDLE_GPU_INDEX.\n"
        )
        args = f"ARG VARIANT={image.variants[0]}\nARG PADDLE_GPU_INDEX={images.PADDLE_GPU_INDEX}\n"
    env = {
        "PYTHONUNBUFFERED": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_ROOT_USER_ACTION": "ignore",
        "VIRTUAL_ENV": "/opt/prelabel",
        "PATH": "/opt/prelabel/bin:$PATH",
        "PRELABEL_HOME": "/data",
        "BIND_PORT": str(image.port),
        **image_env(image),
    }
    env_block = "ENV " + " \\\n    ".join(f"{k}={v}" for k, v in env.items()) + "\n"
    libgomp = ""
    if image.env == "paddle":
        libgomp = (
            "\n# paddle links the system's OpenMP runtime (libgomp.so.1), which slim images lack; a base image\n"
            "# that has it (an air-gapped build) skips the download\n"
            "RUN if ! ldconfig -p | grep -q 'libgomp\\.so\\.1 '; then \\\n"
            "        apt-get update && apt-get install -y --no-install-recommends libgomp1 && "
            "rm -rf /var/lib/apt/lists/*; \\\n    fi\n"
        )
    dirs = " ".join(f"/{v}" for v in image.volumes)
    pyprojects = "".join(f"COPY plugins/{p}/pyproject.toml /build/plugins/{p}/\n" for p in image.plugins)
    sources = "".join(f"COPY plugins/{p}/ /build/plugins/{p}/\n" for p in image.plugins)
    return f"""# prelabel {name} backend: {image.title}, port {image.port}. The image holds core and
# {plugins} only, pinned by {env_pins(image)}.
#
# Build from the repository root with BuildKit (Docker 23+, or DOCKER_BUILDKIT=1 on 20.10):
#   ci/build-image.sh {name}                 # [--variant V] [--wheelhouse DIR] [--base-image IMG]
#   docker build -f plugins/{name}/Dockerfile -t prelabel/{service(name)} .
#   docker compose -f compose/{name}.yml up
{variant_lines}# Behind a TLS-intercepting proxy, pass its CA for the downloads only (never stored in the image):
#   --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt
ARG BASE_IMAGE=python:3.11-slim
FROM ${{BASE_IMAGE}}

{args}{env_block}{libgomp}
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/prelabel prelabel \\
    && mkdir -p {dirs} && chown prelabel:prelabel {dirs}

# Third-party packages first: this layer depends only on the files copied for it, so a change
# to core's or the plugin's code rebuilds only the small layer after it.
COPY ci/images.py /build/ci/
COPY ci/docker/install.sh ci/docker/healthcheck.py /build/ci/docker/
{env_copy(image)}
COPY core/pyproject.toml /build/core/
{pyprojects}RUN --mount=type=secret,id=ca_bundle --mount=type=bind,source=ci/wheelhouse,target=/wheelhouse \\
    sh /build/ci/docker/install.sh deps {name}

COPY core/ /build/core/
{sources}RUN sh /build/ci/docker/install.sh app {name}

USER prelabel
WORKDIR /home/prelabel
EXPOSE {image.port}
# 503 while the model loads, 200 when ready; sends BASIC_AUTH_* when set
HEALTHCHECK --interval=15s --timeout=5s --start-period={start_period(image)}s --retries=3 CMD ["prelabel-healthcheck"]
ENTRYPOINT ["prelabel"]
CMD ["serve", "{name}"]
"""


# -- compose ------------------------------------------------------------------------------------
def env_file(name: str, image: Image) -> str:
    default = f"../plugins/{name}/.env" + ("" if image.secrets else ".example")
    return f"${{{var(name)}_ENV_FILE:-{default}}}"


def service_block(name: str, image: Image, stack_db: int | None = None) -> str:
    v = var(name)
    args = "        BASE_IMAGE: ${PRELABEL_BASE_IMAGE:-python:3.11-slim}\n"
    if len(image.variants) > 1:
        args += f"        VARIANT: ${{{v}_VARIANT:-{image.variants[0]}}}\n"
    env = {
        "BIND_PORT": f'"{image.port}"',
        "PRELABEL_HOME": "/data",
        **{k: f'"{val}"' if val.isdigit() else val for k, val in image_env(image).items()},
    }
    if stack_db is not None:
        env.update(
            {
                "LABEL_STUDIO_URL": "http://label-studio:8080",
                "LABEL_STUDIO_API_KEY": LS_TOKEN,
                "REDIS_URL": f"redis://redis:6379/{stack_db}",
                "JOB_RUNNER": "${JOB_RUNNER:-inprocess}",
                "LOCAL_FILES_DOCUMENT_ROOT": "/label-studio/files",
            }
        )
    env_lines = "".join(f"      {k}: {val}\n" for k, val in env.items())
    volumes = f"      - {service(name)}-data:/data\n"
    if "models" in image.volumes:
        volumes += f"      - ${{{v}_MODELS:-{service(name)}-models}}:/models\n"
    depends = ""
    if stack_db is not None:
        volumes += "      - ${LABEL_STUDIO_FILES:-label-studio-files}:/label-studio/files:ro\n"
        depends = "    depends_on:\n      redis:\n        condition: service_healthy\n"
    return f"""  {service(name)}:
    image: ${{PRELABEL_REGISTRY:-prelabel}}/{service(name)}:${{PRELABEL_TAG:-latest}}
    build:
      context: ..
      dockerfile: plugins/{name}/Dockerfile
      args:
{args}    env_file: {env_file(name, image)}
    environment:
{env_lines}    ports:
      - "${{{v}_PORT:-{image.port}}}:{image.port}"
    volumes:
{volumes}{depends}    restart: unless-stopped
    healthcheck:
      test: ["CMD", "prelabel-healthcheck"]
      interval: 15s
      timeout: 5s
      retries: 3
      start_period: {start_period(image)}s
"""


def volume_names(name: str, image: Image) -> list[str]:
    return [f"{service(name)}-{v}" for v in image.volumes]


def compose(name: str, image: Image) -> str:
    v = var(name)
    if image.secrets:
        how = f"#   cp plugins/{name}/.env.example plugins/{name}/.env     # settings and secrets; edit it\n"
    else:
        how = (
            f"#   (starts on the defaults in plugins/{name}/.env.example; to change them, copy it to\n"
            f"#   plugins/{name}/.env, edit that, and set {v}_ENV_FILE=../plugins/{name}/.env in compose/.env)\n"
        )
    gpu = (
        f"#   docker compose -f compose/{name}.yml -f compose/{name}.gpu.yml up -d   # on an NVIDIA GPU\n"
        if image.gpu
        else ""
    )
    variables = f"{v}_PORT (host port), {v}_ENV_FILE,\n# "
    if "models" in image.volumes:
        variables += f"{v}_MODELS (a host directory for /models instead of the named volume), "
    if len(image.variants) > 1:
        variables += f"{v}_VARIANT ({' or '.join(image.variants)}), "
    variables += "PRELABEL_BASE_IMAGE, PRELABEL_REGISTRY, PRELABEL_TAG."
    note = "".join(f"# {line}\n" for line in image.compose_note.splitlines())
    vols = "".join(f"  {n}:\n" for n in volume_names(name, image))
    return f"""# prelabel {name} backend on port {image.port}: {image.summary}
#
{how}#   docker compose -f compose/{name}.yml up -d               # or docker-compose; builds the image once
{gpu}#
# Then in Label Studio: Settings > Model > Connect Model, URL http://<this host>:{image.port}.
# Compose variables (shell or compose/.env): {variables}
{note}services:
{service_block(name, image)}volumes:
{vols}"""


def gpu_block(name: str) -> str:
    return f"""  {service(name)}:
    build:
      args:
        VARIANT: gpu
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ["${{{var(name)}_GPUS:-0}}"]
              capabilities: [gpu]
"""


def compose_gpu(name: str) -> str:
    return f"""# NVIDIA GPU for compose/{name}.yml (needs the NVIDIA Container Toolkit on the host):
#   docker compose -f compose/{name}.yml -f compose/{name}.gpu.yml up -d
# {var(name)}_GPUS picks the GPUs by index (default: the first).
services:
{gpu_block(name)}"""


def compose_ci(name: str, image: Image) -> str:
    return f"""# CI only (ci/docker-smoke.sh): compose/{name}.yml on the host network, listening on loopback,
# so the container and the test traffic stay on 127.0.0.1; never restarted behind the test's back;
# health checked every 2 s, so the test sees it ready soon after it is.
#   docker-compose -f compose/{name}.yml -f compose/ci/{name}.yml up -d
services:
  {service(name)}:
    network_mode: host
    restart: "no"
    environment:
      BIND_HOST: 127.0.0.1
      BIND_PORT: "${{{var(name)}_PORT:-{image.port}}}"
    healthcheck:
      interval: 2s
"""


def stack() -> str:
    secrets = " ".join(n for n, im in IMAGES.items() if im.secrets)
    urls = ", ".join(f"http://{service(n)}:{im.port}" for n, im in IMAGES.items())
    lines, line = [], "# Model > Connect Model) by their service names:"
    for url in urls.split(", "):
        piece = f" {url},"
        if len(line) + len(piece) > 98:
            lines.append(line)
            line = "#"
        line += piece
    lines.append(line.rstrip(",") + ". Label Studio runs with ML_BLOCK_LOCAL_IP=false because these")
    header = f"""# Label Studio, Redis and every prelabel backend on one compose network.
#
#   cp compose/.env.example compose/.env                  # Label Studio login and token; edit it
#   for p in {secrets}; do cp -n plugins/$p/.env.example plugins/$p/.env; done   # their API keys
#   (the other backends start on the defaults in their plugins/<name>/.env.example)
#   docker compose -f compose/stack.yml up -d             # everything (or docker-compose)
#   docker compose -f compose/stack.yml up -d label-studio kimi yolo   # or just some backends
#
# Label Studio is on http://localhost:8080. Connect any backends to one project (Settings >
{chr(10).join(lines)}
# addresses are private, and SSRF_PROTECTION_ENABLED=false so it can create the training webhook.
# The backends fetch media and annotations with LABEL_STUDIO_TOKEN (Label Studio's legacy token,
# created with the first user), read local files from the shared label-studio-files volume, and
# keep their state in Redis, one database each. Jobs run in the serving process
# (JOB_RUNNER=inprocess); with JOB_RUNNER=rq add `prelabel worker <plugin>` services.
# GPU: add -f compose/stack.gpu.yml.
"""
    services = "".join(service_block(n, im, stack_db=i + 1) for i, (n, im) in enumerate(IMAGES.items()))
    volumes = "".join(f"  {v}:\n" for n, im in IMAGES.items() for v in volume_names(n, im))
    return header + "services:\n" + STACK_SERVICES + services + "volumes:\n" + STACK_VOLUMES + volumes


def stack_gpu() -> str:
    return (
        "# NVIDIA GPUs for the GPU-capable backends of compose/stack.yml (NVIDIA Container Toolkit):\n"
        "#   docker compose -f compose/stack.yml -f compose/stack.gpu.yml up -d\n"
        "# Each backend reserves the GPU its <PLUGIN>_GPUS names (default: the first, shared).\n"
        "services:\n" + "".join(gpu_block(n) for n, im in IMAGES.items() if im.gpu)
    )


STACK_SERVICES = """  label-studio:
    image: ${LABEL_STUDIO_IMAGE:-heartexlabs/label-studio:1.23.2}
    environment:
      LABEL_STUDIO_USERNAME: ${LABEL_STUDIO_USERNAME:?copy compose/.env.example to compose/.env and set it}
      LABEL_STUDIO_PASSWORD: ${LABEL_STUDIO_PASSWORD:?copy compose/.env.example to compose/.env and set it}
      LABEL_STUDIO_USER_TOKEN: ${LABEL_STUDIO_TOKEN:?copy compose/.env.example to compose/.env and set it}
      LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN: "true"
      ML_BLOCK_LOCAL_IP: "false"
      SSRF_PROTECTION_ENABLED: "false"
      LOCAL_FILES_SERVING_ENABLED: "true"
      LOCAL_FILES_DOCUMENT_ROOT: /label-studio/files
      COLLECT_ANALYTICS: "false"
      LATEST_VERSION_CHECK: "false"
    ports:
      - "${LABEL_STUDIO_PORT:-8080}:8080"
    volumes:
      - label-studio-data:/label-studio/data
      - ${LABEL_STUDIO_FILES:-label-studio-files}:/label-studio/files
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', \
timeout=4)"]
      interval: 15s
      timeout: 5s
      retries: 3
      start_period: 120s
  redis:
    image: ${REDIS_IMAGE:-redis:7-bookworm}
    command: ["redis-server", "--appendonly", "yes"]
    ports:
      - "127.0.0.1:${REDIS_PORT:-6379}:6379"
    volumes:
      - redis-data:/data
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 10s
      timeout: 5s
      retries: 5
"""
STACK_VOLUMES = "  label-studio-data:\n  label-studio-files:\n  redis-data:\n"


def rendered() -> dict[Path, str]:
    """Every rendered file by its path under the repository root."""
    out: dict[Path, str] = {}
    for name, image in IMAGES.items():
        out[Path("plugins") / name / "Dockerfile"] = dockerfile(name, image)
        out[Path("compose") / f"{name}.yml"] = compose(name, image)
        out[Path("compose") / "ci" / f"{name}.yml"] = compose_ci(name, image)
        if image.gpu:
            out[Path("compose") / f"{name}.gpu.yml"] = compose_gpu(name)
    out[Path("compose") / "stack.yml"] = stack()
    out[Path("compose") / "stack.gpu.yml"] = stack_gpu()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that differ")
    args = parser.parse_args(argv)
    differ = []
    for rel, text in rendered().items():
        path = ROOT / rel
        if path.is_file() and path.read_text() == text:
            continue
        differ.append(str(rel))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and differ:
        print("not as rendered from ci/images.py (run python3 ci/render.py):\n  " + "\n  ".join(differ))
        return 1
    if not args.check:
        print(f"rendered {len(differ)} changed file(s)" + (": " + ", ".join(differ) if differ else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
