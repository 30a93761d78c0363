#!/usr/bin/env python3
"""Which packages to test and which images to build for a set of changed files.

    ci/changed-packages.py core/src/prelabel/server/app.py plugins/yolo/README.md
    git diff --name-only origin/main... | ci/changed-packages.py
    ci/changed-packages.py --from-git origin/main --github >> "$GITHUB_OUTPUT"

Prints {"packages": [...], "images": [...]} (JSON), or with --github the two lines
``packages=[...]`` and ``images=[...]`` for a GitHub Actions step output. Packages are ``core``
(core/tests and the repository's tests/) and the plugins; images are the plugins with a
Dockerfile entry in ci/images.py.

The rules, conservative where unsure:
- core/ changes every package and every image (all plugins run on core);
- plugins/<p>/ changes p and every plugin that depends on it (grounding_sam on sam2);
- ci/envs/<env>.* changes the plugins tested (and built) in that environment;
- the image machinery (ci/images.py, ci/docker/, ci/build-image.sh, .dockerignore, Dockerfiles)
  changes every image, and core, whose tests/deploy checks it; compose/, deploy/, tests/ and
  the end-to-end scripts change core; the shared test machinery (Makefile, scripts/bootstrap.sh,
  scripts/make-env.sh, pytest.ini, ruff.toml, ci/test-package.sh, this file, .ci/) changes every
  package; .github/ changes everything;
- documentation and benchmarks (docs/, bench/, top-level *.md) change nothing;
- any other path changes everything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from images import IMAGES, plugin_of, pyproject, split_requirement

ROOT = Path(__file__).resolve().parent.parent

EVERY_PACKAGE = (
    "Makefile",
    "scripts/bootstrap.sh",
    "scripts/make-env.sh",
    "pytest.ini",
    "ruff.toml",
    "ci/test-package.sh",
    "ci/changed-packages.py",
    ".ci/",
)
IMAGE_MACHINERY = (
    "ci/images.py",
    "ci/docker/",
    "ci/build-image.sh",
    ".dockerignore",
    "ci/docker-smoke.sh",
    "ci/wheelhouse/",
)
CORE_ONLY = (
    "compose/",
    "deploy/",
    "tests/",
    "scripts/demo.py",
    "scripts/demo_data.json",
    "scripts/install-label-studio.sh",
    ".gitignore",
)
NOTHING = ("docs/", "bench/")


def plugins(root: Path = ROOT) -> list[str]:
    """Every plugin package under plugins/ (a directory with a pyproject.toml)."""
    return sorted(p.parent.name for p in (root / "plugins").glob("*/pyproject.toml"))


def plugin_env(plugin: str, root: Path = ROOT) -> str:
    """The environment a plugin is tested in: plugins/<p>/ENV, else its image's, else light."""
    env_file = root / "plugins" / plugin / "ENV"
    if env_file.is_file():
        return env_file.read_text().strip()
    return IMAGES[plugin].env if plugin in IMAGES else "light"


def dependents(root: Path = ROOT) -> dict[str, set[str]]:
    """plugin -> the plugins that depend on it, directly or not (from the pyproject files)."""
    direct: dict[str, set[str]] = {p: set() for p in plugins(root)}
    for p in direct:
        for dep in pyproject(root / "plugins" / p / "pyproject.toml").get("dependencies", []):
            name = plugin_of(split_requirement(dep)[0])
            if name in direct:
                direct[name].add(p)
    closed: dict[str, set[str]] = {}
    for p in direct:
        seen, todo = set(), [p]
        while todo:
            for d in direct[todo.pop()]:
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        closed[p] = seen
    return closed


def classify(files: list[str], root: Path = ROOT) -> dict[str, list[str]]:
    all_plugins = plugins(root)
    everything = {"core", *all_plugins}
    deps = dependents(root)
    packages: set[str] = set()
    images: set[str] = set()
    for raw in files:
        path = raw.strip().removeprefix("./")
        if not path:
            continue
        parts = path.split("/")
        if path.startswith("core/") or path.startswith(".github/"):
            packages |= everything
            images |= set(IMAGES)
        elif parts[0] == "plugins" and len(parts) > 2 and parts[1] in all_plugins:
            hit = {parts[1], *deps[parts[1]]}
            packages |= hit
            images |= hit & set(IMAGES)
            if parts[2] == "Dockerfile":
                packages.add("core")  # tests/deploy checks the Dockerfiles
        elif parts[0] == "plugins":
            packages |= everything
            images |= set(IMAGES)
        elif path.startswith("ci/envs/"):
            env = parts[2].split(".", 1)[0]
            hit = {p for p in all_plugins if plugin_env(p, root) == env}
            if env == "README":
                hit = set()
            packages |= hit
            images |= hit & set(IMAGES)
        elif path.startswith(IMAGE_MACHINERY):
            packages.add("core")
            if path == "ci/docker/light.constraints":
                images |= {p for p, im in IMAGES.items() if im.env == "light"}
            elif path != "ci/docker-smoke.sh":
                images |= set(IMAGES)
            else:
                images |= {"kimi", "yolo"}  # what the smoke builds
        elif path.startswith(EVERY_PACKAGE):
            packages |= everything
        elif path.startswith(CORE_ONLY):
            packages.add("core")
        elif path.startswith(NOTHING) or ("/" not in path and path.endswith(".md")):
            pass
        else:
            packages |= everything
            images |= set(IMAGES)
    order = ["core", *all_plugins]
    return {"packages": [p for p in order if p in packages], "images": [p for p in IMAGES if p in images]}


def git_changed(base: str) -> list[str] | None:
    """Files changed since ``base`` (merge base with HEAD); None when git cannot tell (a new
    branch's all-zero 'before', a shallow clone without the base)."""
    if not base or set(base) == {"0"}:
        return None
    try:
        out = subprocess.run(
            ["git", "diff", "--name-only", f"{base}...HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    return out.splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="changed paths (default: read from stdin)")
    parser.add_argument("--from-git", metavar="BASE", help="the files changed between BASE and HEAD")
    parser.add_argument("--all", action="store_true", help="every package and image")
    parser.add_argument("--github", action="store_true", help="print packages=... and images=... lines")
    args = parser.parse_args(argv)
    if args.all:
        files: list[str] | None = None
    elif args.from_git is not None:
        files = git_changed(args.from_git)
    else:
        files = args.files or sys.stdin.read().split()
    result = classify(files, ROOT) if files is not None else classify(["core/"], ROOT)
    if args.github:
        print(f"packages={json.dumps(result['packages'])}")
        print(f"images={json.dumps(result['images'])}")
    else:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
