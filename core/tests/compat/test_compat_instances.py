"""The model instances a ``--model-file`` process keeps are bounded by count and by memory:
requests with ever new (forged) project ids used to add an instance each, forever (issue 15:
150 ids, +580 MB)."""

import os

import pytest

from prelabel.compat import LabelStudioMLBase, adapt
from prelabel.testing import configs, make_runtime, serve_in_process

BLOB_BYTES = 2 * 1024 * 1024


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class Hungry(LabelStudioMLBase):
    """Holds 2 MB per instance, resident (not lazily mapped zero pages)."""

    def setup(self):
        self.blob = bytes(range(256)) * (BLOB_BYTES // 256)
        self.set("setups", (self.get("setups") or 0) + 1)

    def predict(self, tasks, context=None, **kwargs):
        return [{"result": []} for _ in tasks]


HUNGRY = adapt(Hungry)


@pytest.fixture
def serve(tmp_path):
    runtimes = []

    def _serve(**env):
        with pytest.MonkeyPatch.context() as mp:  # the bounds are read from the environment
            for name, value in env.items():
                mp.setenv(name, str(value))
            runtime = make_runtime(HUNGRY, tmp_path / "home")
        runtimes.append(runtime)
        return serve_in_process(runtime), runtime

    yield _serve
    for runtime in runtimes:
        runtime.close()


def _setup(client, project):
    resp = client.post("/setup", json={"project": f"{project}.1700000000", "schema": configs.TEXT_CHOICES})
    assert resp.status_code == 200, resp.text


@pytest.mark.skipif(rss_bytes() is None, reason="reads RSS from /proc (Linux)")
def test_forged_project_ids_do_not_grow_the_process_past_the_memory_bound(serve):
    server, runtime = serve(MODEL_INSTANCES_MAX=10_000, MODEL_INSTANCES_MAX_MB=16)
    with server as client:
        _setup(client, "warm-up")  # one-off costs (imports, caches) before measuring
        before = rss_bytes()
        for i in range(60):
            _setup(client, f"forged-{i}")
        grown = rss_bytes() - before
        backend = runtime.backend
        kept = backend.instances()
    # unbounded, 60 instances of 2 MB each would add about 120 MB and all stay
    assert grown < 60 * 1024 * 1024, f"RSS grew by {grown / 1e6:.0f} MB for 60 forged project ids"
    assert 1 <= len(kept) <= 16 * 1024 * 1024 // BLOB_BYTES + 1, len(kept)
    assert list(kept)[-1] == "forged-59"  # the most recent stay
    assert backend.instances_bytes() <= 16 * 1024 * 1024 + BLOB_BYTES


def test_the_count_bound_evicts_the_least_recently_used_and_they_come_back(serve):
    server, runtime = serve(MODEL_INSTANCES_MAX=3)
    with server as client:
        for project in ("1", "2", "3"):
            _setup(client, project)
        _setup(client, "1")  # 1 is used again: 2 is now the least recently used
        _setup(client, "4")
        assert list(runtime.backend.instances()) == ["3", "1", "4"]
        _setup(client, "2")  # evicted earlier: a new instance, setup() again, state kept
        assert list(runtime.backend.instances()) == ["1", "4", "2"]
    state = runtime.state
    assert state.get("label_studio_ml:2", "setups") == 2
    assert state.get("label_studio_ml:1", "setups") == 1


def test_the_bounds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODEL_INSTANCES_MAX", "5")
    monkeypatch.setenv("MODEL_INSTANCES_MAX_MB", "64")
    settings = HUNGRY.Settings()
    assert (settings.model_instances_max, settings.model_instances_max_mb) == (5, 64)
    monkeypatch.setenv("MODEL_INSTANCES_MAX", "0")
    with pytest.raises(ValueError, match="model_instances_max"):
        HUNGRY.Settings()


def test_once_only_warnings_do_not_remember_every_forged_project(caplog):
    """The version-mismatch warning is logged once per (project, version): a bounded memory."""
    backend = HUNGRY()
    with caplog.at_level("ERROR", logger="prelabel.compat"):
        for i in range(5_000):
            backend._warn_once(("version", f"forged-{i}", "v"), "project %s", i)
    assert 0 < len(backend._warned) <= 4096
