"""The event loop running in this thread, found without a system call.

``asyncio.get_running_loop()`` compares the process id each time (a ``getpid`` system call, to
notice a fork): once per request on the serving path it is a syscall per request. This keeps the
last loop found with its thread's id and hands it back while it runs in the calling thread."""

from __future__ import annotations

import asyncio
from threading import get_ident
from typing import Any

_last: tuple[int, Any] = (0, None)  # (thread id, its running loop), one tuple: never mixed


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None outside one."""
    global _last
    tid, loop = _last
    if tid == get_ident() and loop.is_running():
        # a thread id is reused only after its thread ended, and the loop that ran there with it
        # no longer runs; a loop runs in one thread at a time
        return loop
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    _last = (get_ident(), loop)
    return loop
