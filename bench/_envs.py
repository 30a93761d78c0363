"""Shared by the benchmarks whose plugin lives in its own environment (ci/envs/): run the
benchmark there. Not a benchmark itself (`make bench` skips files starting with "_")."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_in(env: str, *modules: str) -> None:
    """Return when ``modules`` import here; else re-run this script with ``.venv-<env>``'s
    Python, or print why it is skipped and exit 0 when that environment is missing."""
    try:
        for module in modules:
            importlib.import_module(module)
        return
    except ImportError:
        pass
    python = ROOT / f".venv-{env}" / "bin" / "python"
    if python.exists() and Path(sys.prefix).resolve() != python.parents[1].resolve():
        os.execv(str(python), [str(python), *sys.argv])
    print(f"skipped: needs .venv-{env} (scripts/make-env.sh {env})")
    sys.exit(0)
