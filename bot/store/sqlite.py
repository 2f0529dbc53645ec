"""SQLite store: the embedded default. One file under SCIM_HELP_DATA_DIR, created on first use.

All database work runs on one dedicated thread (sqlite3 connections are not shareable across threads, and
a busy database must never block the event loop). WAL mode lets several server processes share the file;
conversation locks are lease rows, so a process that dies holding one frees it when the lease runs out.
The file is on one host, so a lease can name its holder's process: a lease whose holder has died (a
SIGKILLed worker) is taken over at once instead of keeping the conversation busy until it runs out.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot.store.base import Held, Lease, LeasedStore, Record, StoreUnavailable
from bot.store.keyed import KeyedLocks
from bot.store.sqlite_file import SQLiteFile

if TYPE_CHECKING:
    from bot.store.sqlite_inbox import SQLiteInbox

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (key TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
"""

LEASE_SECONDS = 30.0


@contextmanager
def _transaction(c: sqlite3.Connection) -> Iterator[None]:
    """Several statements, one commit. IMMEDIATE takes the write lock up front, waiting out the busy
    timeout, instead of failing later on a read snapshot another process has moved past."""
    c.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


# Where a pid means something: this host's name and its pid namespace (two containers may share the name).
_HOST = f"{socket.gethostname().replace(':', '_')}/{_pid_namespace()}"


def _holder_died(owner: str) -> bool:
    """True when `owner` (host:pid:token) names a process of this host that no longer exists. A reused pid
    counts as alive: the lease then runs out as usual."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, under another user
        return False
    return False


class SQLiteStore(LeasedStore):
    name = "sqlite"

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time):
        self.path = Path(path)
        # Seconds since the epoch for every expiry (conversations, claims, leases, inbox): tests move it
        # forward instead of sleeping out a TTL. Deadlines for waiting stay on the monotonic clock.
        self.clock = clock
        self._file = SQLiteFile(self.path, _SCHEMA, "sqlite-store")
        # The inbox's own file (bot/store/sqlite_file.py says why), opened with the first inbox.
        self._inbox_file: SQLiteFile | None = None
        self._local = KeyedLocks()
        self._owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex}"
        self._writes = 0

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._file.run(fn)

    # -- conversations -----------------------------------------------------------------------------

    async def load(self, key: str) -> str | None:
        def q(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT data, expires_at FROM conversations WHERE key=?", (key,)).fetchone()
            if row is None:
                return None
            if row[1] < self.clock():
                c.execute("DELETE FROM conversations WHERE key=? AND expires_at<?", (key, self.clock()))
                return None
            return row[0]

        return await self._run(q)

    async def save(self, key: str, data: str, ttl: int) -> None:
        purge = self._purge_due()
        await self._run(lambda c: self._upsert(c, key, data, ttl, purge))

    def _purge_due(self) -> bool:
        self._writes += 1
        return self._writes % 500 == 0  # expired rows are removed now and then, not on every write

    def _upsert(self, c: sqlite3.Connection, key: str, data: str, ttl: int, purge: bool) -> None:
        now = self.clock()
        c.execute(
            "INSERT INTO conversations(key, data, expires_at) VALUES (?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET data=excluded.data, expires_at=excluded.expires_at",
            (key, data, now + ttl),
        )
        if purge:
            c.execute("DELETE FROM conversations WHERE expires_at<?", (now,))
            c.execute("DELETE FROM claims WHERE expires_at<?", (now,))

    async def delete(self, key: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM conversations WHERE key=?", (key,)))

    # -- locking ---------------------------------------------------------------------------------

    async def _take(self, key: str, timeout: float, *, load: bool, claims: Sequence[str] = (), claim_ttl: int = 1) -> Lease:
        """Tasks of this process queue on an asyncio lock; processes compete for the lease row. Taking the
        lease, reading the conversation and checking the claims is one call on the DB thread, and so is
        writing it back (with the claims) and dropping the lease."""
        deadline = time.monotonic() + timeout
        release = await self._local.acquire(key, timeout)
        try:
            delay = 0.002
            while True:
                got, data, fresh = await self._run(lambda c: self._try_lease(c, key, load, claims))
                if got:
                    lease = Lease(self, key, self._owner, Held(data, fresh), claims, claim_ttl)
                    lease.release_local = release
                    return lease
                if time.monotonic() > deadline:
                    raise TimeoutError("conversation lock busy")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        except BaseException:
            release()
            raise

    async def _give_back(self, lease: Lease, records: Sequence[Record] = ()) -> None:
        key, held = lease.key, lease.held
        write, purge = held.write, held.write is not None and self._purge_due()
        everything = (*held.records, *records)
        try:
            kept = await self._run(lambda c: self._write_and_drop_lease(c, key, write, everything, lease.claims, lease.claim_ttl, purge))
        except StoreUnavailable:
            await self._drop_lease_quietly(key)
            raise
        finally:
            lease.release_local()
        if not kept:
            raise TimeoutError("conversation lease ran out before the turn finished; nothing written")

    async def _abandon(self, lease: Lease) -> None:
        try:
            await self._drop_lease_quietly(lease.key)
        finally:
            lease.release_local()

    def _try_lease(self, c: sqlite3.Connection, key: str, load: bool, claims: Sequence[str] = ()) -> tuple[bool, str | None, bool]:
        """(lease taken, the conversation if `load`, none of the claims taken) in one transaction."""
        now = self.clock()
        with _transaction(c):
            cur = c.execute(
                "INSERT INTO locks(key, owner, expires_at) VALUES (?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET owner=excluded.owner, expires_at=excluded.expires_at "
                "WHERE locks.expires_at < ?",
                (key, self._owner, now + LEASE_SECONDS, now),
            )
            if cur.rowcount != 1 and not self._take_over_from_the_dead(c, key, now):
                return False, None, True
            fresh = not any(
                c.execute("SELECT 1 FROM claims WHERE key=? AND expires_at>=?", (k, now)).fetchone() for k in claims
            )
            data = None
            if load:
                row = c.execute("SELECT data FROM conversations WHERE key=? AND expires_at>=?", (key, now)).fetchone()
                data = row[0] if row else None
        return True, data, fresh

    def _take_over_from_the_dead(self, c: sqlite3.Connection, key: str, now: float) -> bool:
        """Inside the lease transaction: take a live lease whose holder is a process of this host that has
        exited. Only on contention, so a check of one pid now and then."""
        row = c.execute("SELECT owner FROM locks WHERE key=?", (key,)).fetchone()
        if row is None or not _holder_died(row[0]):
            return False
        cur = c.execute("UPDATE locks SET owner=?, expires_at=? WHERE key=? AND owner=?", (self._owner, now + LEASE_SECONDS, key, row[0]))
        return cur.rowcount == 1

    @staticmethod
    def _claim_in(c: sqlite3.Connection, keys: Sequence[str], ttl: int, now: float) -> bool:
        won = True
        for k in keys:
            cur = c.execute(
                "INSERT INTO claims(key, expires_at) VALUES (?,?) "
                "ON CONFLICT(key) DO UPDATE SET expires_at=excluded.expires_at WHERE claims.expires_at < ?",
                (k, now + ttl, now),
            )
            won = won and cur.rowcount == 1
        return won

    async def _drop_lease_quietly(self, key: str) -> None:
        try:
            await self._run(lambda c: self._drop_lease(c, key))
        except StoreUnavailable:
            pass  # the lease runs out by itself; the original error matters more

    def _drop_lease(self, c: sqlite3.Connection, key: str) -> bool:
        """False when the lease was no longer ours (it ran out and another process took it)."""
        return c.execute("DELETE FROM locks WHERE key=? AND owner=?", (key, self._owner)).rowcount == 1

    def _write_and_drop_lease(
        self,
        c: sqlite3.Connection,
        key: str,
        write: tuple[str, int] | None,
        records: Sequence[Record],
        claims: Sequence[str],
        claim_ttl: int,
        purge: bool,
    ) -> bool:
        """False (and nothing written) when the lease ran out and another process took it."""
        if write is None and not records and not claims:
            self._drop_lease(c, key)
            return True
        with _transaction(c):
            kept = self._drop_lease(c, key)
            if kept and write is not None:
                self._upsert(c, key, write[0], write[1], purge)
            if kept:
                for record in records:
                    self._put_record(c, *record)
                self._claim_in(c, claims, claim_ttl, self.clock())
        return kept

    # -- claims ------------------------------------------------------------------------------------

    async def claim(self, key: str, ttl: int) -> bool:
        return await self.claim_all([key], ttl)

    async def claim_all(self, keys: Sequence[str], ttl: int) -> bool:
        def q(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                return self._claim_in(c, keys, ttl, self.clock())

        return await self._run(q)

    # -- records -----------------------------------------------------------------------------------

    async def put_record(self, kind: str, key: str, data: str) -> None:
        await self._run(lambda c: self._put_record(c, kind, key, data))

    @staticmethod
    def _put_record(c: sqlite3.Connection, kind: str, key: str, data: str) -> None:
        c.execute("INSERT INTO records(kind, key, data) VALUES (?,?,?) ON CONFLICT(kind, key) DO UPDATE SET data=excluded.data", (kind, key, data))

    async def delete_record(self, kind: str, key: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM records WHERE kind=? AND key=?", (kind, key)))

    async def get_record(self, kind: str, key: str) -> str | None:
        def q(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT data FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
            return row[0] if row else None

        return await self._run(q)

    async def records(self, kind: str) -> dict[str, str]:
        def q(c: sqlite3.Connection) -> dict[str, Any]:
            return dict(c.execute("SELECT key, data FROM records WHERE kind=?", (kind,)).fetchall())

        return await self._run(q)

    def inbox(self, name: str) -> SQLiteInbox:
        from bot.store.sqlite_inbox import SQLiteInbox, inbox_file

        if self._inbox_file is None:
            self._inbox_file = inbox_file(self)
        return SQLiteInbox(self, self._inbox_file, name)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone() == (1,))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        if self._inbox_file is not None:
            await self._inbox_file.close()
        await self._file.close()
