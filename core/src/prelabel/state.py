"""Per-project key/value state: SQLite in PRELABEL_HOME by default, Redis when REDIS_URL is set.

Values are JSON. Every read goes to the store (no per-process cache), so several processes or
replicas sharing one store always agree on, for example, the current model version.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from prelabel.looptick import running_loop
from prelabel.paths import safe_id
from prelabel.settings import CoreSettings


class StateUnavailable(RuntimeError):
    """The state store cannot be used right now (Redis unreachable, SQLite's disk full or
    locked); the request can be retried once the cause is fixed."""


def _guard_sqlite(method):
    """Turn SQLite's operational failures (disk full, I/O error, locked past the busy
    timeout) into StateUnavailable (a 503 that says what to fix, not a 500)."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise
            hint = f": free disk space under {self.path.parent} (PRELABEL_HOME)" if "full" in str(exc).lower() else ""
            raise StateUnavailable(f"the SQLite state store {self.path} is unavailable ({exc}){hint}") from exc

    return wrapper


def _guard_redis(method):
    """Turn a Redis connection failure into StateUnavailable (a 503, not a 500)."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except self._redis_errors as exc:
            raise StateUnavailable(f"the Redis state store is unavailable: {exc}") from exc

    return wrapper


class StateStore(ABC):
    """Namespaced JSON key/value store."""

    @abstractmethod
    def get(self, ns: str, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    def set(self, ns: str, key: str, value: Any) -> None: ...

    @abstractmethod
    def delete(self, ns: str, key: str) -> None: ...

    @abstractmethod
    def items(self, ns: str) -> dict[str, Any]: ...

    @abstractmethod
    def incr(self, ns: str, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to an integer value and return the new value."""

    @abstractmethod
    def namespaces(self, prefix: str = "") -> list[str]: ...

    def set_if_absent(self, ns: str, key: str, value: Any) -> bool:
        """Store ``value`` only if ``key`` is unset; True when this call stored it."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def generation(self) -> Any:
        """A value that changes whenever anything in the store may have changed, in any
        process, and costs far less than a read; None where the store has none (then a
        caller reads every time). The /predict path keeps what it read under it."""
        return None

    def project(self, project_id: str) -> ProjectState:
        return ProjectState(self, str(project_id))


class ProjectState:
    """The state of one project (namespace ``project:<id>``)."""

    def __init__(self, store: StateStore, project_id: str):
        self.store = store
        self.project_id = safe_id(project_id)  # a key in SQLite/Redis and a directory name
        self.ns = f"project:{self.project_id}"

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get(self.ns, key, default)

    def set(self, key: str, value: Any) -> None:
        self.store.set(self.ns, key, value)

    def delete(self, key: str) -> None:
        self.store.delete(self.ns, key)

    def items(self) -> dict[str, Any]:
        return self.store.items(self.ns)

    def incr(self, key: str, amount: int = 1) -> int:
        return self.store.incr(self.ns, key, amount)


class SQLiteStateStore(StateStore):
    """SQLite in WAL mode; one connection per thread; safe across processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._seen: tuple | None = None  # (loop, connection id, data_version) this loop iteration
        self._writes = 0  # this process's writes: data_version does not see a connection's own
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                " updated REAL NOT NULL, PRIMARY KEY (ns, key))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @_guard_sqlite
    def get(self, ns: str, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else default

    @_guard_sqlite
    def set(self, ns: str, key: str, value: Any) -> None:
        self._conn().execute(
            "INSERT INTO kv (ns, key, value, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(ns, key) DO UPDATE SET value=excluded.value, updated=excluded.updated",
            (ns, key, json.dumps(value), time.time()),
        )
        self._writes += 1  # after the write: a reader that saw the old count reads again

    @_guard_sqlite
    def set_if_absent(self, ns: str, key: str, value: Any) -> bool:
        cur = self._conn().execute(
            "INSERT OR IGNORE INTO kv (ns, key, value, updated) VALUES (?, ?, ?, ?)",
            (ns, key, json.dumps(value), time.time()),
        )
        self._writes += 1
        return cur.rowcount == 1

    @_guard_sqlite
    def delete(self, ns: str, key: str) -> None:
        self._conn().execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))
        self._writes += 1

    @_guard_sqlite
    def generation(self) -> tuple[int, int, int]:
        """SQLite's ``PRAGMA data_version`` (it changes when another connection, of this
        process or another, commits: sqlite.org/pragma.html#pragma_data_version) on this
        thread's connection, and this store's own write count: one statement of a few
        microseconds instead of a read."""
        loop = running_loop()
        if loop is not None:
            seen = self._seen
            if seen is not None and seen[0] is loop:
                return seen[1], seen[2], self._writes
        conn = self._conn()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if loop is not None:
            # On an event loop, kept until the loop's next iteration: a request whose cause
            # (another process's commit) came before its bytes did is handled in a later
            # callback than the read that filled this, and the forgetting callback queued with
            # that read runs first (the ready queue is first in, first out). This process's own
            # writes count in _writes, read each time. One statement per iteration, not per
            # request (each is two fcntl locks and a few microseconds).
            self._seen = seen = (loop, id(conn), version)
            loop.call_soon(self._forget, seen)
        return id(conn), version, self._writes

    def _forget(self, seen: tuple) -> None:
        if self._seen is seen:
            self._seen = None

    @_guard_sqlite
    def items(self, ns: str) -> dict[str, Any]:
        rows = self._conn().execute("SELECT key, value FROM kv WHERE ns=? ORDER BY updated", (ns,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    @_guard_sqlite
    def incr(self, ns: str, key: str, amount: int = 1) -> int:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
            new = (int(json.loads(row[0])) if row else 0) + amount
            conn.execute(
                "INSERT INTO kv (ns, key, value, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(ns, key) DO UPDATE SET value=excluded.value, updated=excluded.updated",
                (ns, key, json.dumps(new), time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            self._writes += 1
        return new

    @_guard_sqlite
    def namespaces(self, prefix: str = "") -> list[str]:
        rows = (
            self._conn()
            .execute("SELECT DISTINCT ns FROM kv WHERE substr(ns, 1, ?) = ? ORDER BY ns", (len(prefix), prefix))
            .fetchall()
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class RedisStateStore(StateStore):
    """Redis hashes, one per namespace, under ``<prefix>:<ns>``."""

    def __init__(self, url: str, prefix: str = "prelabel"):
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError('REDIS_URL is set but redis is not installed: pip install "prelabel[redis]"') from exc
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, retry_on_timeout=True)
        self.prefix = prefix
        self._redis_errors = (redis.ConnectionError, redis.TimeoutError)

    def _k(self, ns: str) -> str:
        return f"{self.prefix}:{ns}"

    @_guard_redis
    def get(self, ns: str, key: str, default: Any = None) -> Any:
        raw = self.client.hget(self._k(ns), key)
        return json.loads(raw) if raw is not None else default

    @_guard_redis
    def set(self, ns: str, key: str, value: Any) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self._k(ns), key, json.dumps(value))
        pipe.sadd(f"{self.prefix}::namespaces", ns)
        pipe.execute()

    @_guard_redis
    def set_if_absent(self, ns: str, key: str, value: Any) -> bool:
        stored = bool(self.client.hsetnx(self._k(ns), key, json.dumps(value)))
        self.client.sadd(f"{self.prefix}::namespaces", ns)
        return stored

    @_guard_redis
    def delete(self, ns: str, key: str) -> None:
        self.client.hdel(self._k(ns), key)

    @_guard_redis
    def items(self, ns: str) -> dict[str, Any]:
        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(self._k(ns)).items()}

    @_guard_redis
    def incr(self, ns: str, key: str, amount: int = 1) -> int:
        self.client.sadd(f"{self.prefix}::namespaces", ns)
        return int(self.client.hincrby(self._k(ns), key, amount))

    @_guard_redis
    def namespaces(self, prefix: str = "") -> list[str]:
        names = (n.decode() for n in self.client.smembers(f"{self.prefix}::namespaces"))
        return sorted(n for n in names if n.startswith(prefix))

    def close(self) -> None:
        self.client.close()


def open_state(core: CoreSettings) -> StateStore:
    """Redis when ``REDIS_URL`` is set, else SQLite at ``PRELABEL_HOME/state.sqlite3``."""
    if core.redis_url:
        return RedisStateStore(core.redis_url)
    return SQLiteStateStore(core.state_path)
