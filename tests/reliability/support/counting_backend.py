"""A trainable backend for scale-out tests: each fit appends its job id to COUNTING_LOG, and
a 'slow' training waits for a file to appear (so a test can kill the worker mid-training)."""

import os
import time
from pathlib import Path

from prelabel.testing.reference import ReferenceBackend


class CountingBackend(ReferenceBackend):
    backend_id = "counting"

    def fit(self, job):
        with open(os.environ["COUNTING_LOG"], "a") as f:
            f.write(f"{job.job.id} {os.getpid()}\n")
        gate = job.params.get("wait_for")
        if gate:
            (job.workdir / "partial.bin").write_bytes(b"half")
            while not Path(gate).exists():
                time.sleep(0.05)
        return super().fit(job)
