"""The SQLite inbox (bot/store/inbox.py): a table in the store's database file, on the store's DB thread.

An entry's lease names its holder like a conversation lease does (host, pid namespace, pid, a token): a
process of this host that has exited is seen to be dead at once, so after a SIGKILL the restarted server
(or another worker) takes its entries over on its first sweep; a holder that is alive but silent loses
them when its lease runs out.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Sequence

from bot.store.inbox import LEASE, Entry, Inbox, InboxFull
from bot.store.sqlite import _holder_died, _transaction

if TYPE_CHECKING:
    from bot.store.sqlite import SQLiteStore


class SQLiteInbox(Inbox):
    def __init__(self, store: "SQLiteStore", box: str) -> None:
        self.store = store
        self.box = box
        self.owner = store._owner

    async def put(self, key: str, payload: str, *, seen_ttl: int, limit: int = 0) -> Entry | None:
        def q(c: sqlite3.Connection) -> Entry | None:
            now = time.time()
            with _transaction(c):
                if limit and c.execute("SELECT COUNT(*) FROM inbox WHERE box=?", (self.box,)).fetchone()[0] >= limit:
                    raise InboxFull()
                if not self.store._claim_in(c, [f"inbox:{self.box}:{key}"], seen_ttl, now):
                    return None
                cur = c.execute(
                    "INSERT INTO inbox(box, payload, owner, expires_at, attempts, recorded_at) VALUES (?,?,?,?,1,?)",
                    (self.box, payload, self.owner, now + LEASE, now),
                )
            return Entry(str(cur.lastrowid), payload, 1, now)

        return await self.store._run(q)

    async def done(self, entry: Entry, drop: Sequence[tuple[str, str]] = ()) -> None:
        def q(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute("DELETE FROM inbox WHERE id=?", (int(entry.id),))
                for kind, key in drop:
                    c.execute("DELETE FROM records WHERE kind=? AND key=?", (kind, key))

        await self.store._run(q)

    async def renew(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        ids = [int(e.id) for e in entries]

        def q(c: sqlite3.Connection) -> None:
            until = time.time() + LEASE
            with _transaction(c):
                c.executemany("UPDATE inbox SET expires_at=? WHERE id=? AND owner=?", [(until, i, self.owner) for i in ids])

        await self.store._run(q)

    async def reclaim(self, limit: int = 100) -> list[Entry]:
        def q(c: sqlite3.Connection) -> list[Entry]:
            now = time.time()
            taken: list[Entry] = []
            dead: dict[str, bool] = {}
            with _transaction(c):
                rows = c.execute(
                    "SELECT id, payload, owner, expires_at, attempts, recorded_at FROM inbox WHERE box=? AND owner<>? ORDER BY id LIMIT ?",
                    (self.box, self.owner, limit * 20),
                ).fetchall()
                rows += c.execute(
                    "SELECT id, payload, owner, expires_at, attempts, recorded_at FROM inbox WHERE box=? AND owner=? AND expires_at<? ORDER BY id LIMIT ?",
                    (self.box, self.owner, now, limit),
                ).fetchall()
                for row_id, payload, owner, expires_at, attempts, recorded_at in rows:
                    if len(taken) >= limit:
                        break
                    if expires_at >= now:
                        if owner not in dead:
                            dead[owner] = _holder_died(owner)
                        if not dead[owner]:
                            continue
                    cur = c.execute(
                        "UPDATE inbox SET owner=?, expires_at=?, attempts=attempts+1 WHERE id=? AND owner=?",
                        (self.owner, now + LEASE, row_id, owner),
                    )
                    if cur.rowcount == 1:
                        taken.append(Entry(str(row_id), payload, attempts + 1, recorded_at))
            return taken

        return await self.store._run(q)
