"""Backend.add_routes: a backend's own endpoints beside the Label Studio protocol."""

import base64

import pytest
from fastapi import Request

from prelabel.server.app import create_app
from prelabel.testing import configs
from prelabel.testing.client import make_runtime, serve_in_process
from prelabel.testing.reference import ReferenceBackend


class EchoRoutesBackend(ReferenceBackend):
    """The reference backend plus POST /v1/echo, which needs the model loaded."""

    backend_id = "echo_routes"

    def add_routes(self, router, ctx):
        @router.post("/v1/echo", summary="Echo the body and the backend that served it")
        async def echo(request: Request) -> dict:
            body = await request.json()
            answer = {"backend": self.backend_id, "body": body}
            if "project" in body:  # the narrow context: project lookup and its media
                project = ctx.project(body["project"])
                answer["project"] = project.id
                answer["media_host"] = ctx.media(project).ls_url
            return answer


class ShadowingBackend(ReferenceBackend):
    backend_id = "shadowing"

    def add_routes(self, router, ctx):
        @router.get("/jobs/mine")
        async def mine() -> dict:
            return {}


def test_backend_routes_are_served_and_documented(tmp_path):
    rt = make_runtime(EchoRoutesBackend, tmp_path / "home")
    with serve_in_process(rt) as client:
        resp = client.post("/v1/echo", json={"text": "hi"})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"backend": "echo_routes", "body": {"text": "hi"}}
        assert resp.headers["x-request-id"]  # core's middleware ran
        assert "/v1/echo" in client.get("/openapi.json").json()["paths"]
        assert client.get("/health").status_code == 200  # core's endpoints are untouched
    rt.close()


def test_backend_routes_need_basic_auth_like_every_endpoint(tmp_path):
    rt = make_runtime(EchoRoutesBackend, tmp_path / "home", basic_auth_user="ml", basic_auth_pass="secret")
    good = {"Authorization": "Basic " + base64.b64encode(b"ml:secret").decode()}
    with serve_in_process(rt) as client:
        assert client.post("/v1/echo", json={}).status_code == 401
        assert client.post("/v1/echo", json={}, headers=good).status_code == 200
    rt.close()


def test_backend_routes_respect_the_body_limit(tmp_path):
    rt = make_runtime(EchoRoutesBackend, tmp_path / "home", max_body_bytes=100)
    with serve_in_process(rt) as client:
        assert client.post("/v1/echo", json={"text": "x" * 200}).status_code == 413
    rt.close()


def test_a_route_under_a_core_path_is_refused(tmp_path):
    rt = make_runtime(ShadowingBackend, tmp_path / "home")
    with pytest.raises(ValueError, match=r"/jobs/mine.*own prefix"):
        create_app(rt, start_setup=False)
    rt.close()


def test_backends_without_routes_add_nothing(tmp_path):
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    app = create_app(rt, start_setup=False)
    assert not [r.path for r in app.routes if r.path.startswith("/v1")]
    rt.close()


def test_backend_routes_answer_503_until_the_model_is_ready(tmp_path):
    from fastapi.testclient import TestClient

    rt = make_runtime(EchoRoutesBackend, tmp_path / "home")
    with TestClient(create_app(rt, start_setup=False)) as client:
        early = client.post("/v1/echo", json={})
        assert early.status_code == 503 and early.headers["retry-after"]
        assert "loading" in early.json()["error"]
        rt.start()
        assert client.post("/v1/echo", json={}).status_code == 200
    rt.close()


def test_backend_routes_get_the_project_and_its_media(tmp_path):
    rt = make_runtime(EchoRoutesBackend, tmp_path / "home")
    with serve_in_process(rt) as client:
        setup = client.post(
            "/setup",
            json={
                "project": "3.1700000000",
                "schema": configs.TEXT_CHOICES,
                "hostname": "http://ls.example:8080",
                "access_token": "t" * 40,
            },
        )
        assert setup.status_code == 200, setup.text
        answer = client.post("/v1/echo", json={"project": "3"}).json()
        assert answer["project"] == "3" and answer["media_host"] == "http://ls.example:8080"
    rt.close()
