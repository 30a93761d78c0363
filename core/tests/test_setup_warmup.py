"""Label Studio allows /setup 3 s and never retries it (docs/label-studio-protocol.md section 11).

The first label config parse imports label-studio-sdk's LabelInterface, which took 1-4 s on
a busy CI machine: a real Label Studio then refused the first connection to a freshly started
backend ("Read timed out. (read timeout=3.0)"). ``create_app`` pays that import before the
process (or each of several workers) accepts a connection. A fresh interpreter is needed to see
which modules are imported.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from pathlib import Path
from prelabel.testing.client import make_runtime
from prelabel.testing.reference import ReferenceBackend

from prelabel.server.app import create_app

runtime = make_runtime(ReferenceBackend, Path(sys.argv[1]))
heavy = "label_studio_sdk.label_interface"
before = heavy in sys.modules
create_app(runtime, start_setup=False)
print(before, heavy in sys.modules)
"""


def test_create_app_imports_the_label_config_parser_before_serving(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.split()
    assert before == "False", "importing prelabel should not pay for the label config parser"
    assert after == "True", "the first /setup would pay for importing LabelInterface"
