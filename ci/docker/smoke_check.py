#!/usr/bin/env python3
"""HTTP checks of ci/docker-smoke.sh against a backend container (standard library only).

    smoke_check.py free-port                  print a free loopback TCP port
    smoke_check.py wait-url FILE TIMEOUT      wait for FILE's first line (a URL) and print it
    smoke_check.py health BASE_URL            GET /health: 200 and status UP
    smoke_check.py predict-kimi BASE_URL      seed 000's tasks-only body: one TextArea result
    smoke_check.py predict-yolo BASE_URL      an image as a data: URI: RectangleLabels results

Each prints what it checked and exits non-zero with the reason when the answer is wrong.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def request(url: str, body: dict | None = None, timeout: float = 120.0) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with OPENER.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode("utf-8", "replace")}


def free_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def wait_url(path: str, timeout: str) -> None:
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                line = f.readline().strip()
            if line.startswith("http"):
                print(line)
                return
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    fail(f"no URL in {path} within {timeout} s")


def health(base: str) -> None:
    status, body = request(f"{base}/health", timeout=5)
    if status != 200 or not isinstance(body, dict) or body.get("status") != "UP":
        fail(f"/health answered {status} {body}")
    print(f"/health: 200 {json.dumps(body)}")


def predictions(base: str, body: dict, n: int) -> list[dict]:
    start = time.monotonic()
    status, answer = request(f"{base}/predict", body)
    took = time.monotonic() - start
    if status != 200:
        fail(f"/predict answered {status} {answer}")
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != n:
        fail(f"/predict: expected {n} results, got {answer}")
    for r in results:
        if r.get("error"):
            fail(f"/predict: a task failed: {r['error']}")
        if not r.get("model_version"):
            fail(f"/predict: no model_version in {r}")
    print(f"/predict: 200 in {took:.2f} s")
    return results


def predict_kimi(base: str) -> None:
    # seed 000: a bare {"tasks": [...]} labelled with the backend's default TextArea config
    body = {"tasks": [{"id": 1, "data": {"text": "这是一段需要标注的文本内容"}}]}
    (result,) = predictions(base, body, 1)
    regions = result.get("result") or []
    if len(regions) != 1:
        fail(f"expected one TextArea region, got {result}")
    region = regions[0]
    texts = (region.get("value") or {}).get("text")
    if (
        (region.get("type"), region.get("from_name"), region.get("to_name")) != ("textarea", "label", "text")
        or not texts
        or not all(isinstance(t, str) and t for t in texts)
    ):
        fail(f"not the seed's TextArea result: {region}")
    if "fake answer" not in texts[0]:
        fail(f"the text did not come from the fake OpenAI server: {texts}")
    print(f"kimi: textarea {texts} (model_version {result['model_version']})")


def png(width: int, height: int) -> bytes:
    """A gray RGB PNG with a dark square in it."""
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            inside = width // 4 <= x < 3 * width // 4 and height // 4 <= y < 3 * height // 4
            row += bytes((40, 40, 40) if inside else (200, 200, 200))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


YOLO_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.25">
    <Label value="Car" predicted_values="car"/>
    <Label value="Person" predicted_values="person"/>
  </RectangleLabels>
</View>"""


def predict_yolo(base: str) -> None:
    image = "data:image/png;base64," + base64.b64encode(png(320, 240)).decode()
    body = {"tasks": [{"id": 1, "data": {"image": image}}], "label_config": YOLO_CONFIG}
    (result,) = predictions(base, body, 1)
    regions = result.get("result") or []
    if not regions:
        fail(f"no region detected (the smoke model fires 'car' everywhere): {result}")
    for region in regions:
        value = region.get("value") or {}
        box = [value.get(k) for k in ("x", "y", "width", "height")]
        if (
            region.get("type") != "rectanglelabels"
            or region.get("from_name") != "label"
            or region.get("to_name") != "image"
            or value.get("rectanglelabels") != ["Car"]
            or not all(isinstance(v, (int, float)) and 0 <= v <= 100 for v in box)
            or region.get("original_width") != 320
            or region.get("original_height") != 240
        ):
            fail(f"not a RectangleLabels region of the project's labels: {region}")
    print(
        f"yolo: {len(regions)} rectanglelabels regions, first {regions[0]['value']} "
        f"(model_version {result['model_version']})"
    )


def main(argv: list[str]) -> None:
    commands = {
        "free-port": free_port,
        "wait-url": wait_url,
        "health": health,
        "predict-kimi": predict_kimi,
        "predict-yolo": predict_yolo,
    }
    if not argv or argv[0] not in commands:
        fail(f"usage: smoke_check.py {{{','.join(commands)}}} ARGS")
    commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
