"""The Label Studio harness works against a real Label Studio 1.23.x.

Uses the session ``label_studio`` server from conftest.py (started once). Destructive token
operations (rotation, 409 recovery) run on a *copy* of its data directory, so the session
PAT stays valid for later tests.
"""

from __future__ import annotations

import base64
import json
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

LABEL_CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="positive"/>
    <Choice value="negative"/>
    <Choice value="neutral"/>
  </Choices>
</View>
"""
TEXTS = ["I love this.", "I hate this.", "It is a chair."]
WHOAMI = "/api/current-user/whoami"


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _whoami_status(ls: Any, authorization: str | None) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.get(f"{ls.url}{WHOAMI}", headers=headers, trust_env=False).status_code


def _refresh(ls: Any, pat: str) -> httpx.Response:
    return httpx.post(f"{ls.url}/api/token/refresh/", json={"refresh": pat}, trust_env=False)


@pytest.fixture(scope="module")
def ls(label_studio: Any) -> Any:
    """The session server, under a short name."""
    return label_studio


@pytest.fixture(scope="module")
def project(ls: Any) -> Iterator[Any]:
    """A Choices-on-Text project with 3 imported tasks, created through the SDK."""
    client = ls.client(max_retries=0)
    created = client.projects.create(title="harness e2e", label_config=LABEL_CONFIG)
    client.projects.import_tasks(id=created.id, request=[{"text": text} for text in TEXTS])
    yield created
    client.projects.delete(id=created.id)


def test_health_on_loopback(ls: Any) -> None:
    response = ls.health()
    assert response.status_code == 200
    assert response.json() == {"status": "UP"}
    assert ls.is_running()
    assert ls.url == f"http://127.0.0.1:{ls.port}"
    assert ls.startup_seconds is not None and ls.startup_seconds > 0


def test_legacy_token_and_pat_bearer_authenticate(ls: Any) -> None:
    assert _whoami_status(ls, None) == 401
    assert _whoami_status(ls, f"Token {ls.legacy_token}") == 200

    pat = ls.personal_access_token()
    claims = _jwt_claims(pat)
    assert claims["token_type"] == "refresh"
    assert ls.personal_access_token() == pat  # cached in memory
    cache = json.loads(ls.pat_cache_file.read_text())
    assert cache["token"] == pat
    assert stat.S_IMODE(ls.pat_cache_file.stat().st_mode) == 0o600

    refreshed = _refresh(ls, pat)
    assert refreshed.status_code == 200
    access = refreshed.json()["access"]
    access_claims = _jwt_claims(access)
    assert access_claims["token_type"] == "access"
    assert access_claims["exp"] - access_claims["iat"] == 300

    assert _whoami_status(ls, f"Bearer {access}") == 200
    # The PAT is a refresh token: it does not authenticate requests by itself.
    assert _whoami_status(ls, f"Bearer {pat}") == 401
    assert _whoami_status(ls, f"Token {pat}") == 401

    response = httpx.get(f"{ls.url}{WHOAMI}", headers=ls.auth_headers("bearer"), trust_env=False)
    assert response.status_code == 200
    assert response.json()["email"] == ls.username


@pytest.mark.parametrize("kind", ["pat", "legacy"])
def test_sdk_clients(ls: Any, kind: str) -> None:
    assert ls.client(kind).users.whoami().email == ls.username


def test_project_with_three_tasks(ls: Any, project: Any) -> None:
    client = ls.client(max_retries=0)
    tasks = list(client.tasks.list(project=project.id))
    assert sorted(task.data["text"] for task in tasks) == sorted(TEXTS)
    fetched = client.projects.get(id=project.id)
    assert "sentiment" in fetched.label_config
    # the same list through the legacy token
    response = httpx.get(
        f"{ls.url}/api/tasks",
        params={"project": project.id},
        headers=ls.auth_headers("legacy"),
        trust_env=False,
    )
    assert response.status_code == 200
    assert len(response.json()["tasks"]) == 3


def test_restart_on_existing_data_dir(ls: Any, project: Any, ls_harness: ModuleType, tmp_path: Path) -> None:
    """A copy of the session data dir restarts fast, keeps data and PAT; token recovery works."""
    pat = ls.personal_access_token()
    data_dir = tmp_path / "copy"
    ls_harness.copy_data_dir(ls.data_dir, data_dir)

    with ls_harness.LabelStudioServer(data_dir, executable=ls.executable) as copy:
        assert copy.port != ls.port
        assert copy.startup_seconds < 60, copy.startup_seconds  # no migrations: ~4 s
        assert copy.personal_access_token() == pat  # reused from the cache file
        tasks = list(copy.client(max_retries=0).tasks.list(project=project.id))
        assert len(tasks) == 3

        rotated = copy.rotate_personal_access_token()
        assert rotated != pat
        assert _refresh(copy, pat).status_code == 401  # old one blacklisted on the copy
        assert _refresh(copy, rotated).status_code == 200
        assert copy.client("pat").users.whoami().email == copy.username

    # Lose the cache: POST /api/token/ answers 409 (one PAT per user); the harness recovers.
    (data_dir / ls_harness.PAT_CACHE_NAME).unlink()
    restarted = ls_harness.LabelStudioServer(data_dir, executable=ls.executable)
    with restarted:
        recovered = restarted.personal_access_token()
        assert recovered not in (pat, rotated)
        assert _refresh(restarted, rotated).status_code == 401
        assert _refresh(restarted, recovered).status_code == 200
        assert json.loads(restarted.pat_cache_file.read_text())["token"] == recovered
        restart_seconds = restarted.startup_seconds
    assert not restarted.is_running()
    print(f"fresh start {ls.startup_seconds:.1f} s, restart on existing data dir {restart_seconds:.1f} s")

    # the session server was not affected
    assert _refresh(ls, pat).status_code == 200


def test_busy_port_is_refused(ls: Any, ls_harness: ModuleType, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = ls_harness.LabelStudioServer(tmp_path / "busy", port=port, executable=ls.executable)
        with pytest.raises(ls_harness.LabelStudioError, match="already in use"):
            server.start()
    assert not server.is_running()


def _fake_executable(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-label-studio"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_early_exit_reports_log_tail(ls_harness: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_executable(tmp_path, 'echo "boom: USERNAME=$USERNAME"; exit 3')
    server = ls_harness.LabelStudioServer(tmp_path / "data", executable=fake)
    # LS reads a bare USERNAME; a stray one must not reach the child
    monkeypatch.setenv("USERNAME", "stray")
    with pytest.raises(ls_harness.LabelStudioError, match="exited with code 3") as info:
        server.start(timeout=30)
    assert "boom: USERNAME=" in str(info.value)
    assert "stray" not in str(info.value)


def test_timeout_kills_process_group(ls_harness: ModuleType, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    fake = _fake_executable(tmp_path, f"sleep 300 & echo $! > {pid_file}; wait")
    server = ls_harness.LabelStudioServer(tmp_path / "data", executable=fake)
    started = time.monotonic()
    with pytest.raises(ls_harness.LabelStudioError, match="not ready"):
        server.start(timeout=1)
    assert time.monotonic() - started < 20
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie awaiting its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
