import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# ultralytics reads these when first imported: no network, and no settings file in $HOME
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_CONFIG_DIR"] = _CONFIG_DIR = tempfile.mkdtemp(prefix="prelabel-yolo-config-")
atexit.register(shutil.rmtree, _CONFIG_DIR, True)

INSTALL = "needs ultralytics and torch: scripts/make-env.sh vision (pip install -e core -e plugins/yolo)"


@pytest.fixture(scope="session", autouse=True)
def model_root(tmp_path_factory) -> Path:
    """A MODEL_ROOT holding random-weight models under the plugin's default weights names,
    exported as MODEL_ROOT for every backend the tests start (the conformance suite's too)."""
    pytest.importorskip("ultralytics", reason=INSTALL)
    from yolo_randmodels import build_all

    root = build_all(tmp_path_factory.mktemp("model-root"))
    mp = pytest.MonkeyPatch()
    mp.setenv("MODEL_ROOT", str(root))
    yield root
    mp.undo()
