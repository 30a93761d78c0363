"""A real `prelabel serve` process under connection-level abuse and shutdown: slowloris
headers, a promised body never sent, and SIGTERM while a long /predict is in flight."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from prelabel.testing.configs import TEXT_CHOICES
from prelabel.testing.harness.backendprocess import BackendProcess

SUPPORT = Path(__file__).parent / "support"


class ServeWith(BackendProcess):
    """BackendProcess with extra `prelabel serve` options."""

    def __init__(self, *args, options: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.options = options

    def command(self) -> list[str]:
        return [*super().command(), *self.options]


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when that happened."""
    sock.settimeout(limit)
    data, started = b"", time.monotonic()
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data, float("inf")
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


@pytest.fixture
def server(tmp_path):
    with ServeWith(
        "prelabel.testing.reference:ReferenceBackend",
        home=tmp_path / "home",
        options=["--header-timeout", "1", "--body-timeout", "1"],
    ) as proc:
        yield proc


def test_slowloris_connections_are_closed(server, figures):
    host, port = "127.0.0.1", server.port
    socks = []
    for i in range(200):
        s = socket.create_connection((host, port))
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")  # half of them send nothing
        socks.append(s)
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=5) as http:  # the server still serves others
        assert http.get("/health").status_code == 200
    closed = [read_until_closed(s, limit=10) for s in socks]
    for s in socks:
        s.close()
    elapsed = time.monotonic() - started
    assert all(t != float("inf") for _, t in closed), "a slow connection was still open after 10 s"
    assert all(data.startswith(b"HTTP/1.1 408") for data, _ in closed[1::2])
    assert all(data == b"" for data, _ in closed[0::2])
    figures(
        f"200 slowloris connections (header timeout 1 s): all closed within {elapsed:.1f} s, "
        "the ones that had started a request with 408"
    )


def test_a_promised_body_never_sent_is_408(server):
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
        b'{"tasks": ['
    )
    data, took = read_until_closed(s, limit=10)
    s.close()
    assert data.startswith(b"HTTP/1.1 408"), data
    assert b"body paused" in data and took < 5
    with httpx.Client(base_url=server.url, timeout=5) as http:
        body = {"tasks": [{"id": 1, "data": {"text": "positive"}}], "label_config": TEXT_CHOICES}
        assert http.post("/predict", json=body).status_code == 200  # a normal request still works


def test_a_slow_body_that_keeps_coming_is_served_and_the_connection_kept(server):
    """Each chunk restarts the body's pause (1 s here): a body sent over 3 s in pieces 0.4 s
    apart is answered, and the kept-alive connection then still gets its header timeout."""
    body = (
        b'{"tasks": [{"id": 1, "data": {"text": "positive"}}], "label_config": '
        + httpx.Request("POST", "http://x", json=TEXT_CHOICES).content
        + b"}"
    )
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    pieces = [body[i : i + len(body) // 8 + 1] for i in range(0, len(body), len(body) // 8 + 1)]
    for piece in pieces:
        time.sleep(0.4)  # the pause between two pieces is what is under test
        s.sendall(piece)
    s.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    head, rest = answer.split(b"\r\n\r\n", 1)
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(rest) < length:
        rest += s.recv(65536)
    assert b'"choices":["positive"]' in rest
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # a second request that never finishes its headers
    data, took = read_until_closed(s, limit=10)
    s.close()
    assert data.startswith(b"HTTP/1.1 408") and took < 5, (data[:200], took)


def test_sigterm_during_a_long_predict_answers_503_and_exits(tmp_path, figures):
    started_flag, gate = tmp_path / "started", tmp_path / "gate"
    env = {
        "PYTHONPATH": f"{SUPPORT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "SLOW_STARTED": str(started_flag),
        "SLOW_GATE": str(gate),
        "SLOW_PREDICT_SECONDS": "60",
    }
    proc = ServeWith(
        "slow_backend:SlowBackend", home=tmp_path / "home", env=env, options=["--shutdown-grace", "1"]
    ).start()
    answer: dict = {}

    def call() -> None:
        body = {"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": TEXT_CHOICES}
        try:
            answer["resp"] = httpx.post(proc.url + "/predict", json=body, timeout=60)
        except httpx.HTTPError as exc:
            answer["error"] = exc

    client = threading.Thread(target=call)
    client.start()
    try:
        deadline = time.monotonic() + 30
        while not started_flag.exists():  # the prediction is in flight
            assert time.monotonic() < deadline, "predict never started"
            time.sleep(0.02)
        signalled = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        client.join(30)
        code = proc._proc.wait(30)
        took = time.monotonic() - signalled
    finally:
        gate.write_text("go")
        proc.stop()
    resp = answer.get("resp")
    assert resp is not None, answer
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] and "shutting down" in resp.json()["error"]
    # uvicorn shuts down, then re-raises the signal it caught: the exit status says SIGTERM
    assert code in (0, -signal.SIGTERM) and took < 10, (code, took)
    log = proc.log_tail(80)
    assert "Application shutdown complete" in log and "Traceback" not in log, log
    figures(f"SIGTERM during a 60 s predict (grace 1 s): 503 with Retry-After, clean exit after {took:.1f} s")
