"""Fixtures of the browser tests: one Label Studio and one Chromium per test module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from prelabel.testing.harness.lsproject import label_studio as start

    try:
        with start(tmp_path_factory.mktemp("label-studio")) as server:
            yield server
    except LookupError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def browser(label_studio, request):
    from prelabel.testing.harness.browser import LabelStudioBrowser, artifact_dir, require_browser

    require_browser()
    folder = artifact_dir(request.module.__name__.rsplit(".", 1)[-1], fresh=True)
    with LabelStudioBrowser(label_studio, folder) as b:
        yield b
