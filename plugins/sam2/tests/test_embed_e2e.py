"""The embed job against a real Label Studio: images uploaded as a user does (so tasks point at
relative /data/upload/ paths that need a personal access token), every one embedded by the
job, then the first click on each task read from the disk cache."""

from __future__ import annotations

import httpx
import pytest
import sam2_configs as configs
from prelabel_sam2 import Sam2Backend
from sam2_media import click

from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import per_task_results, wait_job
from prelabel.testing.images import png_bytes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from prelabel.testing.harness.labelstudio import LabelStudioServer, find_label_studio_executable

    executable = find_label_studio_executable()
    if executable is None or not executable.is_file():
        pytest.skip("needs Label Studio: run scripts/install-label-studio.sh")
    server = LabelStudioServer(tmp_path_factory.mktemp("label-studio"), executable=executable)
    server.start(timeout=300)
    try:
        yield server
    finally:
        server.stop()


def upload_images(ls, project_id: int, n: int) -> None:
    for i in range(n):
        image = png_bytes(96 + 8 * i, 64, box=(10 + 5 * i, 12, 50 + 5 * i, 48), noise=6, seed=i)
        resp = httpx.post(
            f"{ls.url}/api/projects/{project_id}/import",
            headers=ls.auth_headers("legacy"),
            files={"file": (f"photo-{i}.png", image, "image/png")},
            timeout=60,
        )
        assert resp.status_code == 201, resp.text


def test_embed_job_over_a_label_studio_project_then_first_clicks_hit_the_disk(label_studio, tmp_path):
    client = label_studio.client()
    project = client.projects.create(title="sam2-embed", label_config=configs.IMAGE_BRUSH)
    upload_images(label_studio, project.id, 3)
    tasks = [{"id": t.id, "data": dict(t.data)} for t in client.tasks.list(project=project.id)]
    assert len(tasks) == 3 and all(t["data"]["image"].startswith("/data/upload/") for t in tasks)

    runtime = make_runtime(
        Sam2Backend,
        tmp_path / "home",
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.personal_access_token(),
    )
    with serve_in_process(runtime, wait_ready=300) as backend_client:
        resp = backend_client.post("/jobs", json={"kind": "embed", "project": project.id})
        assert resp.status_code == 201, resp.text
        job = wait_job(backend_client, resp.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job
        assert (job["result"]["tasks"], job["result"]["embedded"], job["result"]["failed"]) == (3, 3, 0)
        backend = runtime.backend
        calls = backend.model.encoder_calls
        for task in tasks:  # as Label Studio sends a smart click: the relative upload path
            resp = backend_client.post(
                "/predict",
                json={
                    "tasks": [task],
                    "project": f"{project.id}.1700000000",
                    "label_config": configs.IMAGE_BRUSH,
                    "params": {"context": {"result": [click(30, 50, "Car", positive=True)]}},
                },
            )
            (item,) = per_task_results(resp.json())
            assert "error" not in item and item["result"][0]["type"] == "brushlabels", item
        assert backend.model.encoder_calls == calls and backend.store.hits == 3
    runtime.close()
