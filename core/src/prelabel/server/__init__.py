"""The ASGI server Label Studio talks to."""

from prelabel.server.app import create_app

__all__ = ["create_app"]
