"""Attacks an unauthenticated caller on the network can make (issue: security and robustness
holes found by attacking a running server). Each test failed on the code before its fix.

Other hosts are played by other loopback addresses (127.0.0.2, 127.0.0.3): a credential must
only ever reach the host it came with."""

from __future__ import annotations

import base64
import gzip
import logging
import resource
import threading
import time

import pytest

from prelabel.jobs import FAILED, INTERRUPTED, RUNNING, SUCCEEDED, Reaper
from prelabel.labelconfig import CONFIG_CACHE, parse_label_config
from prelabel.lsauth import resolve_access
from prelabel.media import MediaError, MediaFetcher
from prelabel.paths import InvalidIdentifier, safe_id
from prelabel.redact import redact, register_secret
from prelabel.settings import CoreSettings
from prelabel.state import SQLiteStateStore, StateUnavailable
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process, wait_job
from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.httpserver import RecordingServer
from prelabel.testing.images import png_bytes
from prelabel.testing.reference import ReferenceBackend

ENV_KEY = "envkey-0123456789abcdef0123456789abcdef"
SETUP_TOKEN = "setuptoken-0123456789abcdef0123456789ab"
PNG_A, PNG_B = png_bytes(4, 4), png_bytes(6, 6)


def _serve(host: str, body: bytes = PNG_A, extra=None, tokens: tuple[str, ...] = ()) -> RecordingServer:
    """A host serving `body`. With `tokens` it plays a Label Studio: `/data/upload/...` answers 401
    unless the request carries one of them, as Label Studio 1.23's
    data_import.api.UploadedFileResponse does (permission_classes = (IsAuthenticated,))."""

    def routes(method, path, headers, raw, srv):
        if extra is not None:
            answer = extra(method, path, headers, raw, srv)
            if answer is not None:
                return answer
        if tokens and path.startswith("/data/upload/"):
            given = headers.get("Authorization", "")
            if given.split(" ", 1)[-1] not in tokens:
                detail = b'{"detail":"Authentication credentials were not provided."}'
                return 401, {"content-type": "application/json"}, detail
        return 200, {"content-type": "image/png"}, body

    return RecordingServer(host, routes)


def _credentials_seen(server: RecordingServer) -> list[str]:
    return [r["headers"].get("Authorization") for r in server.requests if r["headers"].get("Authorization")]


# -- 1. path escape through the project id ------------------------------------------------------
@pytest.mark.parametrize("project", ["/srv/elsewhere", "../../etc", "a/b", "..", "x\udc80", "1:versions"])
def test_project_ids_that_are_not_one_path_component_are_refused(project):
    with pytest.raises(InvalidIdentifier):
        safe_id(project)


def test_train_with_an_absolute_project_path_creates_nothing_outside(tmp_path):
    outside = tmp_path / "elsewhere"
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    with serve_in_process(rt) as client:
        for project in (str(outside), "../../x", "1/../../y"):
            resp = client.post(
                "/train",
                json={"project": project, "label_config": TEXT_CHOICES, "annotations": [{"data": {"text": "good"}}]},
            )
            assert resp.status_code == 400, resp.text
            assert "project id" in resp.json()["error"]
        bodies = {
            "/setup": {"project": str(outside), "schema": TEXT_CHOICES},
            "/predict": {
                "project": str(outside),
                "label_config": TEXT_CHOICES,
                "tasks": [{"id": 1, "data": {"text": "x"}}],
            },
            "/webhook": {"action": "START_TRAINING", "project": {"id": str(outside)}},
            "/jobs": {"project": str(outside), "kind": "train"},
        }
        for path, body in bodies.items():
            resp = client.post(path, json=body)
            assert resp.status_code == 400, (path, resp.text)
        assert client.get("/jobs").json()["jobs"] == []
    assert not outside.exists()
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# -- 2./3. where the Label Studio credentials go ------------------------------------------------
@pytest.fixture
def ls_and_attacker():
    ls = _serve("127.0.0.1", tokens=(ENV_KEY, SETUP_TOKEN))
    attacker = _serve("127.0.0.2")
    yield ls, attacker
    ls.close()
    attacker.close()


def test_env_key_is_never_sent_to_a_hostname_from_setup(tmp_path, ls_and_attacker):
    """LABEL_STUDIO_API_KEY set, LABEL_STUDIO_URL unset: an unauthenticated /setup naming
    another host must not make media downloads or jobs send the key there."""
    _, attacker = ls_and_attacker
    rt = make_runtime(ReferenceBackend, tmp_path / "home", label_studio_api_key=ENV_KEY)
    with serve_in_process(rt) as client:
        assert (
            client.post("/setup", json={"project": "7.1", "schema": TEXT_CHOICES, "hostname": attacker.url}).status_code
            == 200
        )
        project = rt.project("7")
        media = rt.media_for(project)
        with pytest.raises(MediaError, match="LABEL_STUDIO_URL"):
            media.fetch("/data/upload/7/secret.png")
        job = client.post("/jobs", json={"project": "7", "kind": "predict"}).json()
        done = wait_job(client, job["id"])
        assert done["status"] == FAILED
        assert "LABEL_STUDIO_URL" in done["error"]
    assert _credentials_seen(attacker) == []
    assert all(ENV_KEY not in str(r) for r in attacker.requests)


def test_env_key_goes_to_label_studio_url_only(tmp_path, ls_and_attacker):
    ls, attacker = ls_and_attacker
    core = CoreSettings(prelabel_home=tmp_path, label_studio_url=ls.url, label_studio_api_key=ENV_KEY)
    media = MediaFetcher(core).bind(attacker.url, SETUP_TOKEN)
    assert media.fetch("/data/upload/1/a.png") == PNG_A
    assert _credentials_seen(ls) == [f"Token {ENV_KEY}"]
    media.fetch(attacker.url + "/data/upload/1/a.png")  # an absolute URL to the /setup host
    assert _credentials_seen(attacker) == []


def test_a_second_setup_with_another_hostname_drops_the_stored_token(tmp_path, ls_and_attacker):
    ls, attacker = ls_and_attacker
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    with serve_in_process(rt) as client:
        client.post(
            "/setup", json={"project": "3.1", "schema": TEXT_CHOICES, "hostname": ls.url, "access_token": SETUP_TOKEN}
        )
        assert rt.media_for(rt.project("3")).fetch("/data/upload/3/a.png") == PNG_A
        assert _credentials_seen(ls) == [f"Token {SETUP_TOKEN}"]
        client.post("/setup", json={"project": "3.1", "schema": TEXT_CHOICES, "hostname": attacker.url})
        project = rt.project("3")
        assert project.access_token is None
        with pytest.raises(MediaError, match="token"):
            rt.media_for(project).fetch("/data/upload/3/b.png")
    assert _credentials_seen(attacker) == []


def test_access_rules_table():
    """The whole rule in one place (prelabel.lsauth.resolve_access)."""
    env = CoreSettings(label_studio_url="http://ls:8080", label_studio_api_key=ENV_KEY)
    assert resolve_access(env, "http://evil", SETUP_TOKEN).token_for("http://evil/x") is None
    assert resolve_access(env, "http://evil", SETUP_TOKEN).token_for("http://ls:8080/x") == ENV_KEY
    url_only = CoreSettings(label_studio_url="http://ls:8080")
    assert resolve_access(url_only, "http://evil", SETUP_TOKEN).token is None
    assert resolve_access(url_only, "http://ls:8080/", SETUP_TOKEN).token == SETUP_TOKEN
    key_only = CoreSettings(label_studio_api_key=ENV_KEY)
    access = resolve_access(key_only, "http://evil", None)
    assert access.token is None and "LABEL_STUDIO_URL" in access.withheld
    assert resolve_access(key_only, "http://ls", SETUP_TOKEN).token_for("http://ls/x") == SETUP_TOKEN
    assert resolve_access(CoreSettings(), None, SETUP_TOKEN).token is None  # a token with no host


# -- 4./5. the media cache ----------------------------------------------------------------------
def test_cache_never_serves_one_label_studio_s_file_to_another(tmp_path):
    private = _serve("127.0.0.1", PNG_A, tokens=(SETUP_TOKEN,))
    other = _serve("127.0.0.2", PNG_B, tokens=("another-token-000000000000",))
    try:
        shared = MediaFetcher(CoreSettings(prelabel_home=tmp_path))
        project_21 = shared.bind(private.url, SETUP_TOKEN)
        elsewhere = shared.bind(other.url, "another-token-000000000000")
        assert project_21.fetch("/data/upload/21/x.png") == PNG_A
        assert elsewhere.fetch("/data/upload/21/x.png") == PNG_B  # not project 21's file
        assert project_21.fetch("/data/upload/21/x.png") == PNG_A  # and not poisoned by it
        no_token = shared.bind(private.url)
        with pytest.raises(MediaError):
            no_token.fetch("/data/upload/21/x.png")  # the cached private file is not disclosed
        assert len(private.requests) == 1 and len(other.requests) == 1
    finally:
        private.close()
        other.close()


def test_data_uris_of_the_same_length_do_not_collide(tmp_path):
    media = MediaFetcher(CoreSettings(prelabel_home=tmp_path))
    prefix = "data:text/plain;base64," + "A" * 5000
    one, two = prefix + base64.b64encode(b"one").decode(), prefix + base64.b64encode(b"two").decode()
    assert len(one) == len(two)
    assert media.fetch(one).endswith(b"one")
    assert media.fetch(two).endswith(b"two")


# -- 6. task-data login/password ----------------------------------------------------------------
def test_task_data_password_does_not_follow_a_redirect_to_another_host(tmp_path):
    other = _serve("127.0.0.3")
    origin_srv = _serve(
        "127.0.0.2",
        extra=lambda m, path, h, b, s: (
            (302, {"location": other.url + "/moved.png"}, b"") if path == "/away.png" else None
        ),
    )
    try:
        media = MediaFetcher(CoreSettings(prelabel_home=tmp_path)).bind(login="alice", password="s3cret-pass")
        assert media.fetch(origin_srv.url + "/away.png") == PNG_A
        assert _credentials_seen(origin_srv) == ["Basic " + base64.b64encode(b"alice:s3cret-pass").decode()]
        assert _credentials_seen(other) == []
    finally:
        origin_srv.close()
        other.close()


# -- 7. compressed bombs ------------------------------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip"])
def test_compressed_bombs_are_bounded_while_decoding(tmp_path, encoding, figures):
    inner = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)
    body = gzip.compress(inner, compresslevel=9) if encoding == "gzip, gzip" else inner
    srv = _serve("127.0.0.2", body, extra=lambda m, p, h, b, s: (200, {"content-encoding": encoding}, body))
    try:
        before = _rss_mb()
        media = MediaFetcher(CoreSettings(prelabel_home=tmp_path, media_max_bytes=10 * 1024 * 1024))
        with pytest.raises(MediaError) as info:
            media.fetch(srv.url + "/bomb.png")
        grown = _rss_mb() - before
        assert "MEDIA_MAX_BYTES" in str(info.value) or "Content-Encoding" in str(info.value)
        assert grown < 100, f"RSS grew by {grown:.0f} MB"
        figures(f"{len(body)} bytes on the wire, Content-Encoding {encoding!r}: refused, peak RSS +{grown:.0f} MB")
    finally:
        srv.close()


def test_label_studio_api_responses_are_bounded_too(tmp_path):
    """Sibling: prediction jobs and training read Label Studio's API through the sdk."""
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")
    srv = _serve(
        "127.0.0.2",
        bomb,
        extra=lambda m, p, h, b, s: (200, {"content-encoding": "gzip", "content-type": "application/json"}, bomb),
    )
    try:
        from prelabel import lsclient

        client = lsclient.connect(srv.url, "legacy-token-1234567890", max_bytes=1024 * 1024)
        with pytest.raises(Exception, match="larger than"):
            client.projects.get(id=1)
    finally:
        srv.close()


# -- bad URLs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, message",
    [
        ("http://h:1:2/x", "not a valid URL"),
        ("http:///nohost.png", "no host"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("data:image/png;base64,", "no data"),
        ("/data/local-files/?d=a%00b.png", "NUL"),
        ("ftp://host/x.png", "unsupported media URL"),
    ],
)
def test_bad_urls_get_a_message_that_says_what_is_wrong(tmp_path, url, message):
    root = tmp_path / "files"
    root.mkdir()
    media = MediaFetcher(CoreSettings(prelabel_home=tmp_path / "h", local_files_document_root=root))
    with pytest.raises(MediaError, match=message):
        media.fetch(url)


# -- 13. a state store that goes away during a job ----------------------------------------------
def _blocking_runtime(tmp_path, redis_url):
    rt = make_runtime(ReferenceBackend, tmp_path / "home", redis_url=redis_url, job_runner="inprocess")
    release = threading.Event()

    def block(ctx):
        ctx.progress(0.5, "waiting")
        release.wait(10)
        return {"done": True}

    rt.job_handlers["block"] = block
    return rt, release


def _wait_status(rt, job_id, statuses, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job = rt.jobs.get(job_id)
        except StateUnavailable:
            job = None
        if job is not None and job.status in statuses:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} never reached {statuses}")


@pytest.fixture
def job_ended_while_redis_down(tmp_path, redis_server, monkeypatch, request):
    """A job that was running when Redis stopped, and has ended since (Redis still down).
    A test marked ``final_write_retry(seconds)`` shortens how long the job retries its write."""
    import prelabel.jobs.runner as jobs

    marker = request.node.get_closest_marker("final_write_retry")
    if marker:
        monkeypatch.setattr(jobs, "FINAL_WRITE_RETRY_SECONDS", marker.args[0])
    redis_server.persistent = True  # the job records survive the restart
    redis_server.stop()
    redis_server.start()
    rt, release = _blocking_runtime(tmp_path, redis_server.url)
    job = rt.runner.submit("block", "5", exclusive=True)
    _wait_status(rt, job.id, {RUNNING})
    redis_server.stop()
    release.set()  # the job ends now, with nowhere to write
    yield rt, job, redis_server
    rt.close()


def test_a_job_that_ends_while_redis_is_down_is_recorded_when_redis_returns(job_ended_while_redis_down, caplog):
    rt, job, redis_server = job_ended_while_redis_down
    deadline = time.monotonic() + 30
    with caplog.at_level(logging.WARNING, logger="prelabel.jobs"):
        while not any(f"recording the outcome of job {job.id} failed" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the job's final write never failed"
            time.sleep(0.05)  # until the final write has failed at least once
    redis_server.start()
    done = _wait_status(rt, job.id, {SUCCEEDED})
    assert done.result == {"done": True}
    deadline = time.monotonic() + 30
    while rt.project_state("5").get("active_block_job") is not None:  # released right after
        assert time.monotonic() < deadline, "the job's lock was never released"
        time.sleep(0.05)


@pytest.mark.final_write_retry(0.3)
def test_a_job_whose_final_write_was_lost_is_reaped_and_frees_its_lock(job_ended_while_redis_down):
    import prelabel.jobs.runner as jobs

    rt, job, redis_server = job_ended_while_redis_down
    deadline = time.monotonic() + 30
    while job.id in jobs.running_here() and time.monotonic() < deadline:
        time.sleep(0.05)  # until the job thread has given up writing
    assert job.id not in jobs.running_here()
    redis_server.start()
    assert rt.jobs.get(job.id).status == RUNNING  # what a lost final write leaves behind
    reaped = Reaper(rt, include_queued=False).reap_once()
    assert [j.id for j in reaped] == [job.id]
    assert rt.jobs.get(job.id).status == INTERRUPTED
    again = rt.runner.submit("block", "5", exclusive=True)  # not a 409: the lock is free
    assert again.id != job.id


# -- disk full, killed training -----------------------------------------------------------------
def test_a_full_disk_is_a_clear_503_not_a_500(tmp_path, monkeypatch):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    store = rt.state
    assert isinstance(store, SQLiteStateStore)
    with serve_in_process(rt) as client:
        # SQLite's own "database or disk is full" (SQLITE_FULL), the error a full disk gives:
        # no connection of any thread may grow the file past its current size
        pages = store._conn().execute("PRAGMA page_count").fetchone()[0]
        connect = store._conn

        def full_conn():
            conn = connect()
            conn.execute(f"PRAGMA max_page_count={pages}")
            return conn

        monkeypatch.setattr(store, "_conn", full_conn)
        big = TEXT_CHOICES.replace("</View>", "<!--" + "x" * 200_000 + "--></View>")
        for path, body in (
            ("/setup", {"project": "9.1", "schema": big}),
            ("/train", {"project": "9", "annotations": [{"data": {"text": "x" * 200_000}}]}),
        ):
            resp = client.post(path, json=body)
            assert resp.status_code == 503, (path, resp.text)
            assert "full" in resp.json()["error"] and "PRELABEL_HOME" in resp.json()["error"]


def test_workdirs_of_killed_training_are_removed_at_start(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    left = rt.artifacts.project_dir("4") / ".tmp-0123456789ab"
    left.mkdir(parents=True)
    (left / "half.bin").write_bytes(b"x")
    kept = rt.artifacts.project_dir("4") / "reference-20260101-000000-abcdef"
    kept.mkdir()
    rt.start()
    assert not left.exists() and kept.exists()
    rt.close()


# -- secrets in messages ------------------------------------------------------------------------
class _LeakyBackend(ReferenceBackend):
    backend_id = "leaky"

    async def predict(self, tasks, ctx):
        raise RuntimeError(f"Incorrect API key provided: {ENV_KEY}. Fetching https://bob:hunter2-pw@h/x failed")


def test_secrets_are_masked_in_errors_and_log_lines(tmp_path, caplog):
    rt = make_runtime(_LeakyBackend, tmp_path / "home", label_studio_api_key=ENV_KEY)
    with serve_in_process(rt) as client, caplog.at_level(logging.INFO):
        resp = client.post(
            "/predict", json={"tasks": [{"id": 1, "data": {"text": "a"}}], "label_config": TEXT_CHOICES, "project": "1"}
        )
        assert resp.status_code == 200
        error = per_task_results(resp.json())[0]["error"]
        assert ENV_KEY not in error and "hunter2-pw" not in error
        assert "***" in error
    from prelabel.logsetup import JsonFormatter, RedactingFormatter

    formatter = RedactingFormatter(JsonFormatter())
    lines = [formatter.format(r) for r in caplog.records]
    assert any("Incorrect API key" in line for line in lines)
    assert not any(ENV_KEY in line or "hunter2-pw" in line for line in lines)


def test_redact_masks_registered_secrets_and_url_passwords():
    register_secret("tok-abcdefghij")
    assert redact("sent tok-abcdefghij to https://u:pw1234@host/p") == "sent *** to https://u:***@host/p"
    assert redact("no credential in this line") == "no credential in this line"


# -- memory -------------------------------------------------------------------------------------
def test_parsed_label_configs_are_bounded_by_size_not_count_alone():
    choices = "".join(f'<Choice value="label {i}"/>' for i in range(3000))
    big = [
        f'<View><Text name="t" value="$t"/><Choices name="c{n}" toName="t">{choices}</Choices></View>'
        for n in range(30)
    ]
    for xml in big:
        parse_label_config(xml)
    assert CONFIG_CACHE.chars <= CONFIG_CACHE.max_chars
    assert len(CONFIG_CACHE) < 30
    assert parse_label_config(big[-1]) is parse_label_config(big[-1])  # the newest is still cached
