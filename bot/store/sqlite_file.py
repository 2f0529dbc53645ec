"""One SQLite database file as the store uses it: private on disk, one connection on one thread, and a
kernel lock that the processes sharing the file take around every statement.

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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot.private import private_dir, private_sqlite
from bot.store.base import StoreUnavailable
from bot.store.db_thread import DBThread

T = TypeVar("T")


class SQLiteFile:
    def __init__(self, path: Path, schema: str, thread_name: str, *, on_open: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self.path = path
        self._schema = schema
        self._on_open = on_open
        self._db = DBThread(thread_name)
        self._conn: sqlite3.Connection | None = None
        self._gate: int | None = None  # the file lock every process takes around its statements

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                private_dir(self.path.parent)
                private_sqlite(self.path)  # before SQLite creates -wal/-shm: they take the file's mode
                if self._gate is None:
                    self._gate = os.open(self.path.with_name(self.path.name + "-gate"), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise sqlite3.OperationalError(f"cannot prepare {self.path}: {exc.strerror or exc}") from exc
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.executescript(self._schema)
                if self._on_open is not None:
                    with self._locked():
                        self._on_open(conn)
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
        """`fn` on this file's thread; `urgent` work (recording an event before it is acknowledged) goes
        ahead of queued work."""

        def call() -> T:
            try:
                conn = self._connect()
                # Processes take turns on the file through a kernel lock: a waiter wakes the moment the other
                # process is done, where SQLite's busy handler sleeps 1, 2, 5, 10 … 100 ms between tries
                # (Slack's ack at 500 events/s over two workers waited through those sleeps).
                with self._locked():
                    return fn(conn)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite: {exc}") from exc

        return await asyncio.wrap_future(self._db.submit(call, urgent=urgent))

    async def close(self) -> None:
        def q() -> None:
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
