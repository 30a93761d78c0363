"""Nothing is written to $HOME and nothing leaves the machine: paddle, paddlenlp and
onnxruntime caches live in PRELABEL_HOME, checked in a fresh process as `prelabel serve` runs."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import asyncio, base64, ipaddress, json, socket, sys
attempts = []
real_connect = socket.socket.connect
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        try:
            local = ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            local = address[0] == "localhost"
        if not local:
            attempts.append(str(address))
            raise OSError("offline")
    return real_connect(self, address)
socket.socket.connect = connect

from prelabel.backend import Task
from prelabel.runtime import Runtime
from prelabel.plugins import load_backend_class
from prelabel.testing.images import png_bytes

runtime = Runtime(load_backend_class("uie_x"))
runtime.start()
project = runtime.remember_project("1", '''<View><Text name="text" value="$text"/>
  <Labels name="label" toName="text"><Label value="Person"/></Labels>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Person"/></RectangleLabels></View>''')
page = "data:image/png;base64," + base64.b64encode(png_bytes(64, 48, box=(8, 8, 40, 30))).decode()
results = asyncio.run(runtime.predict([Task(1, {"text": "Alice works in Paris.", "image": page})], project))
runtime.close()
import os
print(json.dumps({"attempts": attempts, "error": results[0].get("error"),
                  "xdg_cache_home": os.environ.get("XDG_CACHE_HOME")}))
"""


def test_caches_stay_in_prelabel_home_and_nothing_goes_online(tiny_uie, tmp_path):
    home, prelabel_home = tmp_path / "home", tmp_path / "prelabel"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PPNLP_HOME", "XDG_CACHE_HOME", "HF_HOME", "PRELABEL_HOME")}
    env.update(
        HOME=str(home),
        PRELABEL_HOME=str(prelabel_home),
        UIE_TASK_PATH=str(tiny_uie),
        UIE_MAX_SEQ_LEN="64",
        UIE_OCR_SIDE_LEN="64",
        PRELABEL_PLUGINS="uie_x",
        LOG_LEVEL="WARNING",
    )
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["attempts"] == [] and report["error"] is None
    # onnxruntime (and anything else using XDG) caches under PRELABEL_HOME; whether onnxruntime
    # writes its deviceid file at all depends on the machine, so the check is on the variable
    assert report["xdg_cache_home"] == str(prelabel_home / "cache")
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []
    assert (prelabel_home / "paddlenlp").is_dir()  # PPNLP_HOME
    assert (prelabel_home / "cache" / ".cache" / "paddle").is_dir()  # paddle's import-time cache dir
