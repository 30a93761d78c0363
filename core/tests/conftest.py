import pytest

from prelabel.testing.client import make_runtime
from prelabel.testing.reference import ReferenceBackend


@pytest.fixture
def reference_runtime(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    yield rt
    rt.close()


@pytest.fixture
def redis_url(tmp_path):
    from prelabel.testing.harness.redisserver import RedisServer

    if not RedisServer.available():
        pytest.skip("needs redis-server: apt-get install redis-server")
    with RedisServer(tmp_path / "redis") as server:
        yield server.url
