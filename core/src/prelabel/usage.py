"""Provider usage (tokens, calls) counted per job.

A job opens a tally with :func:`counting` around the predictions it runs; a backend that
calls a paid API reports each answer with :func:`record_usage` (the LLM engine does). The tally
travels in a context variable, so it follows ``asyncio.run`` and its tasks into the backend
without any parameter, and requests served meanwhile by the same process are not counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class UsageTally:
    """Totals over the answers of one job."""

    answers: int = 0
    cached: int = 0  # answers served from the process's cache (no tokens, no call)
    calls: int = 0  # provider requests, retries included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        reasoning_tokens: int = 0,
        calls: int = 0,
        cached: bool = False,
    ) -> None:
        with self._lock:
            self.answers += 1
            self.cached += bool(cached)
            self.calls += calls
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.reasoning_tokens += reasoning_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "cached": self.cached,
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


_current: ContextVar[UsageTally | None] = ContextVar("prelabel_usage", default=None)


@contextmanager
def counting(tally: UsageTally) -> Iterator[UsageTally]:
    """Count the usage reported inside this block (and the event loops it starts) into ``tally``."""
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)


def record_usage(**usage: Any) -> None:
    """Add one answer's usage to the current job's tally, if a job is counting."""
    tally = _current.get()
    if tally is not None:
        tally.add(**usage)
