from pathlib import Path

import pytest

INSTALL = 'needs torch and transformers 5.23: scripts/make-env.sh vision (or pip install "transformers>=5.23" torch)'


@pytest.fixture(scope="session", autouse=True)
def model_root(tmp_path_factory) -> Path:
    """A MODEL_ROOT holding a tiny random-weight SAM 3 (directory ``sam3-tiny``, the real
    checkpoint's layout, built offline), exported for every backend the tests start."""
    pytest.importorskip("torch", reason=INSTALL)
    transformers = pytest.importorskip("transformers", reason=INSTALL)
    if not hasattr(transformers, "Sam3VideoModel"):
        pytest.skip(INSTALL)
    from prelabel_sam3.testing import write_tiny_sam3

    root = tmp_path_factory.mktemp("model-root")
    write_tiny_sam3(root / "sam3-tiny")
    mp = pytest.MonkeyPatch()
    for key, value in {
        "MODEL_ROOT": str(root),
        "SAM3_MODEL": "sam3-tiny",
        "DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "SAM3_SCORE_THRESHOLD": "0.2",
        "SAM3_VIDEO_MAX_OBJECTS": "4",
    }.items():
        mp.setenv(key, value)
    yield root
    mp.undo()
