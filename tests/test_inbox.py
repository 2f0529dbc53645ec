"""The inbox as processor processes use it (`serve --processors M`): workers record unheld entries, processors
claim them; and the SQLite file's statements, run at once on the calling thread when nothing has to be
waited for. The `store` fixture runs each contract test on memory, SQLite and the real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.timing import Clock


async def test_inbox_unheld_entries_are_claimed_oldest_first_and_once(store):
    """Workers record unheld; a processor claims. A sweep does not take fresh unheld entries from under the
    processors, and a claimed entry is nobody else's."""
    box = f"test-{uuid.uuid4().hex[:8]}"
    worker, processor, other = store.inbox(box), store.inbox(box), store.inbox(box)
    recorded = [await worker.put(f"evt-{i}", f"payload-{i}", seen_ttl=60, held=False) for i in range(3)]
    assert all(e is not None for e in recorded)
    assert await worker.put("evt-1", "payload-1", seen_ttl=60, held=False) is None  # a redelivery
    assert await other.reclaim() == []  # fresh: left to the processors
    first = await processor.claim(2)
    assert [(e.payload, e.attempts) for e in first] == [("payload-0", 1), ("payload-1", 1)]
    rest = await processor.claim(10)
    assert [e.payload for e in rest] == ["payload-2"]
    assert await processor.claim(10) == [] and await other.claim(10) == []
    for e in first + rest:
        await processor.done(e)
    assert await other.reclaim() == [] and await other.claim(10) == []
    for inbox in (worker, processor, other):
        await inbox.close()


async def test_inbox_unheld_entries_count_toward_the_limit(store):
    from bot.store.inbox import InboxFull

    inbox = store.inbox(f"test-{uuid.uuid4().hex[:8]}")
    assert await inbox.put("a", "1", seen_ttl=60, limit=1, held=False) is not None
    with pytest.raises(InboxFull):
        await inbox.put("b", "2", seen_ttl=60, limit=1, held=False)
    (entry,) = await inbox.claim(5)
    await inbox.done(entry)
    assert await inbox.put("b", "2", seen_ttl=60, limit=1, held=False) is not None
    await inbox.close()


async def test_sqlite_inbox_unheld_entry_nobody_claims_is_taken_over_after_the_lease(tmp_path):
    """No processor running (they were switched off, or all died): after LEASE a worker's sweep takes it."""
    from bot.store.inbox import LEASE
    from bot.store.sqlite import SQLiteStore

    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    try:
        inbox = store.inbox("slack")
        await inbox.put("evt", "left", seen_ttl=60, held=False)
        assert await inbox.reclaim() == []
        clock.advance(LEASE + 1)
        taken = await inbox.reclaim()
        assert [(e.payload, e.attempts) for e in taken] == [("left", 2)]
        assert await inbox.claim(5) == []
    finally:
        await store.close()


async def test_sqlite_statement_runs_at_once_when_free_and_waits_on_its_thread_when_not(tmp_path):
    """A free file: the statement runs on the calling thread (no hand-off to the DB thread and back).
    Another process holding the file: the statement waits on the DB thread, and the loop goes on."""
    import fcntl
    import os
    import threading

    from bot.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "s.sqlite3")
    try:
        await store.save("k", "v", ttl=60)  # opens the connection (on the thread, the first time)
        here = await store._file.run(lambda c: threading.current_thread())
        assert here is threading.current_thread()
        other = os.open(tmp_path / "s.sqlite3-gate", os.O_RDWR)  # another open file: as another process
        try:
            fcntl.flock(other, fcntl.LOCK_EX)
            waiting = asyncio.create_task(store._file.run(lambda c: (threading.current_thread(), c.execute("SELECT 1").fetchone())))
            await asyncio.sleep(0.2)  # the loop runs meanwhile
            assert not waiting.done()
            fcntl.flock(other, fcntl.LOCK_UN)
            ran_on, row = await asyncio.wait_for(waiting, 5)
            assert ran_on is not threading.current_thread() and row == (1,)
        finally:
            os.close(other)
        assert await store.load("k") == "v"
    finally:
        await store.close()


# ---- processors end to end -----------------------------------------------------------------------------


def _counter(exposition: str, sample: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines() if line.startswith(sample))


def test_processors_answer_and_every_scrape_counts_every_process(tmp_path):
    """`serve --workers 2 --processors 1`: the workers only acknowledge, the processor answers, and /metrics
    on whichever worker answers the scrape adds up every process. Before, a scrape saw one worker's own
    counters, and a processor's turns would have been counted nowhere."""
    import uuid as _uuid

    from tests.support import platform as P
    from tests.support.stack import Stack

    with Stack(tmp_path, workers=2, processors=1) as stack:
        channels = [f"D{_uuid.uuid4().hex[:10].upper()}" for _ in range(6)]
        for channel in channels:
            assert stack.slack_event(P.dm_event(channel, "U0ADMIN", "users aren't syncing from entra to cato")).status == 200
        for channel in channels:
            stack.wait_slack_posts(1, channel=channel)
        for _ in range(6):  # SO_REUSEPORT spreads the scrapes over both workers
            text = stack.srv.get("/metrics").text
            assert _counter(text, 'scim_help_messages_total{channel="slack"}') == len(channels), text
            assert _counter(text, "scim_help_store_up ") == 1.0


async def test_sqlite_database_held_by_another_program_never_blocks_the_loop(tmp_path):
    """A program outside the store's lock (a backup tool, the sqlite3 shell) holding the write lock: the
    statement is not waited for on the loop's thread (SQLite's busy wait would block it for up to 5 s) but
    on the file's thread, and it is written once the program lets go."""
    import sqlite3
    import time

    from bot.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "s.sqlite3")
    try:
        await store.save("k", "v1", ttl=60)
        foreign = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
        foreign.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        saving = asyncio.create_task(store.save("k", "v2", ttl=60))
        await asyncio.sleep(0.2)
        assert time.monotonic() - started < 0.5  # the loop ran on: nothing blocked it
        assert not saving.done()
        foreign.execute("COMMIT")
        foreign.close()
        await asyncio.wait_for(saving, 5)
        assert await store.load("k") == "v2"
    finally:
        await store.close()


async def test_a_recording_worker_refuses_beyond_the_backlog_but_takes_slacks_last_retry(monkeypatch):
    """What waits for the processors is bounded in the store: beyond it Slack gets a 503 and delivers again,
    except its last retry, which is always recorded. The worker never runs the entry itself."""
    from bot.admission import Gate
    from bot.channels.slack import inbox as slack_inbox
    from bot.doorbell import Doorbell
    from bot.store.memory import MemoryStore

    monkeypatch.setattr(slack_inbox, "RECORDED_BACKLOG", 2)
    store = MemoryStore()
    bell = Doorbell()
    worker = slack_inbox.SlackInbox(None, store.inbox("slack"), Gate("slack", 300), "record", bell)  # type: ignore[arg-type]
    outcomes = [await worker.accept(f"evt-{i}", {"n": i}, last_chance=False) for i in range(3)]
    assert outcomes == ["recorded", "recorded", "busy"]
    assert await worker.accept("evt-2", {"n": 2}, last_chance=True) == "recorded"
    assert await worker.accept("evt-0", {"n": 0}, last_chance=True) == "repeat"
    assert worker.in_progress == 0  # recorded for the processors, run by none here
    processor_side = store.inbox("slack")
    assert [e.payload for e in await processor_side.claim(10)] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
