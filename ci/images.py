#!/usr/bin/env python3
"""What each plugin's Docker image installs, in one table.

Read by ci/build-image.sh (the wheelhouse), ci/changed-packages.py (which images a change
rebuilds), ci/docker/install.sh (inside the image build, where only the copied files exist)
and tests/deploy. Versions are never written here: constraints come from the environment the
plugin is tested in (ci/envs/<env>.txt pins and ci/envs/<env>.constraints; the light
environment's from ci/docker/light.constraints), and requirements from the pyproject files.

    python3 ci/images.py list
    python3 ci/images.py requirements yolo [--variant cpu]   # third-party requirement lines
    python3 ci/images.py constraints yolo [--variant cpu]    # constraint lines
    python3 ci/images.py overrides uie_x                     # override lines (uv --override)
    python3 ci/images.py index-args yolo [--variant cpu]     # extra pip index arguments
    python3 ci/images.py show yolo                           # the table row as JSON
    python3 ci/images.py repo text_classifier                # text-classifier (prelabel/<repo>)

Standard library only (Python 3.11+: tomllib), so it runs in any base image.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent

# Extra package indexes for variants PyPI does not carry (overridable at build time).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PADDLE_GPU_INDEX = "https://www.paddlepaddle.org.cn/packages/stable/cu126/"


@dataclass(frozen=True)
class Image:
    port: int
    env: str  # the test environment whose pins the image uses: light (.venv), vision, paddle
    plugins: tuple[str, ...]  # local packages under plugins/, dependencies first
    core_extras: tuple[str, ...] = ("redis",)  # plus the extras the plugins ask for
    extras: tuple[str, ...] = ()  # requirement lines the pyprojects do not carry
    variants: tuple[str, ...] = ("cpu",)  # the first is the default
    torch: bool = False
    sam2: bool = False  # build sam2 from source against the installed torch (ci/envs/vision.post.sh)
    gpu: bool = False  # compose gets a GPU override file (compose/<name>.gpu.yml)
    volumes: tuple[str, ...] = field(default=("data",))  # named volumes: data -> /data, models -> /models
    # needs a secret to start (an API key): compose reads plugins/<name>/.env, which the user
    # creates from .env.example; the others start on .env.example's defaults
    secrets: bool = False
    # what ci/render.py writes into the Dockerfile and compose headers
    title: str = ""  # short: "Ultralytics YOLO"
    summary: str = ""  # one sentence for the compose header
    compose_note: str = ""  # one more comment line for the compose header
    model_root: bool = False  # MODEL_ROOT=/models (weights the plugin loads from the models volume)
    environment: tuple[tuple[str, str], ...] = ()  # extra environment of the image and services


# sam2 is source-only on PyPI and built without build isolation (--no-deps), so its own runtime
# requirements that the plugins' pyprojects do not list are named here.
SAM2_RUNTIME = ("torchvision", "tqdm", "hydra-core", "iopath", "setuptools>=61")

IMAGES: dict[str, Image] = {
    "kimi": Image(
        8751,
        "light",
        ("kimi",),
        secrets=True,
        title="Moonshot Kimi (LLM API)",
        summary="Moonshot Kimi (LLM API): text classification, NER, free text.",
    ),
    "modelscope_qwen": Image(
        9090,
        "light",
        ("modelscope_qwen",),
        secrets=True,
        title="Qwen on ModelScope API-Inference (LLM API)",
        summary="Qwen3-Coder on ModelScope API-Inference (LLM API).",
    ),
    "text_classifier": Image(
        9095,
        "light",
        ("text_classifier",),
        title="scikit-learn text classifier",
        summary="scikit-learn text classifier, trained from annotations.",
    ),
    "sam2": Image(
        9091,
        "vision",
        ("sam2",),
        extras=SAM2_RUNTIME,
        variants=("gpu", "cpu"),
        torch=True,
        sam2=True,
        gpu=True,
        volumes=("data", "models"),
        model_root=True,
        title="SAM 2 interactive segmentation",
        summary="SAM 2 interactive click/box segmentation and video propagation.",
        compose_note="SAM 2 checkpoints (sam2.1_hiera_large.pt...) go in the models volume, /models in the container.",
    ),
    "grounding_sam": Image(
        9092,
        "vision",
        ("sam2", "grounding_sam"),
        extras=SAM2_RUNTIME,
        variants=("gpu", "cpu"),
        torch=True,
        sam2=True,
        gpu=True,
        volumes=("data", "models"),
        model_root=True,
        environment=(("HF_HOME", "/models/huggingface"),),
        title="Grounding DINO + SAM 2",
        summary="Grounding DINO text prompts -> boxes -> SAM 2 masks.",
        compose_note="SAM 2 checkpoints and Grounding DINO go in the models volume (/models); "
        "HF_HOME=/models/huggingface.",
    ),
    # ultralytics installs lap at run time when tracking is first used; offline that fails
    "yolo": Image(
        9093,
        "vision",
        ("yolo",),
        extras=("lap",),
        variants=("gpu", "cpu"),
        torch=True,
        gpu=True,
        volumes=("data", "models"),
        model_root=True,
        title="Ultralytics YOLO",
        summary="Ultralytics YOLO detection, segmentation, classification, pose, OBB, tracking, training.",
        compose_note="YOLO weights (yolo11n.pt..., your trained .pt files) go in the models volume, "
        "/models in the container.",
    ),
    # paddlepaddle is not a plugin dependency (CPU and GPU wheels differ); paddlenlp imports
    # setuptools and pip at run time without declaring them
    "uie_x": Image(
        9094,
        "paddle",
        ("uie_x",),
        extras=("paddlepaddle", "setuptools", "pip"),
        variants=("cpu", "gpu"),
        gpu=True,
        volumes=("data", "models"),
        environment=(("PPNLP_HOME", "/models/paddlenlp"),),
        title="PaddleNLP UIE / UIE-X",
        summary="PaddleNLP UIE / UIE-X extraction from text and documents.",
        compose_note="PaddleNLP models are downloaded into the models volume (PPNLP_HOME=/models/paddlenlp).",
    ),
    # transformers' SAM 3 (its video processor needs torchvision, which sam3's pyproject does not list)
    "sam3": Image(
        9097,
        "vision",
        ("sam3",),
        extras=("torchvision",),
        variants=("gpu", "cpu"),
        torch=True,
        gpu=True,
        volumes=("data", "models"),
        model_root=True,
        environment=(("HF_HUB_OFFLINE", "1"),),
        title="SAM 3 concept segmentation",
        summary="SAM 3 concept segmentation with the project's labels as prompts.",
        compose_note="SAM 3 weights (transformers' format, from https://huggingface.co/facebook/sam3 under "
        "Meta's SAM License)\ngo in the models volume as /models/sam3 (SAM3_MODEL=sam3), "
        "/models in the container.",
    ),
    # tested in .venv-llamacpp (beside a real llama.cpp server); the image holds no model server
    "openai_compatible": Image(
        9096,
        "llamacpp",
        ("openai_compatible",),
        secrets=True,
        title="a self-hosted OpenAI-compatible model server",
        summary="your own OpenAI-compatible model server (vLLM, Ollama, llama.cpp, LM Studio).",
        compose_note="The model server is not in the image: set LLM_BASE_URL and LLM_MODEL "
        "in plugins/openai_compatible/.env.",
    ),
}

SAM2_SPEC = "sam2==1.1.0"  # as ci/envs/vision.post.sh builds it
# The installer of the dependency step, as the test environments are made (uv pip install):
# the same resolver, and the only one that applies ci/envs/<env>.overrides.
UV_SPEC = "uv==0.13.8"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_of(dist: str) -> str | None:
    """'prelabel-sam2' -> 'sam2'; None for anything that is not a prelabel plugin."""
    n = normalize(dist)
    return n.removeprefix("prelabel-").replace("-", "_") if n.startswith("prelabel-") else None


def split_requirement(line: str) -> tuple[str, tuple[str, ...], str]:
    """'prelabel[vision,llm]>=0.1 ; python_version<"4"' -> ('prelabel', ('vision', 'llm'), '>=0.1 ; ...')."""
    m = _NAME.match(line)
    if not m:
        raise ValueError(f"not a requirement: {line!r}")
    extras = tuple(e.strip() for e in (m.group(2) or "[]")[1:-1].split(",") if e.strip())
    return m.group(1), extras, m.group(3).strip()


def pyproject(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)["project"]


def requirements(name: str, variant: str | None = None, root: Path = ROOT) -> list[str]:
    """Third-party requirement lines of the image: core's dependencies and extras, each local
    plugin's dependencies, the image's extras, and hatchling (the local packages are built
    without build isolation in a second step). sam2 itself is built separately."""
    image = IMAGES[name]
    variant = check_variant(name, variant)
    core = pyproject(root / "core" / "pyproject.toml")
    core_extras = set(image.core_extras)
    lines: list[str] = list(core["dependencies"])
    for plugin in image.plugins:
        for dep in pyproject(root / "plugins" / plugin / "pyproject.toml").get("dependencies", []):
            dist, extras, _ = split_requirement(dep)
            if normalize(dist) == "prelabel":
                core_extras.update(extras)
            elif plugin_of(dist) is None:
                lines.append(dep)
    optional = core.get("optional-dependencies", {})
    for extra in sorted(core_extras):
        lines += optional[extra]
    lines += list(image.extras) + ["hatchling"]
    if variant == "gpu" and image.env == "paddle":
        lines = ["paddlepaddle-gpu" if normalize(split_requirement(x)[0]) == "paddlepaddle" else x for x in lines]
    seen: set[str] = set()
    return [x for x in lines if not (x in seen or seen.add(x))]


def env_pins(env: str, root: Path = ROOT) -> list[str]:
    """Version-bearing requirement lines of ci/envs/<env>.txt (without extras) and the lines of
    its constraints file: what that environment's tests ran with."""
    if env == "light":
        files = [root / "ci" / "docker" / "light.constraints"]
        pins_from = []
    else:
        files = [root / "ci" / "envs" / f"{env}.constraints"]
        pins_from = [root / "ci" / "envs" / f"{env}.txt"]
    out: list[str] = []
    for path in pins_from:
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            dist, _, spec = split_requirement(line)
            if spec and plugin_of(dist) is None and normalize(dist) != "prelabel":
                out.append(f"{dist}{spec}")
    for path in files:
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                out.append(line)
    return out


def overrides(name: str, root: Path = ROOT) -> list[str]:
    """ci/envs/<env>.overrides (uv --override): requirements that replace what a dependency
    declares, as the environment's tests ran with them."""
    path = root / "ci" / "envs" / f"{IMAGES[name].env}.overrides"
    if not path.is_file():
        return []
    return [line for raw in path.read_text().splitlines() if (line := raw.split("#", 1)[0].strip())]


def env_files(name: str, root: Path = ROOT) -> list[str]:
    """The files of the image's environment its Dockerfile copies (relative to the root)."""
    env = IMAGES[name].env
    if env == "light":
        return ["ci/docker/light.constraints"]
    return [
        f"ci/envs/{env}.{ext}"
        for ext in ("txt", "constraints", "overrides")
        if (root / "ci" / "envs" / f"{env}.{ext}").is_file()
    ]


def constraints(name: str, variant: str | None = None, root: Path = ROOT) -> list[str]:
    image = IMAGES[name]
    variant = check_variant(name, variant)
    out = []
    for line in env_pins(image.env, root):
        dist, _, spec = split_requirement(line)
        n = normalize(dist)
        if image.torch and variant == "cpu" and n in ("torch", "torchvision") and spec.startswith("=="):
            line = f"{dist}{spec}+cpu"  # the CPU index's local versions (PyPI's are CUDA builds)
        elif image.env == "paddle" and variant == "gpu" and n == "paddlepaddle":
            line = f"paddlepaddle-gpu{spec}"
        if line not in out:
            out.append(line)
    if image.sam2:
        out.append(SAM2_SPEC)
    return out


def index_args(
    name: str,
    variant: str | None = None,
    torch_cpu_index: str = TORCH_CPU_INDEX,
    paddle_gpu_index: str = PADDLE_GPU_INDEX,
) -> list[str]:
    image = IMAGES[name]
    variant = check_variant(name, variant)
    if image.torch and variant == "cpu":
        return ["--extra-index-url", torch_cpu_index]
    if image.env == "paddle" and variant == "gpu":
        return ["--extra-index-url", paddle_gpu_index]
    return []


def repository(name: str) -> str:
    """The image's repository name: prelabel/<this>, as compose and deploy/k8s name it."""
    return name.replace("_", "-")


def check_variant(name: str, variant: str | None) -> str:
    image = IMAGES[name]
    if variant in (None, ""):
        return image.variants[0]
    if variant not in image.variants:
        raise SystemExit(f"{name}: no variant {variant!r} (has: {', '.join(image.variants)})")
    return variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command",
        choices=[
            "list",
            "show",
            "requirements",
            "constraints",
            "overrides",
            "index-args",
            "port",
            "env",
            "plugins",
            "default-variant",
            "repo",
            "version",
            "uv",
        ],
    )
    parser.add_argument("image", nargs="?")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (or the build's copy of it)")
    parser.add_argument("--torch-cpu-index", default=TORCH_CPU_INDEX)
    parser.add_argument("--paddle-gpu-index", default=PADDLE_GPU_INDEX)
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(IMAGES))
        return 0
    if args.command == "uv":
        print(UV_SPEC)
        return 0
    if args.image not in IMAGES:
        parser.error(f"name an image: {', '.join(IMAGES)}")
    image = IMAGES[args.image]
    if args.command == "show":
        print(json.dumps({"name": args.image, **asdict(image)}, indent=2))
    elif args.command == "requirements":
        print("\n".join(requirements(args.image, args.variant, args.root)))
    elif args.command == "constraints":
        print("\n".join(constraints(args.image, args.variant, args.root)))
    elif args.command == "overrides":
        print("\n".join(overrides(args.image, args.root)))
    elif args.command == "index-args":
        print(" ".join(index_args(args.image, args.variant, args.torch_cpu_index, args.paddle_gpu_index)))
    elif args.command == "port":
        print(image.port)
    elif args.command == "env":
        print(image.env)
    elif args.command == "plugins":
        print(" ".join(image.plugins))
    elif args.command == "default-variant":
        print(image.variants[0])
    elif args.command == "repo":
        print(repository(args.image))
    elif args.command == "version":
        print(pyproject(args.root / "plugins" / args.image / "pyproject.toml")["version"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
