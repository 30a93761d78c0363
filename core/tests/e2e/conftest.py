"""Shared fixtures for end-to-end tests against a real Label Studio.

``label_studio`` (session scope) starts one Label Studio per test session, on a free
loopback port, and stops it at the end. Tests that use it are skipped when Label Studio is
not installed (``scripts/install-label-studio.sh`` creates ``<repo>/.venv-ls``).

Environment knobs:

- ``PRELABEL_LABEL_STUDIO_BIN``: the ``label-studio`` executable to use.
- ``PRELABEL_E2E_LS_DATA_DIR``: a persistent data directory. The first session pays the
  30-50 s migrations; later sessions restart on it in about 4 s. Default: a fresh
  temporary directory per session.
- ``PRELABEL_E2E_LS_TIMEOUT``: seconds to wait for readiness (default 300).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

_HARNESS_FILE = Path(__file__).resolve().parents[2] / "src" / "prelabel" / "testing" / "harness" / "labelstudio.py"
_FALLBACK_NAME = "_prelabel_e2e_labelstudio"
INSTALL_HINT = "run scripts/install-label-studio.sh"


def _load_harness() -> ModuleType:
    """Import ``prelabel.testing.harness.labelstudio``; fall back to loading the file by path.

    The fallback keeps these tests independent of the rest of the ``prelabel`` package
    (not installed, or an ``__init__`` that fails to import).
    """
    try:
        from prelabel.testing.harness import labelstudio

        return labelstudio
    except Exception:
        pass
    if _FALLBACK_NAME in sys.modules:
        return sys.modules[_FALLBACK_NAME]
    spec = importlib.util.spec_from_file_location(_FALLBACK_NAME, _HARNESS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_FALLBACK_NAME] = module
    spec.loader.exec_module(module)
    return module


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test against a real Label Studio (slow)")


@pytest.fixture(scope="session")
def ls_harness() -> ModuleType:
    """The ``prelabel.testing.harness.labelstudio`` module."""
    return _load_harness()


@pytest.fixture(scope="session")
def label_studio_executable(ls_harness: ModuleType) -> Path:
    """The ``label-studio`` executable; skips the test when it is not installed."""
    executable = ls_harness.find_label_studio_executable()
    if executable is None or not executable.is_file():
        pytest.skip(f"{INSTALL_HINT} (no label-studio executable found: {executable or '.venv-ls missing'})")
    return executable


@pytest.fixture(scope="session")
def label_studio(
    ls_harness: ModuleType,
    label_studio_executable: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[object]:
    """One running ``LabelStudioServer`` for the whole session."""
    persistent = os.environ.get("PRELABEL_E2E_LS_DATA_DIR")
    data_dir = Path(persistent) if persistent else tmp_path_factory.mktemp("label-studio")
    server = ls_harness.LabelStudioServer(data_dir, executable=label_studio_executable)
    server.start(timeout=float(os.environ.get("PRELABEL_E2E_LS_TIMEOUT", "300")))
    try:
        yield server
    finally:
        server.stop()
