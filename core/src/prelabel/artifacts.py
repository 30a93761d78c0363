"""Versioned model directories: train into a temporary directory, promote atomically.

Layout: ``PRELABEL_HOME/models/<backend>/<project>/<version>/`` holding what the plugin wrote
plus ``job_result.json``. The project's current version lives in state, so every process
and replica switches to a new version together, and only after the directory is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from prelabel.paths import safe_id, safe_version
from prelabel.state import ProjectState

#: state namespace: project id -> its current trained version (what /health and /versions list,
#: without walking every project's namespace)
TRAINED_NS = "trained"
REFUSED_KEPT = 20


def numeric(result: dict[str, Any]) -> dict[str, float]:
    """The top-level numbers of a training result (what /versions shows as metrics)."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float))}


class ArtifactStore:
    def __init__(self, root: Path, backend_id: str):
        self.root = Path(root)
        self.backend_id = backend_id

    def project_dir(self, project: str) -> Path:
        return self.root / safe_id(project)

    def new_workdir(self, project: str, job_id: str) -> Path:
        path = self.project_dir(project) / f".tmp-{safe_id(job_id, 'job id')}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def discard(self, workdir: Path) -> None:
        shutil.rmtree(workdir, ignore_errors=True)

    def clean_workdirs(self, keep: set[str] = frozenset()) -> list[Path]:
        """Remove ``.tmp-<job>`` directories left by training that was killed (run at start;
        ``keep`` names jobs still running elsewhere, e.g. on another replica)."""
        removed = []
        if not self.root.is_dir():
            return removed
        for path in self.root.glob("*/.tmp-*"):
            if path.is_dir() and path.name[len(".tmp-") :] not in keep:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def promote(self, state: ProjectState, workdir: Path, job_id: str, result: dict[str, Any]) -> str:
        """Move a finished workdir into place and make it the project's current version."""
        version = f"{self.backend_id}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{job_id[:6]}"
        final = self.project_dir(state.project_id) / safe_version(version)
        record = {
            "status": "ok",
            "version": version,
            "job_id": job_id,
            "project": state.project_id,
            "workdir": str(final),
            "time": time.time(),
            "train_output": result,
        }
        (workdir / "job_result.json").write_text(json.dumps(record, indent=2, default=str))
        os.replace(workdir, final)  # atomic on one filesystem: the version dir appears complete
        versions = state.get("versions", [])
        versions.append(
            {
                "version": version,
                "path": str(final),
                "created_at": record["time"],
                "metrics": numeric(result),
                **({"reason": result["reason"]} if isinstance(result.get("reason"), str) else {}),
            }
        )
        state.set("versions", versions)
        state.set("model_version", version)
        state.set("model_dir", str(final))
        state.store.set(TRAINED_NS, state.project_id, version)
        return version

    def refuse(self, state: ProjectState, job_id: str, reason: str, result: dict[str, Any]) -> None:
        """Record a version that training built and evaluation refused (``/versions`` lists
        the last REFUSED_KEPT per project with the reason)."""
        refused = state.get("refused_versions", []) or []
        refused.append({"job_id": job_id, "created_at": time.time(), "reason": reason, "metrics": numeric(result)})
        state.set("refused_versions", refused[-REFUSED_KEPT:])

    @staticmethod
    def current(values: dict[str, Any]) -> tuple[str | None, Path | None]:
        """(version, directory) of the trained model in a project's state values, if any."""
        version, path = values.get("model_version"), values.get("model_dir")
        if version and path and Path(path).is_dir():
            return version, Path(path)
        return None, None
