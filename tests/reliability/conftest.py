"""Reliability suites: load, faults, bad input, security, scale-out. Each test records its
figures with the ``figures`` fixture; they are printed at the end of the run."""

from __future__ import annotations

import pytest

from prelabel.testing.harness.redisserver import RedisServer

_FIGURES: list[str] = []


@pytest.fixture
def figures(request):
    """Call ``figures("load: 2000 requests ...")`` to report a figure at the end of the run."""

    def record(line: str) -> None:
        _FIGURES.append(f"{request.node.name}: {line}")

    return record


@pytest.fixture
def redis_server(tmp_path):
    if not RedisServer.available():
        pytest.skip("needs redis-server: apt-get install redis-server")
    with RedisServer(tmp_path / "redis") as server:
        yield server


_SESSION_FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def session_figures() -> dict[str, str]:
    """A dict of figures that later calls overwrite (for tests run many times by hypothesis)."""
    return _SESSION_FIGURES


def pytest_terminal_summary(terminalreporter):
    lines = _FIGURES + [f"{k}: {v}" for k, v in _SESSION_FIGURES.items()]
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
