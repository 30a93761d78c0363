import multiprocessing

import pytest

from prelabel.state import RedisStateStore, SQLiteStateStore


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStateStore(tmp_path / "state.sqlite3")
    else:
        s = RedisStateStore(request.getfixturevalue("redis_url"))
    yield s
    s.close()


def test_get_set_delete_items(store):
    assert store.get("project:1", "missing", "dflt") == "dflt"
    store.set("project:1", "model_version", "v1")
    store.set("project:1", "config", {"a": [1, 2]})
    store.set("project:2", "model_version", "v9")
    assert store.get("project:1", "config") == {"a": [1, 2]}
    assert store.items("project:1") == {"model_version": "v1", "config": {"a": [1, 2]}}
    store.delete("project:1", "config")
    assert store.items("project:1") == {"model_version": "v1"}
    assert store.namespaces("project:") == ["project:1", "project:2"]


def test_incr_and_set_if_absent(store):
    assert store.incr("p", "n") == 1
    assert store.incr("p", "n", 5) == 6
    assert store.set_if_absent("p", "lock", "a") is True
    assert store.set_if_absent("p", "lock", "b") is False
    assert store.get("p", "lock") == "a"


def test_project_state_view(store):
    st = store.project("3")
    st.set("x", 1)
    assert store.get("project:3", "x") == 1
    assert st.incr("count") == 1


def _bump(path, n):
    s = SQLiteStateStore(path)
    for _ in range(n):
        s.incr("p", "n")
    s.close()


def test_sqlite_is_safe_across_processes(tmp_path):
    path = tmp_path / "shared.sqlite3"
    SQLiteStateStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(path, 50)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert SQLiteStateStore(path).get("p", "n") == 200


def test_two_store_instances_see_each_others_writes(tmp_path, redis_url):
    for make in (lambda: SQLiteStateStore(tmp_path / "s.sqlite3"), lambda: RedisStateStore(redis_url)):
        a, b = make(), make()
        a.set("project:1", "model_version", "v2")
        assert b.get("project:1", "model_version") == "v2"  # no stale per-process cache
        a.close()
        b.close()


def test_sqlite_generation_is_read_once_per_loop_iteration_and_sees_every_write(tmp_path):
    """On an event loop, data_version is read once per iteration (a request caused by another
    process's commit is handled in a later one); this process's writes show at once; off a
    loop, every call reads."""
    import asyncio

    path = tmp_path / "state.sqlite3"
    store, elsewhere = SQLiteStateStore(path), SQLiteStateStore(path)  # another process's commits
    statements = []

    async def serve():
        store._conn().set_trace_callback(statements.append)
        first = store.generation()
        elsewhere.set("project:1", "label_config", "<View/>")
        assert store.generation() == first  # the same iteration: not read again
        await asyncio.sleep(0)  # the next iteration
        second = store.generation()
        assert second != first
        store.set("project:1", "hostname", "http://ls:8080")  # this process's own write
        third = store.generation()
        assert third != second
        assert store.generation() == third
        return statements.count("PRAGMA data_version")

    try:
        assert asyncio.run(serve()) == 2
        before = store.generation()
        elsewhere.set("project:1", "label_config", "<View></View>")
        assert store.generation() != before  # off a loop: read each time
    finally:
        store.close()
        elsewhere.close()
