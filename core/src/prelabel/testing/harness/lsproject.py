"""A Label Studio project driven as a user drives it, for plugins' end-to-end tests.

Files are uploaded (so tasks point at relative ``/data/upload/...`` paths that a backend must
fetch with a personal access token), the backend is connected through ``POST /api/ml``, and
predictions are asked for with the Data Manager's *Retrieve Predictions* action or a
prediction job; then :func:`check_predictions` reads back what Label Studio **stored** and
checks it the way Label Studio's own UI would need it: one prediction per task, the model
version ``/setup`` returned, only the project's labels, every region inside its image.

:func:`label_studio` starts a server for one test module. The first one on a machine runs the
migrations (30-160 s under load) and keeps a copy of the migrated data directory
(``$PRELABEL_LS_TEMPLATE``, default ``<tmp>/prelabel-ls-template-<uid>``); later ones start from
a copy of it in a few seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from prelabel.labelconfig import parse_label_config
from prelabel.testing.harness.labelstudio import (
    PAT_CACHE_NAME,
    LabelStudioServer,
    copy_data_dir,
    find_label_studio_executable,
)

__all__ = [
    "INSTALL_HINT",
    "check_predictions",
    "connect_backend",
    "label_studio",
    "project_tasks",
    "retrieve_predictions",
    "stored_predictions",
    "upload_files",
]

INSTALL_HINT = "needs Label Studio: run scripts/install-label-studio.sh (makes .venv-ls)"
TEMPLATE_ENV = "PRELABEL_LS_TEMPLATE"


def _template_dir() -> Path:
    override = os.environ.get(TEMPLATE_ENV)
    return Path(override) if override else Path(tempfile.gettempdir()) / f"prelabel-ls-template-{os.getuid()}"


@contextlib.contextmanager
def label_studio(data_dir: Path, timeout: float = 600.0) -> Iterator[LabelStudioServer]:
    """A running Label Studio on a fresh ``data_dir``, started from the migrated template when
    there is one (and leaving one behind when there was none). Raises ``LookupError`` with
    :data:`INSTALL_HINT` when Label Studio is not installed (tests turn it into a skip)."""
    executable = find_label_studio_executable()
    if executable is None or not executable.is_file():
        raise LookupError(INSTALL_HINT)
    data_dir = Path(data_dir)
    template = _template_dir()
    stamp = template / ".prelabel-template-of"
    ready = stamp.is_file() and stamp.read_text() == str(executable.resolve())
    if ready:
        copy_data_dir(template, data_dir)
    server = LabelStudioServer(data_dir, executable=executable)
    server.start(timeout=timeout)
    try:
        if not ready:
            _save_template(server, template, stamp, executable)
        yield server
    finally:
        server.stop()


def _save_template(server: LabelStudioServer, template: Path, stamp: Path, executable: Path) -> None:
    """Copy the freshly migrated data directory (before any project exists) as the template;
    a lock keeps two test processes from writing it at once."""
    server.personal_access_token()  # cached in the data directory, so copies accept it too
    template.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{template}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file():
            return
        partial = template.with_name(template.name + ".partial")
        if partial.exists():
            import shutil

            shutil.rmtree(partial)
        copy_data_dir(server.data_dir, partial)
        (partial / PAT_CACHE_NAME).chmod(0o600)
        (partial / stamp.name).write_text(str(executable.resolve()))
        if template.exists():
            import shutil

            shutil.rmtree(template)
        partial.rename(template)


def _http(ls: LabelStudioServer, timeout: float = 120.0) -> httpx.Client:
    return httpx.Client(base_url=ls.url, headers=ls.auth_headers("legacy"), timeout=timeout, trust_env=False)


def upload_files(ls: LabelStudioServer, project_id: int, files: Iterable[tuple[str, bytes, str]]) -> list[dict]:
    """Upload each ``(name, bytes, mime type)`` as a user does (one task per file); the
    project's tasks after the upload, oldest first."""
    with _http(ls) as http:
        for name, data, mime in files:
            resp = http.post(f"/api/projects/{project_id}/import", files={"file": (name, data, mime)})
            assert resp.status_code == 201, f"upload of {name}: {resp.status_code} {resp.text[:300]}"
    return project_tasks(ls, project_id)


def project_tasks(ls: LabelStudioServer, project_id: int) -> list[dict]:
    """All tasks of the project (``id``, ``data``...), oldest first."""
    with _http(ls) as http:
        resp = http.get("/api/tasks", params={"project": project_id, "page_size": 1000})
        resp.raise_for_status()
        return sorted(resp.json()["tasks"], key=lambda t: t["id"])


def connect_backend(
    ls: LabelStudioServer, project_id: int, url: str, title: str = "prelabel", interactive: bool = False
) -> dict:
    """``POST /api/ml``: the backend as the project's model (Label Studio calls /health and
    /setup and registers the project webhook). The stored ML backend record."""
    with _http(ls) as http:
        resp = http.post(
            "/api/ml", json={"url": url, "project": project_id, "title": title, "is_interactive": interactive}
        )
        assert resp.status_code == 201, f"connecting {url}: {resp.status_code} {resp.text[:500]}"
        return resp.json()


def retrieve_predictions(ls: LabelStudioServer, project_id: int) -> dict:
    """The Data Manager's *Retrieve Predictions* action on every task of the project. Label
    Studio answers 200 whatever the backend did: read :func:`stored_predictions` afterwards."""
    with _http(ls, timeout=600) as http:
        resp = http.post(
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project_id},
            json={"selectedItems": {"all": True, "excluded": []}},
        )
        assert resp.status_code == 200, f"retrieve predictions: {resp.status_code} {resp.text[:300]}"
        return resp.json()


def stored_predictions(ls: LabelStudioServer, project_id: int) -> list[dict]:
    """Every prediction Label Studio stored for the project."""
    with _http(ls) as http:
        resp = http.get("/api/predictions", params={"project": project_id})
        resp.raise_for_status()
        return resp.json()


def _image_size(region: dict) -> tuple[float, float] | None:
    if "original_width" in region and "original_height" in region:
        return float(region["original_width"]), float(region["original_height"])
    return None


def _region_problems(region: dict, sizes: dict[int, tuple[int, int]] | None, task: int) -> list[str]:
    """What puts a region outside its image (percent coordinates outside 0-100, a mask of
    another size than the image)."""
    problems: list[str] = []
    value = region.get("value", {})
    rid = region.get("id")

    def pct(name: str, v: float) -> None:
        if not -1e-6 <= float(v) <= 100 + 1e-6:
            problems.append(f"task {task} region {rid}: {name}={v} is outside 0-100 %")

    if region.get("type") in {"rectanglelabels", "rectangle"}:
        for key in ("x", "y", "width", "height"):
            pct(key, value[key])
        if not value.get("rotation"):
            pct("x+width", value["x"] + value["width"])
            pct("y+height", value["y"] + value["height"])
    elif region.get("type") in {"polygonlabels", "polygon"}:
        for px, py in value["points"]:
            pct("point x", px)
            pct("point y", py)
    elif region.get("type") in {"keypointlabels", "keypoint"}:
        pct("x", value["x"])
        pct("y", value["y"])
    elif region.get("type") in {"brushlabels", "brush"} and sizes is not None and task in sizes:
        size = _image_size(region)
        if size is not None and tuple(int(s) for s in size) != tuple(sizes[task]):
            problems.append(f"task {task} region {rid}: mask of {size}, image is {sizes[task]}")
    if sizes is not None and task in sizes and _image_size(region) is not None:
        size = tuple(int(s) for s in _image_size(region))  # type: ignore[union-attr]
        if size != tuple(sizes[task]):
            problems.append(f"task {task} region {rid}: original size {size}, image is {sizes[task]}")
    return problems


def _labels_of(region: dict) -> list[str]:
    value = region.get("value", {})
    found: list[str] = []
    for key, item in value.items():
        if key.endswith("labels") or key in {"labels", "choices"}:
            found.extend(item)
    return found


def check_predictions(
    stored: list[dict],
    tasks: Iterable[int],
    model_version: str,
    label_config: str,
    image_sizes: dict[int, tuple[int, int]] | None = None,
    allow_empty: bool = False,
) -> dict[int, dict]:
    """Assert what Label Studio stored is what its UI needs; the prediction of each task.

    Exactly one prediction per task, each of ``model_version``; results that name controls of
    the config and labels that control has; regions inside their image (``image_sizes``: task
    id -> (width, height) as the browser displays it). ``allow_empty=False`` also wants at
    least one region per task."""
    task_ids = list(tasks)
    per_task = Counter(p["task"] for p in stored)
    assert set(per_task) == set(task_ids), f"predictions for tasks {sorted(per_task)}, expected {sorted(task_ids)}"
    assert set(per_task.values()) == {1}, f"more than one prediction on a task: {dict(per_task)}"
    versions = {p["model_version"] for p in stored}
    assert versions == {model_version}, f"stored model versions {versions}, /setup said {model_version!r}"
    config = parse_label_config(label_config)
    problems: list[str] = []
    for pred in stored:
        if not pred["result"] and not allow_empty:
            problems.append(f"task {pred['task']}: empty prediction")
        for region in pred["result"]:
            control = config.control(region.get("from_name", ""))
            if control is None:
                problems.append(f"task {pred['task']}: from_name {region.get('from_name')!r} is not a control")
                continue
            if region.get("to_name") not in control.to_name:
                problems.append(f"task {pred['task']}: to_name {region.get('to_name')!r} not in {control.to_name}")
            if region.get("type") != control.type:
                problems.append(f"task {pred['task']}: type {region.get('type')!r}, control is {control.type!r}")
            if control.labels:
                foreign = set(_labels_of(region)) - set(control.labels)
                if foreign:
                    problems.append(
                        f"task {pred['task']}: labels {sorted(foreign)} are not the project's {list(control.labels)}"
                    )
            problems.extend(_region_problems(region, image_sizes, pred["task"]))
    assert not problems, "\n".join(problems)
    return {p["task"]: p for p in stored}


def ml_backend_version(ls: LabelStudioServer, ml_id: int) -> Any:
    """The ML backend record Label Studio holds (``model_version`` is /setup's answer)."""
    with _http(ls) as http:
        resp = http.get(f"/api/ml/{ml_id}")
        resp.raise_for_status()
        return resp.json()
