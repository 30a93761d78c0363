"""pytest fixtures every plugin's tests get (registered through the pytest11 entry point)."""

from __future__ import annotations

import pytest

from prelabel.testing import configs as _configs
from prelabel.testing.images import data_uri, png_bytes


@pytest.fixture
def label_configs() -> dict[str, str]:
    """The library of label configs, by name (see prelabel.testing.configs)."""
    return dict(_configs.ALL)


@pytest.fixture
def synthetic_image() -> bytes:
    """A 64x48 PNG with a white box at (16, 12)-(40, 36)."""
    return png_bytes(64, 48, box=(16, 12, 40, 36))


@pytest.fixture
def synthetic_image_uri(synthetic_image: bytes) -> str:
    return data_uri(synthetic_image)


@pytest.fixture
def prelabel_home(tmp_path, monkeypatch):
    """A fresh PRELABEL_HOME for the test."""
    home = tmp_path / "prelabel-home"
    monkeypatch.setenv("PRELABEL_HOME", str(home))
    return home


@pytest.fixture
def fake_openai():
    """A started :class:`prelabel.testing.fake_openai.FakeOpenAI` on 127.0.0.1 (``.base_url``),
    stopped after the test; script it with ``enqueue(Reply...)`` and read ``chat_requests``."""
    from prelabel.testing.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server
