"""The SQLite inbox (bot/store/inbox.py): a table in the store's database file, on the store's DB thread.

An entry's lease names its holder like a conversation lease does (host, pid namespace, pid, a token): a
process of this host that has exited is seen to be dead at once, so after a SIGKILL the restarted server
(or another worker) takes its entries over on its first sweep; a holder that is alive but silent loses
them when its lease runs out. `put` and `done` are group-committed (inbox.Batcher): under load many
requests share one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.store.inbox import LEASE, Batcher, Entry, Inbox, InboxFull
from bot.store.sqlite import _holder_died, _transaction

if TYPE_CHECKING:
    from bot.store.sqlite import SQLiteStore

_Put = tuple[str, str, int, int]  # key, payload, seen_ttl, limit
_Done = tuple[int, tuple[tuple[str, str], ...]]  # entry id, records to drop


class SQLiteInbox(Inbox):
    def __init__(self, store: SQLiteStore, box: str) -> None:
        self.store = store
        self.box = box
        self.owner = store._owner
        self._puts: Batcher[_Put, Entry | None] = Batcher(self._put_batch)
        self._dones: Batcher[_Done, None] = Batcher(self._done_batch)

    async def put(self, key: str, payload: str, *, seen_ttl: int, limit: int = 0) -> Entry | None:
        return await self._puts.submit((key, payload, seen_ttl, limit))

    async def _put_batch(self, items: list[_Put]) -> list[Entry | None | Exception]:
        def q(c: sqlite3.Connection) -> list[Entry | None | Exception]:
            now = self.store.clock()
            out: list[Entry | None | Exception] = []
            with _transaction(c):
                waiting = self._waiting(c, max(limit for *_, limit in items))
                for key, payload, seen_ttl, limit in items:
                    if limit and waiting >= limit:
                        out.append(InboxFull())
                    elif not self.store._claim_in(c, [f"inbox:{self.box}:{key}"], seen_ttl, now):
                        out.append(None)
                    else:
                        cur = c.execute(
                            "INSERT INTO inbox(box, payload, owner, expires_at, attempts, recorded_at) VALUES (?,?,?,?,1,?)",
                            (self.box, payload, self.owner, now + LEASE, now),
                        )
                        out.append(Entry(str(cur.lastrowid), payload, 1, now))
                        waiting += 1
            return out

        return await self.store._run(q, urgent=True)  # the acknowledgement waits for this

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
        def q(c: sqlite3.Connection) -> list[None | Exception]:
            with _transaction(c):
                c.executemany("DELETE FROM inbox WHERE id=?", [(entry_id,) for entry_id, _ in items])
                c.executemany("DELETE FROM records WHERE kind=? AND key=?", [d for _, drop in items for d in drop])
            return [None] * len(items)

        return await self.store._run(q)

    async def renew(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return

        def q(c: sqlite3.Connection) -> None:
            # Every entry of ours: those in progress, and any this process recorded but no longer tracks.
            c.execute("UPDATE inbox SET expires_at=? WHERE box=? AND owner=?", (self.store.clock() + LEASE, self.box, self.owner))

        await self.store._run(q)

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

        return await self.store._run(q)
