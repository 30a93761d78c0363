"""Logging: one JSON object per line (or plain text), with the request id of the request
being served, so a task's error can be followed from Label Studio's request to the model."""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import sys
import time

import orjson

from prelabel.looptick import running_loop
from prelabel.redact import redact

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("prelabel_request_id", default=None)

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    # the access log writes a line per request: the formatted second is reused within it, and
    # the whole stamp within a millisecond (a busy server logs several lines in one); each kept
    # as one tuple, so a thread never pairs one's number with another's text
    _second: tuple[int, str] = (-1, "")
    _milli: tuple[int, str] = (-1, "")

    def stamp(self, created: float) -> str:
        ms = int(created * 1000)
        cached = self._milli
        if cached[0] == ms:
            return cached[1]
        second, milli = divmod(ms, 1000)
        known = self._second
        if known[0] != second:
            known = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        stamp = f"{known[1]}.{milli:03d}Z"
        self._milli = (ms, stamp)
        return stamp

    def _ts(self, record: logging.LogRecord) -> str:
        return self.stamp(record.created)

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self._ts(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if value is not None and key not in _STD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(out, default=str).decode()
        except TypeError:  # a lone surrogate or a huge int in a message or an extra: the slow path
            return json.dumps(out, default=str, ensure_ascii=False).encode("utf-8", "backslashreplace").decode()


class AccessLog:
    """The one line per request. With the logging ``configure_logging`` set up (JSON lines on
    its own handler, nothing else attached), the line is formatted and written here directly,
    the same line JsonFormatter writes: the logging machinery's dozen calls per record cost
    more than the rest of a small /predict. Anything else (text format, a handler or filter
    added later, pytest's caplog) goes through logging as usual."""

    def __init__(self, name: str = "prelabel.access"):
        self.logger = logging.getLogger(name)
        self.name = name

    def _direct(self) -> logging.StreamHandler | None:
        handler = _json_handler
        root = logging.root
        lg = self.logger
        if (
            handler is None
            or root.handlers != [handler]
            or lg.handlers
            or lg.filters
            or not lg.propagate
            or lg.disabled
            or handler.filters != _json_filters
            or lg.parent is not root
            and lg.parent.handlers
        ):
            return None
        return handler

    def log(self, level: int, method: str, path: str, status: int, ms: float) -> None:
        """Write the line: at once, or, in a server that ``coalesce_access_lines()`` turned on,
        with the other lines of the same event-loop iteration in one write at its end."""
        if not self.logger.isEnabledFor(level):
            return
        handler = self._direct()
        if handler is None or level < handler.level:
            if handler is None:
                self.logger.log(
                    level,
                    "%s %s %s %.1fms",
                    method,
                    path,
                    status,
                    ms,
                    extra={"status": status, "duration_ms": round(ms, 2), "path": path},
                )
            return
        ts = handler.formatter.stamp(time.time())
        rid = request_id_var.get()
        if (
            (path in _PLAIN_PATHS or _plain(path))
            and (method in _PLAIN_METHODS or _plain(method))
            and (rid is None or _plain(rid))
        ):
            # nothing to escape (the usual line): the JSON orjson would write, without
            # building a dict for it (duration_ms as 1.20 where orjson writes 1.2: the same number)
            line = (
                f'{{"ts":"{ts}","level":"{logging.getLevelName(level)}","logger":"{self.name}",'
                f'"msg":"{method} {path} {status} {ms:.1f}ms","status":{status},"duration_ms":{ms:.2f},'
                f'"path":"{path}"' + ("}" if rid is None else f',"request_id":"{rid}"}}')
            )
        else:
            record = {
                "ts": ts,
                "level": logging.getLevelName(level),
                "logger": self.name,
                "msg": f"{method} {path} {status} {ms:.1f}ms",
                "status": status,
                "duration_ms": round(ms, 2),
                "path": path,
            }
            if rid is not None:
                record["request_id"] = rid
            try:
                line = orjson.dumps(record).decode()
            except TypeError:  # a lone surrogate in the path
                line = json.dumps(record, ensure_ascii=True)
        line = redact(line) + handler.terminator  # the formatter is skipped here, its masking is not
        if _coalesce:
            loop = running_loop()
            if loop is not None:
                with handler.lock:
                    _pending.append(line)
                    first = len(_pending) == 1
                if first:
                    loop.call_soon(flush_access_lines, handler)
                return
        with handler.lock:
            if _pending:
                _pending.append(line)
                _write_lines(handler.stream)
            else:
                _write(handler.stream, line)


# Access lines waiting for the end of their loop iteration: a busy server answers several
# requests per iteration, and one write for all of them costs what one line's write did (a
# syscall each: a tenth of a small /predict's CPU at 16 connections). Any other record written
# through the JSON handler writes these first, so the log keeps its order.
_pending: list[str] = []
_coalesce = False
PIPE_BUF = 4096  # POSIX: a pipe write of up to this many bytes is never interleaved with another


def coalesce_access_lines(on: bool = True) -> None:
    """Let access lines wait for the end of their loop iteration (``prelabel serve`` turns it on;
    in process, where a caller may read the log the moment a response returns, lines are
    written at once)."""
    global _coalesce
    flush_access_lines()
    _coalesce = on


def _write(stream, text: str) -> None:
    stream.write(text)
    if not getattr(stream, "line_buffering", False):  # stderr is (Python 3.9+): written already
        stream.flush()


def _write_lines(stream) -> None:
    """The waiting lines, in writes of at most PIPE_BUF bytes: a pipe (docker's log, the
    workers of ``--workers`` sharing one stderr) writes that much whole, so no other process's
    line lands inside one of ours."""
    lines = _pending[:]
    _pending.clear()
    chunk: list[str] = []
    size = 0
    for line in lines:
        n = len(line) if line.isascii() else 4 * len(line)  # UTF-8 takes at most 4 bytes a character
        if chunk and size + n > PIPE_BUF:
            _write(stream, "".join(chunk))
            chunk, size = [], 0
        chunk.append(line)
        size += n
    if chunk:
        _write(stream, "".join(chunk))


def flush_access_lines(handler: logging.StreamHandler | None = None) -> None:
    """Write the access lines still waiting (at the end of a loop iteration, before any other
    record, at shutdown and at exit)."""
    handler = handler or _json_handler
    if handler is None or not _pending:
        return
    with handler.lock:
        if _pending:
            try:
                _write_lines(handler.stream)
            except (OSError, ValueError):  # a closed stream at exit: nothing left to tell
                pass


class _JsonHandler(logging.StreamHandler):
    """The JSON lines handler: writes the waiting access lines before its own record."""

    def emit(self, record: logging.LogRecord) -> None:
        if _pending:
            flush_access_lines(self)
        super().emit(record)


atexit.register(flush_access_lines)


# the usual paths and methods, known to need no escaping (any other is checked)
_PLAIN_PATHS = frozenset({"/predict", "/health", "/setup", "/webhook", "/metrics", "/train", "/jobs", "/"})
_PLAIN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _plain(text: str) -> bool:
    """True when ``text`` is the same inside a JSON string: printable ASCII, no quote or backslash."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


_json_handler: logging.StreamHandler | None = None
_json_filters: list = []


class RedactingFormatter(logging.Formatter):
    """Masks known secrets and URL passwords in the finished line (prelabel.redact)."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))

    def stamp(self, created: float) -> str:
        return self.inner.stamp(created)  # the access log's direct path (AccessLog)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    global _json_handler, _json_filters
    flush_access_lines()  # the old handler's lines, before it goes
    handler = (_JsonHandler if fmt == "json" else logging.StreamHandler)(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        inner: logging.Formatter = JsonFormatter()
    else:
        inner = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    handler.setFormatter(RedactingFormatter(inner))
    _json_handler = handler if fmt == "json" else None
    _json_filters = list(handler.filters)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests with their ids
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Neither format shows the caller, thread or process of a record; not collecting them is
    # the logging HOWTO's "Optimization" advice, and it halves the cost of an access-log line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
