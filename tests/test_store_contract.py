"""One contract, every backend: the `store` fixture runs each test on memory, SQLite and the real Redis."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid

import pytest

from bot.store.base import Store, StoreUnavailable
from tests.conftest import open_store
from tests.support.timing import Clock, pass_time


async def test_save_load_delete(store):
    key = f"k-{uuid.uuid4().hex}"
    assert await store.load(key) is None
    await store.save(key, '{"a": 1}', ttl=60)
    assert await store.load(key) == '{"a": 1}'
    await store.save(key, '{"a": 2}', ttl=60)
    assert await store.load(key) == '{"a": 2}'
    await store.delete(key)
    assert await store.load(key) is None


async def test_unicode_and_large_values_round_trip(store):
    value = '{"t": "' + ("ünïcødé 🚀 " * 20000) + '"}'
    await store.save("big", value, ttl=60)
    assert await store.load("big") == value


async def test_expiry(store):
    await store.save("short", "x", ttl=1)
    assert await store.load("short") == "x"
    await pass_time(store, 1.2)
    assert await store.load("short") is None


async def test_claim_is_first_caller_wins(store):
    key = f"evt-{uuid.uuid4().hex}"
    results = await asyncio.gather(*(store.claim(key, ttl=60) for _ in range(20)))
    assert results.count(True) == 1
    assert await store.claim(f"{key}-other", ttl=60) is True


async def test_claim_expires(store):
    assert await store.claim("c", ttl=1) is True
    assert await store.claim("c", ttl=1) is False
    await pass_time(store, 1.2)
    assert await store.claim("c", ttl=1) is True


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_ttl_runs_out_on_time_not_before(backend, request, tmp_path):
    """On the stores that take a clock, to the second: a conversation and a claim live their whole TTL
    (through a restart, for SQLite) and not a moment longer."""
    store = open_store(backend, request, tmp_path)
    try:
        await store.save("conv", "x", ttl=60)
        assert await store.claim("evt", ttl=60) is True
        await pass_time(store, 59.9)
        if backend == "sqlite":
            await store.close()
            store = open_store(backend, request, tmp_path)
        assert await store.load("conv") == "x"
        assert await store.claim("evt", ttl=60) is False
        await pass_time(store, 0.2)
        assert await store.load("conv") is None
        assert await store.claim("evt", ttl=60) is True
    finally:
        await store.close()


async def test_lock_serialises_read_modify_write(store):
    key = "counter"
    await store.save(key, "0", ttl=60)

    async def bump():
        async with store.lock(key):
            value = int(await store.load(key))
            await asyncio.sleep(0.001)  # widen the race window
            await store.save(key, str(value + 1), ttl=60)

    await asyncio.gather(*(bump() for _ in range(25)))
    assert await store.load(key) == "25"


async def test_hold_reads_and_writes_back_under_the_lock(store):
    key = f"held-{uuid.uuid4().hex}"
    async with store.hold(key) as held:
        assert held.data is None
        held.save('{"n": 0}', ttl=60)
    assert await store.load(key) == '{"n": 0}'

    async def bump():
        async with store.hold(key) as held:
            value = int(held.data.split(":")[1].rstrip("}"))
            await asyncio.sleep(0.001)  # widen the race window
            held.save(f'{{"n": {value + 1}}}', ttl=60)

    await asyncio.gather(*(bump() for _ in range(25)))
    assert await store.load(key) == '{"n": 25}'


async def test_hold_writes_nothing_after_an_exception_or_without_save(store):
    key = f"held-{uuid.uuid4().hex}"
    await store.save(key, "before", ttl=60)
    with pytest.raises(RuntimeError):
        async with store.hold(key) as held:
            held.save("after", ttl=60)
            raise RuntimeError("turn failed")
    async with store.hold(key) as held:
        assert held.data == "before"
    assert await store.load(key) == "before"
    # The lock was given back both times.
    async with store.lock(key, timeout=0.5):
        pass


async def test_hold_writes_records_with_the_conversation_and_only_on_success(store):
    key = f"held-{uuid.uuid4().hex}"
    kind = f"kind-{uuid.uuid4().hex[:6]}"
    async with store.hold(key) as held:
        held.save("state", ttl=60)
        held.put_record(kind, "a", "1")
        held.put_record(kind, "b", "2")
    assert await store.load(key) == "state"
    assert await store.records(kind) == {"a": "1", "b": "2"}
    async with store.hold(key) as held:  # a record alone, without a state to write
        held.put_record(kind, "a", "3")
    assert await store.get_record(kind, "a") == "3"
    with pytest.raises(RuntimeError):
        async with store.hold(key) as held:
            held.save("after", ttl=60)
            held.put_record(kind, "b", "lost")
            raise RuntimeError("turn failed")
    assert await store.load(key) == "state"
    assert await store.get_record(kind, "b") == "2"


async def test_hold_and_lock_exclude_each_other(store):
    key = f"held-{uuid.uuid4().hex}"
    async with store.hold(key):
        with pytest.raises(TimeoutError):
            async with store.lock(key, timeout=0.3):
                pass
    async with store.lock(key):
        with pytest.raises(TimeoutError):
            async with store.hold(key, timeout=0.3):
                pass


async def test_claim_all_wins_only_when_every_key_is_new(store):
    a, b, c = (f"evt-{uuid.uuid4().hex}" for _ in range(3))
    assert await store.claim_all([a, b], ttl=60) is True
    assert await store.claim_all([a, b], ttl=60) is False
    assert await store.claim_all([c, a], ttl=60) is False  # a is taken; c is claimed all the same
    assert await store.claim(c, ttl=60) is False
    results = await asyncio.gather(*(store.claim_all([f"{a}-x", f"{b}-x"], ttl=60) for _ in range(20)))
    assert results.count(True) == 1


async def test_locks_on_different_keys_do_not_block_each_other(store):
    async with store.lock("a"):
        async with store.lock("b", timeout=2):
            pass


async def test_lock_times_out_instead_of_hanging(store):
    async with store.lock("held"):
        with pytest.raises(TimeoutError):
            async with store.lock("held", timeout=0.3):
                pass


async def test_records(store):
    await store.put_record("outcome", "c1#1", '{"x": 1}')
    await store.put_record("outcome", "c2#1", '{"x": 2}')
    await store.put_record("outcome", "c1#1", '{"x": 3}')
    await store.put_record("teams-ref", "c1", "{}")
    assert await store.records("outcome") == {"c1#1": '{"x": 3}', "c2#1": '{"x": 2}'}
    assert await store.get_record("outcome", "c2#1") == '{"x": 2}'
    assert await store.get_record("outcome", "missing") is None
    assert await store.records("nothing") == {}


async def test_ping(store):
    assert await store.ping() is True


# ---- backend-specific --------------------------------------------------------------------------


async def test_sqlite_creates_its_data_dir_on_first_use(tmp_path):
    from bot.store.sqlite import SQLiteStore

    path = tmp_path / "deep" / "er" / "scim.sqlite3"
    store = SQLiteStore(path)
    await store.save("k", "v", ttl=60)
    assert path.exists()
    await store.close()


def _bump_in_process(path: str, n: int) -> None:
    from bot.store.sqlite import SQLiteStore

    async def main() -> None:
        store = SQLiteStore(path)
        for _ in range(n):
            async with store.lock("shared"):
                value = int(await store.load("shared") or "0")
                await store.save("shared", str(value + 1), ttl=60)
        await store.close()

    asyncio.run(main())


def test_sqlite_lock_serialises_across_processes(tmp_path):
    path = str(tmp_path / "multi.sqlite3")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump_in_process, args=(path, 30)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0

    async def read() -> str | None:
        from bot.store.sqlite import SQLiteStore

        store = SQLiteStore(path)
        try:
            return await store.load("shared")
        finally:
            await store.close()

    assert asyncio.run(read()) == "90"


async def test_redis_down_raises_store_unavailable_and_ping_false():
    from bot.store.redis import RedisStore

    store = RedisStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert await store.ping() is False
    with pytest.raises(StoreUnavailable):
        await store.load("x")
    with pytest.raises(StoreUnavailable):
        async with store.lock("x", timeout=0.2):
            pass
    await store.close()


async def test_sqlite_lease_of_a_dead_holder_expires(tmp_path):
    from bot.store import sqlite as sqlite_mod

    clock = Clock()
    dead = sqlite_mod.SQLiteStore(tmp_path / "lease.sqlite3", clock=clock)
    assert (await dead._run(lambda c: dead._try_lease(c, "conv", False)))[0]  # a process that took the lock and died
    alive = sqlite_mod.SQLiteStore(tmp_path / "lease.sqlite3", clock=clock)
    with pytest.raises(TimeoutError):
        async with alive.lock("conv", timeout=0.2):
            pass
    clock.advance(sqlite_mod.LEASE_SECONDS + 0.1)
    async with alive.lock("conv", timeout=5):
        pass
    await dead.close()
    await alive.close()


@pytest.mark.parametrize("holder", ["exited", "alive"])
async def test_sqlite_lease_of_an_exited_process_is_taken_over_at_once(tmp_path, holder):
    """A SIGKILLed worker's lease names its pid; the next turn takes it over instead of waiting 30 s. A
    lease of a live process (another worker in the middle of a turn) is respected."""
    import os
    import subprocess
    import sys

    from bot.store import sqlite as sqlite_mod

    if holder == "exited":
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()  # reaped: the pid names no process now
        pid = child.pid
    else:
        pid = os.getppid()
    gone = sqlite_mod.SQLiteStore(tmp_path / "lease.sqlite3")
    gone._owner = f"{sqlite_mod._HOST}:{pid}:token"
    assert (await gone._run(lambda c: gone._try_lease(c, "conv", False)))[0]  # took the lock, then "died"
    other = sqlite_mod.SQLiteStore(tmp_path / "lease.sqlite3")
    try:
        if holder == "exited":
            async with other.hold("conv", timeout=0.5) as held:
                held.save("taken over", ttl=60)
            assert await other.load("conv") == "taken over"
        else:
            with pytest.raises(TimeoutError):
                async with other.hold("conv", timeout=0.3):
                    pass
    finally:
        await gone.close()
        await other.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_holder_whose_lease_ran_out_writes_nothing(backend, tmp_path, monkeypatch, redis_url):
    """A turn slower than the lease must not overwrite the turn that took the lock after it."""
    from bot.store import redis as redis_mod
    from bot.store import sqlite as sqlite_mod

    key = f"lease-{uuid.uuid4().hex}"
    slow: Store
    fast: Store
    if backend == "sqlite":
        monkeypatch.setattr(sqlite_mod, "LEASE_SECONDS", 0.3)
        clock = Clock()
        slow, fast = (sqlite_mod.SQLiteStore(tmp_path / "lease.sqlite3", clock=clock) for _ in range(2))  # two processes
    else:
        monkeypatch.setattr(redis_mod, "LEASE_SECONDS", 0.3)
        slow = fast = redis_mod.RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex}:")  # a token per hold
    try:
        with pytest.raises(TimeoutError, match="nothing written"):
            async with slow.hold(key) as held:
                await pass_time(slow, 0.5)  # the lease runs out
                async with fast.hold(key, timeout=2) as other:
                    other.save("newer", ttl=60)
                held.save("stale", ttl=60)
                held.put_record("lease-test", key, "stale")
        assert await fast.load(key) == "newer"
        assert await fast.get_record("lease-test", key) is None
    finally:
        await slow.close()
        if fast is not slow:
            await fast.close()


# ---- claims written with the conversation, deferred write-back (issue #14, break 6) ---------------------


async def test_a_failed_hold_leaves_its_claims_unclaimed(store):
    """A turn that fails (or a process killed mid-turn) must not mark its delivery as handled: the
    redelivery is processed. Claims are written with the conversation, on success only."""
    key, claim = f"held-{uuid.uuid4().hex}", f"evt-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError):
        async with store.hold(key, claims=[claim]) as held:
            assert held.fresh
            held.save("lost", ttl=60)
            raise RuntimeError("turn failed")
    async with store.hold(key, claims=[claim]) as held:
        assert held.fresh  # still new: the failed turn claimed nothing
        held.save("state", ttl=60)
    async with store.hold(key, claims=[claim]) as held:
        assert not held.fresh  # the successful turn claimed it
    assert await store.claim(claim, ttl=60) is False


async def test_deferred_hold_commits_the_callers_records_with_the_conversation(store):
    key, kind = f"held-{uuid.uuid4().hex}", f"outbox-{uuid.uuid4().hex[:6]}"
    async with store.deferred() as deferred:
        async with store.hold(key, claims=[f"{key}-evt"]) as held:
            held.save("state", ttl=60)
            held.put_record(kind, "remember", "1")
        assert await store.load(key) is None  # not written yet: the hold was parked
        with pytest.raises(TimeoutError):  # and its lock is still held
            async with store.lock(key, timeout=0.2):
                pass
        await deferred.commit([(kind, "turn", "replies")])
    assert await store.load(key) == "state"
    assert await store.records(kind) == {"remember": "1", "turn": "replies"}
    assert await store.claim(f"{key}-evt", ttl=60) is False
    async with store.lock(key, timeout=1):
        pass  # released


async def test_deferred_hold_writes_nothing_when_the_block_fails(store):
    key, kind = f"held-{uuid.uuid4().hex}", f"outbox-{uuid.uuid4().hex[:6]}"
    with pytest.raises(RuntimeError):
        async with store.deferred():
            async with store.hold(key, claims=[f"{key}-evt"]) as held:
                held.save("state", ttl=60)
            raise RuntimeError("posting failed before commit")
    assert await store.load(key) is None
    assert await store.claim(f"{key}-evt", ttl=60) is True
    async with store.lock(key, timeout=1):
        pass
    async with store.deferred() as deferred:  # without a hold, the records alone
        await deferred.commit([(kind, "a", "1")])
    assert await store.get_record(kind, "a") == "1"
    await store.delete_record(kind, "a")
    assert await store.get_record(kind, "a") is None


# ---- the inbox ------------------------------------------------------------------------------------------


async def test_inbox_records_once_and_forgets_when_done(store):
    inbox = store.inbox(f"test-{uuid.uuid4().hex[:8]}")
    kind = f"outbox-{uuid.uuid4().hex[:6]}"
    entry = await inbox.put("evt-1", '{"n": 1}', seen_ttl=60)
    assert entry is not None and entry.payload == '{"n": 1}' and entry.attempts == 1
    assert await inbox.put("evt-1", '{"n": 1}', seen_ttl=60) is None  # a redelivery
    await store.put_record(kind, entry.id, "replies")
    await inbox.renew([entry])
    assert await inbox.reclaim() == []  # ours and alive: nobody takes it over
    await inbox.done(entry, drop=[(kind, entry.id)])
    assert await store.get_record(kind, entry.id) is None
    assert await inbox.reclaim() == []
    await inbox.close()


async def test_inbox_refuses_above_its_limit(store):
    from bot.store.inbox import InboxFull

    inbox = store.inbox(f"test-{uuid.uuid4().hex[:8]}")
    first = await inbox.put("a", "1", seen_ttl=60, limit=1)
    with pytest.raises(InboxFull):
        await inbox.put("b", "2", seen_ttl=60, limit=1)
    await inbox.done(first)
    assert await inbox.put("b", "2", seen_ttl=60, limit=1) is not None  # refused, so not marked as seen
    await inbox.close()


async def test_inbox_entries_of_a_dead_holder_are_taken_over(tmp_path, redis_url):
    """SQLite: a holder that exited is seen dead at once. Redis: a consumer whose liveness key is gone."""
    import subprocess
    import sys

    from bot.store import sqlite as sqlite_mod
    from bot.store.redis import RedisStore

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    box = f"test-{uuid.uuid4().hex[:8]}"
    gone = sqlite_mod.SQLiteStore(tmp_path / "inbox.sqlite3")
    gone._owner = f"{sqlite_mod._HOST}:{child.pid}:token"
    other = sqlite_mod.SQLiteStore(tmp_path / "inbox.sqlite3")
    prefix = f"scim-help-test:{uuid.uuid4().hex}:"
    r_gone, r_other = RedisStore(redis_url, prefix=prefix), RedisStore(redis_url, prefix=prefix)
    try:
        for dead_store, live_store in ((gone, other), (r_gone, r_other)):
            dead, live = dead_store.inbox(box), live_store.inbox(box)
            entries = [await dead.put(f"evt-{i}", f"payload-{i}", seen_ttl=60) for i in range(3)]
            first = entries[0]
            assert first is not None, "evt-0 is new to this box, not a redelivery"
            await dead.done(first)
            if dead_store is r_gone:
                assert await live.reclaim() == []  # its consumer is still alive
                await dead.close()  # the consumer's liveness key goes, as when it expires after a kill
            taken = await live.reclaim()
            assert sorted(e.payload for e in taken) == ["payload-1", "payload-2"]
            assert all(e.attempts == 2 for e in taken)
            assert await live.reclaim() == []  # now held by the live one
            for e in taken:
                await live.done(e)
    finally:
        for s in (gone, other, r_gone, r_other):
            await s.close()


async def test_sqlite_inbox_entries_of_an_earlier_version_move_to_the_inbox_file(tmp_path):
    """Before the inbox had a file of its own its table was in the store's file: entries left there (a
    process killed before an upgrade) are taken over with their ids, and new ids start above theirs."""
    import sqlite3

    from bot.store.sqlite import _HOST, SQLiteStore

    path = tmp_path / "scim-help.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, box TEXT NOT NULL, payload TEXT NOT NULL, owner TEXT NOT NULL,"
        " expires_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, recorded_at REAL NOT NULL);"
    )
    old.execute("INSERT INTO inbox VALUES (41, 'slack', 'left', ?, 0, 1, 0)", (f"{_HOST}:999999999:dead",))
    old.execute("INSERT INTO inbox VALUES (42, 'slack', 'done since', 'x', 0, 1, 0)")
    old.execute("DELETE FROM inbox WHERE id=42")
    old.commit()
    old.close()
    store = SQLiteStore(path)
    try:
        inbox = store.inbox("slack")
        taken = await inbox.reclaim()
        assert [(e.id, e.payload, e.attempts) for e in taken] == [("41", "left", 2)]
        fresh = await inbox.put("evt", "new", seen_ttl=60)
        assert fresh is not None and int(fresh.id) > 42
        assert await store._run(lambda c: c.execute("SELECT name FROM sqlite_master WHERE name='inbox'").fetchall()) == []
    finally:
        await store.close()


@pytest.mark.parametrize("umask", [0o000, 0o022])
async def test_sqlite_files_are_private_whatever_the_umask(tmp_path, umask):
    """Break 8: the database and its -wal were 0644 and the data dir 0755, readable by every local user.
    Also files left readable by an older version are tightened when opened."""
    import os
    import stat

    from bot.store.sqlite import SQLiteStore

    data = tmp_path / "data"
    old = os.umask(umask)
    try:
        store = SQLiteStore(data / "scim-help.sqlite3")
        async with store.hold("k") as held:
            held.save("v", ttl=60)
        inbox = store.inbox("slack")
        await inbox.put("e", "p", seen_ttl=60)
        mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
        assert mode(data) == 0o700
        files = [data / f"scim-help{part}.sqlite3{suffix}" for part in ("", ".inbox") for suffix in ("", "-wal", "-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        await store.close()
        # Left readable by an older version, with another process holding the WAL open:
        import sqlite3

        data.chmod(0o755)
        files[0].chmod(0o644)
        other = sqlite3.connect(files[0])
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE IF NOT EXISTS t (x)")
        other.execute("INSERT INTO t VALUES (1)")
        other.commit()
        assert mode(files[1]) == 0o644 & ~umask
        store = SQLiteStore(data / "scim-help.sqlite3")
        assert await store.load("k") == "v"
        main = files[:3]  # the inbox file's -wal/-shm went with its last connection
        assert mode(data) == 0o700 and {f.name: mode(f) for f in main} == {f.name: 0o600 for f in main}
        await store.close()
        other.close()
    finally:
        os.umask(old)


async def test_lock_stays_exclusive_and_live_when_arrivals_meet_releases(store):
    """Arrivals timed to meet releases: a waiter must never lose its place (the lock object for a key
    dropped while someone is about to wait on it), nor may two turns hold one key at once."""
    import random

    key = f"busy-{uuid.uuid4().hex}"
    await store.save(key, "0", ttl=60)
    rng = random.Random(7)
    inside = 0
    most = 0

    async def turn(delay: float) -> None:
        nonlocal inside, most
        await asyncio.sleep(delay)
        async with store.hold(key, timeout=20) as held:
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            held.save(str(int(held.data) + 1), ttl=60)
            inside -= 1

    await asyncio.gather(*(turn(rng.random() * 0.2) for _ in range(150)))
    assert most == 1
    assert await store.load(key) == "150"


async def test_keyed_locks_forget_a_key_once_nobody_holds_or_waits_and_release_only_their_own():
    from bot.store.keyed import KeyedLocks

    locks = KeyedLocks()
    first = await locks.acquire("k", 1)
    waiter = asyncio.create_task(locks.acquire("k", 5))
    await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        await locks.acquire("k", 0.05)  # a timed-out waiter leaves no trace
    first()
    first()  # twice is harmless: it cannot release the waiter's hold
    second = await waiter
    assert len(locks) == 1
    with pytest.raises(TimeoutError):
        await locks.acquire("k", 0.05)
    second()
    assert len(locks) == 0
    third = await locks.acquire("k", 0.05)
    third()
    assert len(locks) == 0
