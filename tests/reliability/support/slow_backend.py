"""A backend whose blocking predict waits until a file appears (or SLOW_PREDICT_SECONDS pass),
so a test can hold a /predict in flight while it signals the server."""

import os
import time
from pathlib import Path

from prelabel.testing.reference import ReferenceBackend


class SlowBackend(ReferenceBackend):
    backend_id = "slow"

    def predict(self, tasks, ctx):  # a plain def: core runs it in a worker thread
        Path(os.environ["SLOW_STARTED"]).write_text("in predict")
        gate = Path(os.environ["SLOW_GATE"])
        deadline = time.monotonic() + float(os.environ.get("SLOW_PREDICT_SECONDS", "60"))
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return [None for _ in tasks]
