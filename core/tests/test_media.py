"""Media download against real HTTP servers on loopback: a Label Studio stand-in that checks
tokens like LS 1.23 does, and a second host that must never see the Label Studio token."""

import base64
import json
import time

import pytest

from prelabel.media import MediaError, MediaFetcher
from prelabel.settings import CoreSettings
from prelabel.testing.harness.httpserver import RecordingServer
from prelabel.testing.images import data_uri, png_bytes

LEGACY = "0123456789abcdef0123456789abcdef01234567"
PNG = png_bytes(8, 8)


def _jwt(exp: float, kind: str) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{enc({'alg': 'HS256'})}.{enc({'exp': exp, 'token_type': kind})}.sig"


PAT = _jwt(time.time() + 10**8, "refresh")


@pytest.fixture
def other():
    def routes(method, path, headers, body, srv):
        if path.startswith("/big"):
            return 200, {}, b"x" * 5000
        if path.startswith("/stall"):
            time.sleep(3)
            return 200, {}, PNG
        return 200, {"content-type": "image/png"}, PNG

    s = RecordingServer("127.0.0.2", routes)
    yield s
    s.close()


@pytest.fixture
def ls(other):
    access = {"token": _jwt(time.time() + 300, "access")}

    def routes(method, path, headers, body, srv):
        auth = headers.get("Authorization", "")
        if path == "/api/token/refresh/":
            if json.loads(body).get("refresh") != PAT:
                return 401, {}, b'{"detail": "bad"}'
            return 200, {"content-type": "application/json"}, json.dumps({"access": access["token"]}).encode()
        if auth not in (f"Token {LEGACY}", f"Bearer {access['token']}"):
            return 401, {}, b'{"detail": "Authentication credentials were not provided."}'
        if path.startswith("/data/upload/"):
            return 200, {"content-type": "image/png"}, PNG
        if path.startswith("/tasks/5/presign/"):
            return 303, {"location": other.url + "/bucket/img.png?sig=abc"}, b""
        if path.startswith("/redirect-away"):
            return 302, {"location": other.url + "/elsewhere.png"}, b""
        if path.startswith("/redirect-home"):
            return 302, {"location": "/data/upload/1/x.png"}, b""
        return 404, {}, b""

    s = RecordingServer("127.0.0.1", routes)
    yield s
    s.close()


def _fetcher(tmp_path, **core):
    return MediaFetcher(CoreSettings(prelabel_home=tmp_path, **core))


def test_upload_with_legacy_token_from_setup(tmp_path, ls, other):
    media = _fetcher(tmp_path).bind(ls.url, LEGACY)
    assert media.fetch("/data/upload/3/be4d-tiny.png") == PNG
    assert ls.requests[-1]["headers"]["Authorization"] == f"Token {LEGACY}"


def test_upload_with_personal_access_token_refreshes_once(tmp_path, ls):
    media = _fetcher(tmp_path, label_studio_url=ls.url, label_studio_api_key=PAT).bind("http://localhost:8080", LEGACY)
    assert media.fetch("/data/upload/3/a.png") == PNG
    assert media.fetch("/data/upload/3/b.png") == PNG
    paths = [r["path"] for r in ls.requests]
    assert paths.count("/api/token/refresh/") == 1  # the access token is cached
    assert ls.requests[-1]["headers"]["Authorization"].startswith("Bearer ")


def test_no_token_is_a_clear_error(tmp_path, ls):
    with pytest.raises(MediaError, match="LABEL_STUDIO_API_KEY"):
        _fetcher(tmp_path).bind(ls.url, None).fetch("/data/upload/1/x.png")


def test_refused_token_says_what_to_set(tmp_path, ls):
    with pytest.raises(MediaError, match="refused.*LABEL_STUDIO_API_KEY"):
        _fetcher(tmp_path).bind(ls.url, "wrong-token-123").fetch("/data/upload/1/x.png")


def test_relative_url_without_label_studio_url(tmp_path):
    with pytest.raises(MediaError, match="LABEL_STUDIO_URL"):
        _fetcher(tmp_path).fetch("/data/upload/1/x.png")


def test_env_url_overrides_setup_hostname_but_not_its_token(tmp_path, ls):
    """LABEL_STUDIO_URL decides where Label Studio is; a token a /setup sent for another
    hostname is not sent there (a credential only goes to the host it came with)."""
    media = _fetcher(tmp_path, label_studio_url=ls.url).bind("http://localhost:1", LEGACY)
    with pytest.raises(MediaError, match="LABEL_STUDIO_API_KEY"):
        media.fetch("/data/upload/9/z.png")
    assert all("Authorization" not in r["headers"] for r in ls.requests)
    same_host = _fetcher(tmp_path, label_studio_url=ls.url).bind(ls.url + "/", LEGACY)
    assert same_host.fetch("/data/upload/9/z.png") == PNG


def test_token_never_follows_a_redirect_to_another_host(tmp_path, ls, other):
    media = _fetcher(tmp_path).bind(ls.url, LEGACY)
    assert media.fetch(ls.url + "/redirect-away") == PNG
    assert "Authorization" not in other.requests[-1]["headers"]
    assert media.fetch(ls.url + "/redirect-home") == PNG  # back on LS: the token is sent again
    assert ls.requests[-1]["headers"]["Authorization"] == f"Token {LEGACY}"


def test_token_is_not_sent_to_other_hosts(tmp_path, ls, other):
    media = _fetcher(tmp_path).bind(ls.url, LEGACY)
    assert media.fetch(other.url + "/pic.png") == PNG
    assert all("Authorization" not in r["headers"] for r in other.requests)


def test_cloud_uri_goes_through_presign(tmp_path, ls, other):
    media = _fetcher(tmp_path).bind(ls.url, LEGACY)
    assert media.fetch("s3://bucket/img.png", task_id=5) == PNG
    presign = [r for r in ls.requests if "/presign/" in r["path"]][0]
    encoded = presign["path"].split("fileuri=")[1]
    assert base64.urlsafe_b64decode(encoded).decode() == "s3://bucket/img.png"
    assert "Authorization" not in other.requests[-1]["headers"]
    with pytest.raises(MediaError, match="task"):
        media.fetch("gs://bucket/img.png")


def test_http_basic_credentials_from_project(tmp_path, other):
    media = _fetcher(tmp_path).bind(None, None, login="dl_user", password="dl_pass")
    media.fetch(other.url + "/p.png")
    expected = "Basic " + base64.b64encode(b"dl_user:dl_pass").decode()
    assert other.requests[-1]["headers"]["Authorization"] == expected


def test_size_limit(tmp_path, other):
    with pytest.raises(MediaError, match="MEDIA_MAX_BYTES"):
        _fetcher(tmp_path, media_max_bytes=1000).fetch(other.url + "/big")


def test_time_limit(tmp_path, other):
    with pytest.raises(MediaError, match="timed out"):
        _fetcher(tmp_path, media_timeout=0.5).fetch(other.url + "/stall")


def test_unreachable_host(tmp_path):
    with pytest.raises(MediaError, match="could not download"):
        _fetcher(tmp_path).fetch("http://127.0.0.1:9/nothing.png")


def test_cache_serves_repeats_without_a_request(tmp_path, other):
    media = _fetcher(tmp_path)
    first = media.fetch_path(other.url + "/c.png")
    count = len(other.requests)
    assert media.fetch_path(other.url + "/c.png") == first
    assert len(other.requests) == count
    assert first.suffix == ".png"


def test_cache_is_bounded(tmp_path, other):
    media = _fetcher(tmp_path, media_cache_max_bytes=3 * len(PNG))
    for i in range(10):
        media.fetch(other.url + f"/img{i}.png")
    files = list((tmp_path / "cache" / "media").glob("*.png"))
    assert 0 < len(files) <= 3


def test_data_uris(tmp_path):
    media = _fetcher(tmp_path)
    assert media.fetch(data_uri(PNG)) == PNG
    assert media.fetch("data:text/plain,hello%20world") == b"hello world"
    with pytest.raises(MediaError):
        media.fetch("data:image/png;base64")
    with pytest.raises(MediaError, match="MEDIA_MAX_BYTES"):
        _fetcher(tmp_path, media_max_bytes=10).fetch(data_uri(PNG))


def test_local_files_under_document_root(tmp_path):
    root = tmp_path / "files"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "a.png").write_bytes(PNG)
    (tmp_path / "secret.txt").write_text("secret")
    media = _fetcher(tmp_path, local_files_document_root=root)
    assert media.fetch("/data/local-files/?d=dir/a.png") == PNG
    assert media.fetch("http://localhost:8080/data/local-files/?d=dir%2Fa.png") == PNG
    for escape in ("../secret.txt", "dir/../../secret.txt", "%2e%2e/secret.txt", "/etc/passwd"):
        with pytest.raises(MediaError):
            media.fetch(f"/data/local-files/?d={escape}")
    with pytest.raises(MediaError, match="no such file"):
        media.fetch("/data/local-files/?d=dir/missing.png")


def test_unsupported_values(tmp_path):
    media = _fetcher(tmp_path)
    for value in ("", "ftp://x/y.png", 42, "just words"):
        with pytest.raises(MediaError):
            media.fetch(value)
