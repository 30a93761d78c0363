import importlib.util
import ipaddress
import socket
from pathlib import Path

import pytest

INSTALL = "needs paddlepaddle, paddlenlp and rapidocr: scripts/make-env.sh paddle (ci/envs/paddle.txt)"
LOCAL_NAMES = {"localhost", "testserver", ""}

# Tests talk to loopback only: any other connection (paddlenlp's usage ping, a model download)
# is refused here and fails the test that made it.
_blocked: list[str] = []
_real_connect, _real_getaddrinfo = socket.socket.connect, socket.getaddrinfo


def _is_local(host: object) -> bool:
    if not isinstance(host, str) or host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _blocked.append(f"connect {address}")
        raise OSError(f"tests may not reach {address}")
    return _real_connect(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_local(host.decode() if isinstance(host, bytes) else host):
        _blocked.append(f"resolve {host}")
        raise socket.gaierror(f"tests may not resolve {host}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def loopback_only():
    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", _guarded_connect)
    mp.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def no_network_attempts():
    start = len(_blocked)
    yield
    assert _blocked[start:] == [], f"the test tried to leave loopback: {_blocked[start:]}"


@pytest.fixture(scope="session")
def paddle_home(tmp_path_factory) -> Path:
    """paddle/paddlenlp imported the plugin's way: caches under a temporary directory."""
    if importlib.util.find_spec("paddlenlp") is None:  # not importorskip: importing it is prepare_paddle's job
        pytest.skip(INSTALL)
    from prelabel_uie_x.engine import prepare_paddle

    root = tmp_path_factory.mktemp("paddle-home")
    prepare_paddle(root / "paddlenlp", root / "cache")
    return root


@pytest.fixture(scope="session")
def tiny_uie(paddle_home, tmp_path_factory) -> Path:
    """A random tiny UIE (text)."""
    from uie_x_corpus import vocabulary_words
    from uie_x_tinymodels import build_uie

    return build_uie(tmp_path_factory.mktemp("models") / "tiny-uie", vocabulary_words())


@pytest.fixture(scope="session")
def tiny_uiex(paddle_home, tmp_path_factory) -> Path:
    """A random tiny UIE-X (text and documents)."""
    from uie_x_corpus import corpus_lines
    from uie_x_tinymodels import build_uiex

    return build_uiex(tmp_path_factory.mktemp("models") / "tiny-uie-x", corpus_lines())


@pytest.fixture(scope="session", autouse=True)
def default_task_path(request):
    """UIE_TASK_PATH for backends the tests start without settings (the conformance suite's)."""
    path = request.getfixturevalue("tiny_uie")
    mp = pytest.MonkeyPatch()
    mp.setenv("UIE_TASK_PATH", str(path))
    yield path
    mp.undo()
