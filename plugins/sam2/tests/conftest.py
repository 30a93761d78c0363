from pathlib import Path

import pytest

INSTALL = "needs torch and sam2: scripts/make-env.sh vision"
IMAGE_SIZE = 128  # the model's input size in tests: random weights, so only speed matters


@pytest.fixture(scope="session", autouse=True)
def model_root(tmp_path_factory) -> Path:
    """A MODEL_ROOT holding a random-weight SAM 2.1 tiny checkpoint under its release name,
    exported with MODEL_CONFIG=tiny for every backend the tests start (conformance too)."""
    pytest.importorskip("sam2", reason=INSTALL)
    from prelabel_sam2.testing import write_random_checkpoint

    root = tmp_path_factory.mktemp("model-root")
    write_random_checkpoint(root / "sam2.1_hiera_tiny.pt", "tiny")
    mp = pytest.MonkeyPatch()
    mp.setenv("MODEL_ROOT", str(root))
    mp.setenv("MODEL_CONFIG", "tiny")
    mp.setenv("SAM2_IMAGE_SIZE", str(IMAGE_SIZE))
    mp.setenv("DEVICE", "cpu")
    yield root
    mp.undo()
