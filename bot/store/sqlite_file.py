"""One SQLite database file as the store uses it: private on disk, one connection, and a kernel lock that
the processes sharing the file take around every statement.

A statement runs on the event loop's own thread when it can start at once — the connection is free in
this process and the file's lock free among the processes — and on the file's thread otherwise, where
waiting blocks nothing else. Handing every statement to a thread cost two cross-thread wake-ups per call
(a futex wake to the thread, the loop's self-pipe back); on a VM where waking an idle vCPU takes an IPI,
that was ~70 µs of held GIL per hand-off, ~30 % of a Slack worker's CPU, and more than the statement
itself (tens of µs in WAL mode). Taken at once, the lock means the loop never waits for another process:
at worst it runs this process's own short statement; SQLite's own busy wait (a foreign process, such as
a backup tool, holding the database) is allowed only on the thread.

The store keeps two such files: the conversations, leases and records, and the Slack inbox beside them
(bot/store/sqlite_inbox.py). The inbox has a file of its own because recording an event is what Slack's
acknowledgement waits for: in the conversations' file that write queued behind every turn's writes of the
other worker process (and behind their WAL checkpoints), which held ack p99 at 500 events/s over 50 ms.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot.private import private_dir, private_sqlite
from bot.store.base import StoreUnavailable
from bot.store.db_thread import DBThread

T = TypeVar("T")

# How long a statement on the file's thread waits for SQLite's own locks (ms). On the loop's thread: not at
# all; a busy database sends the statement to the thread instead.
BUSY_WAIT_MS = 5000


class SQLiteFile:
    def __init__(self, path: Path, schema: str, thread_name: str, *, on_open: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self.path = path
        self._schema = schema
        self._on_open = on_open
        self._db = DBThread(thread_name)
        self._conn: sqlite3.Connection | None = None
        self._gate: int | None = None  # the file lock every process takes around its statements
        # The connection in this process: held by whichever thread runs a statement on it.
        self._mine = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                private_dir(self.path.parent)
                private_sqlite(self.path)  # before SQLite creates -wal/-shm: they take the file's mode
                if self._gate is None:
                    self._gate = os.open(self.path.with_name(self.path.name + "-gate"), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise sqlite3.OperationalError(f"cannot prepare {self.path}: {exc.strerror or exc}") from exc
            conn = sqlite3.connect(self.path, timeout=BUSY_WAIT_MS / 1000, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.executescript(self._schema)
                if self._on_open is not None:
                    with self._locked():
                        self._on_open(conn)
                conn.execute("PRAGMA busy_timeout=0")  # the thread's statements set it (`run`)
            except BaseException:
                # Not kept half-open: the next call connects again and repeats what failed.
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _locked(self) -> _Gate:
        assert self._gate is not None
        return _Gate(self._gate)

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, urgent: bool = False) -> T:
        """`fn` now on this thread if nothing has to be waited for, else on this file's thread; there
        `urgent` work (recording an incoming event before it is acknowledged) goes ahead of queued work."""
        done, result = self._now(fn)
        if done:
            return result  # type: ignore[return-value]

        def call() -> T:
            with self._mine:
                try:
                    conn = self._connect()
                    # Processes take turns on the file through a kernel lock: a waiter wakes the moment the
                    # other process is done, where SQLite's busy handler sleeps 1, 2, 5, 10 … 100 ms between
                    # tries (Slack's ack at 500 events/s over two workers waited through those sleeps).
                    with self._locked():
                        conn.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
                        try:
                            return fn(conn)
                        finally:
                            conn.execute("PRAGMA busy_timeout=0")
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"sqlite: {exc}") from exc

        return await asyncio.wrap_future(self._db.submit(call, urgent=urgent))

    def _now(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[bool, T | None]:
        """(True, result) when `fn` could run at once on the calling thread; (False, None) when it would
        have to wait (the connection busy or not open yet, the file locked by another process)."""
        if self._conn is None or not self._mine.acquire(blocking=False):
            return False, None
        try:
            conn, gate = self._conn, self._gate
            if conn is None or gate is None:
                return False, None
            try:
                fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False, None
            try:
                return True, fn(conn)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    # Held outside our lock (another program). Nothing was written: a write begins with the
                    # lock that failed, and the batches here are transactions. Wait on the thread.
                    return False, None
                raise StoreUnavailable(f"sqlite: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite: {exc}") from exc
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
        finally:
            self._mine.release()

    async def close(self) -> None:
        def q() -> None:
            with self._mine:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if self._gate is not None:
                    os.close(self._gate)
                    self._gate = None

        await asyncio.wrap_future(self._db.submit(q))
        await asyncio.get_running_loop().run_in_executor(None, self._db.shutdown)


class _Gate:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
