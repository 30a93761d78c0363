from pathlib import Path

import pytest

INSTALL = "needs torch, transformers, sam2 and blingfire: scripts/make-env.sh vision"


@pytest.fixture(scope="session", autouse=True)
def model_root(tmp_path_factory) -> Path:
    """A MODEL_ROOT with a tiny random Grounding DINO (directory ``gdino-tiny``) and a
    random-weight SAM 2.1 tiny checkpoint, exported for every backend the tests start."""
    pytest.importorskip("transformers", reason=INSTALL)
    pytest.importorskip("sam2", reason=INSTALL)
    from prelabel_grounding_sam.testing import write_tiny_grounding_dino
    from prelabel_sam2.testing import write_random_checkpoint

    root = tmp_path_factory.mktemp("model-root")
    write_tiny_grounding_dino(root / "gdino-tiny")
    write_random_checkpoint(root / "sam2.1_hiera_tiny.pt", "tiny")
    mp = pytest.MonkeyPatch()
    for key, value in {
        "MODEL_ROOT": str(root),
        "GROUNDING_DINO_MODEL": "gdino-tiny",
        "MODEL_CONFIG": "tiny",
        "SAM2_IMAGE_SIZE": "128",
        "DEVICE": "cpu",
        "BOX_THRESHOLD": "0.3",
        "TEXT_THRESHOLD": "0.25",
    }.items():
        mp.setenv(key, value)
    yield root
    mp.undo()
