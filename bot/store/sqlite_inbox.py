"""The SQLite inbox (bot/store/inbox.py): a database file of its own beside the store's, on its own thread.

Recording an event is what Slack's acknowledgement waits for, so it must not queue behind the turns'
writes: in its own file it contends only with other recordings and with `done`, and a turn's writes or a
WAL checkpoint of the conversations' file never hold it up (bot/store/sqlite_file.py).

An entry's lease names its holder like a conversation lease does (host, pid namespace, pid, a token): a
process of this host that has exited is seen to be dead at once, so after a SIGKILL the restarted server
(or another worker) takes its entries over on its first sweep; a holder that is alive but silent loses
them when its lease runs out. `put` and `done` are group-committed (inbox.Batcher): under load many
requests share one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.store.inbox import LEASE, Batcher, Entry, Inbox, InboxFull
from bot.store.sqlite import _holder_died, _transaction
from bot.store.sqlite_file import SQLiteFile

if TYPE_CHECKING:
    from bot.store.sqlite import SQLiteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, box TEXT NOT NULL, payload TEXT NOT NULL, owner TEXT NOT NULL,
  expires_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, recorded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_box ON inbox(box, id);
CREATE INDEX IF NOT EXISTS inbox_by_owner ON inbox(box, owner);
CREATE INDEX IF NOT EXISTS inbox_by_expiry ON inbox(box, expires_at);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""

_Put = tuple[str, str, int, int, bool]  # key, payload, seen_ttl, limit, held
_Done = tuple[int, tuple[tuple[str, str], ...]]  # entry id, records to drop
# How long a finished entry waits for others to be removed with it (seconds).
DONE_LINGER = 0.02
# Expired request keys are removed every PURGE_EVERY recordings, not on each.
PURGE_EVERY = 500


def inbox_file(store: SQLiteStore) -> SQLiteFile:
    """`scim-help.sqlite3` keeps its inbox in `scim-help.inbox.sqlite3`."""
    path = store.path.with_name(f"{store.path.stem}.inbox{store.path.suffix}")
    return SQLiteFile(path, _SCHEMA, "sqlite-inbox", on_open=lambda c: _adopt_legacy(c, store.path))


def _adopt_legacy(c: sqlite3.Connection, store_path: Path) -> None:
    """Entries an earlier version left in the store's own file move here with their ids (the Slack outbox
    records are keyed by entry id), and new ids start above theirs. Repeating it is harmless."""
    c.execute("ATTACH DATABASE ? AS legacy", (str(store_path),))
    try:
        if c.execute("SELECT 1 FROM legacy.sqlite_master WHERE type='table' AND name='inbox'").fetchone() is None:
            return
        with _transaction(c):
            c.execute("INSERT OR IGNORE INTO main.inbox SELECT id, box, payload, owner, expires_at, attempts, recorded_at FROM legacy.inbox")
            last = c.execute("SELECT seq FROM legacy.sqlite_sequence WHERE name='inbox'").fetchone()
            mine = c.execute("SELECT seq FROM main.sqlite_sequence WHERE name='inbox'").fetchone()
            if last is not None and (mine is None or mine[0] < last[0]):
                c.execute("DELETE FROM main.sqlite_sequence WHERE name='inbox'")
                c.execute("INSERT INTO main.sqlite_sequence(name, seq) VALUES ('inbox', ?)", (last[0],))
            c.execute("DROP TABLE legacy.inbox")
    finally:
        c.execute("DETACH DATABASE legacy")


class SQLiteInbox(Inbox):
    def __init__(self, store: SQLiteStore, file: SQLiteFile, box: str) -> None:
        self.store = store
        self.file = file
        self._puts_since_purge = 0
        self.box = box
        self.owner = store._owner
        self._puts: Batcher[_Put, Entry | None] = Batcher(self._put_batch)
        # Nobody waits on `done` (the answer is posted): batched, the file's lock is taken a tenth as often,
        # and a recording worker finds it free more often.
        self._dones: Batcher[_Done, None] = Batcher(self._done_batch, linger=DONE_LINGER)

    async def put(self, key: str, payload: str, *, seen_ttl: int, limit: int = 0, held: bool = True) -> Entry | None:
        return await self._puts.submit((key, payload, seen_ttl, limit, held))

    async def _put_batch(self, items: list[_Put]) -> list[Entry | None | Exception]:
        def q(c: sqlite3.Connection) -> list[Entry | None | Exception]:
            now = self.store.clock()
            out: list[Entry | None | Exception] = []
            with _transaction(c):
                waiting = self._waiting(c, max(limit for _, _, _, limit, _ in items))
                for key, payload, seen_ttl, limit, held in items:
                    if limit and waiting >= limit:
                        out.append(InboxFull())
                    elif not _first_sighting(c, f"{self.box}:{key}", seen_ttl, now):
                        out.append(None)
                    else:
                        cur = c.execute(
                            "INSERT INTO inbox(box, payload, owner, expires_at, attempts, recorded_at) VALUES (?,?,?,?,1,?)",
                            # Unheld: owner '' until a processor claims it; still unclaimed when the
                            # lease runs out, `reclaim` takes it like an abandoned entry.
                            (self.box, payload, self.owner if held else "", now + LEASE, now),
                        )
                        out.append(Entry(str(cur.lastrowid), payload, 1, now))
                        waiting += 1
                if purge:
                    c.execute("DELETE FROM seen WHERE expires_at<?", (now,))
            return out

        self._puts_since_purge += len(items)
        purge = self._puts_since_purge >= PURGE_EVERY
        if purge:
            self._puts_since_purge = 0
        return await self.file.run(q, urgent=True)  # the acknowledgement waits for this

    def _waiting(self, c: sqlite3.Connection, limit: int) -> int:
        """How many entries wait, exactly when it matters: the id span is an upper bound found through the
        index at once; only when it reaches the limit are they counted."""
        if not limit:
            return 0
        first = c.execute("SELECT id FROM inbox WHERE box=? ORDER BY id LIMIT 1", (self.box,)).fetchone()
        if first is None:
            return 0
        last = c.execute("SELECT id FROM inbox WHERE box=? ORDER BY id DESC LIMIT 1", (self.box,)).fetchone()
        if last[0] - first[0] + 1 < limit:
            return int(last[0] - first[0] + 1)
        return int(c.execute("SELECT COUNT(*) FROM inbox WHERE box=?", (self.box,)).fetchone()[0])

    async def done(self, entry: Entry, drop: Sequence[tuple[str, str]] = ()) -> None:
        await self._dones.submit((int(entry.id), tuple(drop)))

    async def _done_batch(self, items: list[_Done]) -> list[None | Exception]:
        """The records first, then the entries: a crash between the two leaves an entry whose turn is
        already committed, and taken over it is answered as the repeat it is; the other order would leave
        records nobody drops."""
        drops = [d for _, drop in items for d in drop]
        if drops:
            await self.store._run(lambda c: c.executemany("DELETE FROM records WHERE kind=? AND key=?", drops))
        await self.file.run(lambda c: c.executemany("DELETE FROM inbox WHERE id=?", [(entry_id,) for entry_id, _ in items]))
        return [None] * len(items)

    async def claim(self, limit: int) -> list[Entry]:
        def q(c: sqlite3.Connection) -> list[Entry]:
            now = self.store.clock()
            with _transaction(c):
                rows = c.execute(
                    "UPDATE inbox SET owner=?, expires_at=? WHERE id IN "
                    "(SELECT id FROM inbox WHERE box=? AND owner='' ORDER BY id LIMIT ?) "
                    "RETURNING id, payload, attempts, recorded_at",
                    (self.owner, now + LEASE, self.box, limit),
                ).fetchall()
            return [Entry(str(i), payload, attempts, recorded_at) for i, payload, attempts, recorded_at in sorted(rows)]

        return await self.file.run(q)

    async def renew(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return

        def q(c: sqlite3.Connection) -> None:
            # Every entry of ours: those in progress, and any this process recorded but no longer tracks.
            c.execute("UPDATE inbox SET expires_at=? WHERE box=? AND owner=?", (self.store.clock() + LEASE, self.box, self.owner))

        await self.file.run(q)

    async def reclaim(self, limit: int = 100) -> list[Entry]:
        def q(c: sqlite3.Connection) -> list[Entry]:
            now = self.store.clock()
            with _transaction(c):
                owners = [o for (o,) in c.execute("SELECT DISTINCT owner FROM inbox WHERE box=? AND owner<>?", (self.box, self.owner))]
                ids = [i for o in owners if _holder_died(o) for (i,) in c.execute("SELECT id FROM inbox WHERE box=? AND owner=? ORDER BY id LIMIT ?", (self.box, o, limit))]
                ids += [i for (i,) in c.execute("SELECT id FROM inbox WHERE box=? AND expires_at<? ORDER BY id LIMIT ?", (self.box, now, limit))]
                taken: list[Entry] = []
                for row_id in sorted(set(ids))[:limit]:
                    c.execute("UPDATE inbox SET owner=?, expires_at=?, attempts=attempts+1 WHERE id=?", (self.owner, now + LEASE, row_id))
                    payload, attempts, recorded_at = c.execute("SELECT payload, attempts, recorded_at FROM inbox WHERE id=?", (row_id,)).fetchone()
                    taken.append(Entry(str(row_id), payload, attempts, recorded_at))
            return taken

        return await self.file.run(q)


def _first_sighting(c: sqlite3.Connection, key: str, ttl: int, now: float) -> bool:
    """Remember `key` for `ttl` seconds; False when it is remembered already (a redelivery)."""
    cur = c.execute(
        "INSERT INTO seen(key, expires_at) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET expires_at=excluded.expires_at WHERE seen.expires_at < ?",
        (key, now + ttl, now),
    )
    return cur.rowcount == 1
