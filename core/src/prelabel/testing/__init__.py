"""Test support for prelabel plugins: the conformance suite, label configs, synthetic
images, an in-process server and the reference backend. Installed as a pytest plugin."""

from prelabel.testing import configs
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process
from prelabel.testing.conformance import BackendConformanceTests
from prelabel.testing.images import data_uri, png_bytes

__all__ = [
    "BackendConformanceTests",
    "configs",
    "data_uri",
    "make_runtime",
    "per_task_results",
    "png_bytes",
    "serve_in_process",
]
