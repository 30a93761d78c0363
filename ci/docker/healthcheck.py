#!/usr/bin/env python3
"""Container health check (installed as /usr/local/bin/prelabel-healthcheck): GET /health on
the backend's own address; healthy only on 200.

/health answers 503 while the model loads, so the container is "starting" until it is ready.
With BASIC_AUTH_USER/BASIC_AUTH_PASS set, /health needs the credentials Label Studio sends, so
they are sent here too. Standard library only: slim images have no curl.
"""

import base64
import os
import sys
import urllib.request


def main() -> int:
    host = os.environ.get("BIND_HOST", "")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = os.environ.get("BIND_PORT") or (sys.argv[1] if len(sys.argv) > 1 else "")
    if not port:
        print("prelabel-healthcheck: BIND_PORT is not set", file=sys.stderr)
        return 1
    request = urllib.request.Request(f"http://{host}:{port}/health")
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(request, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:
        print(f"prelabel-healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
