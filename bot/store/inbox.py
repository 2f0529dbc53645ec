"""A durable inbox: platform requests acknowledged only once recorded, processed from there.

Slack does not deliver an event again once it got a 200 for it, so a request acknowledged before it is
recorded is lost if the process dies before answering. With an inbox the HTTP handler records the request
(`put`) and only then acknowledges it; the request is then processed, and `done` removes it. Until then
it belongs to the process that recorded it, under a lease that process renews while it works (`renew`).
When that process dies — SIGKILL, OOM, a lost node — another process, or the same one after a restart,
takes the request over (`reclaim`) and processes it.

    SQLite  a table in the store's database file; the lease names its holder (host, pid namespace, pid),
            so a dead holder's requests are taken over at once, others when the lease runs out
    Redis   a Stream with a consumer group: `put` adds the entry and delivers it to the recording
            consumer in one script; a consumer that stops renewing its liveness key is dead and its
            pending entries are claimed (XCLAIM), and any entry idle longer than the lease is claimed
            too (XAUTOCLAIM)
    memory  in-process, for tests and the terminal: the same contract without durability

With processor processes (`serve --processors M`) the recording workers do not process: `put(held=False)`
records an entry that no process holds yet, and a processor takes it (`claim`), oldest first. Such an
entry still nobody claimed after LEASE seconds is taken over by `reclaim` like an abandoned one.

`put` also de-duplicates: a request whose key (an event id, a signed request's timestamp and signature)
was recorded within `seen_ttl` seconds is not recorded again. `done` can drop records (a channel's
outbox) in the same round trip.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from bot.store.memory import MemoryStore

# A holder renews its leases every LEASE / 3 seconds; a lease not renewed for LEASE seconds is taken over.
LEASE = 30.0


class InboxFull(Exception):
    """More entries are waiting than the inbox accepts: refuse the request (the platform retries it)."""


@dataclass
class Entry:
    id: str
    payload: str
    # 1 when processed by the process that recorded it; more after a takeover or a retry.
    attempts: int = 1
    recorded_at: float = 0.0


class Inbox(abc.ABC):
    @abc.abstractmethod
    async def put(self, key: str, payload: str, *, seen_ttl: int, limit: int = 0, held: bool = True) -> Entry | None:
        """Record a request, held by this process (`held=False`: by nobody yet, for a processor to
        `claim`); None when `key` was recorded before (a redelivery). InboxFull when `limit` entries are
        already waiting (0: no limit). One process records either always held or always unheld."""

    @abc.abstractmethod
    async def claim(self, limit: int) -> list[Entry]:
        """Up to `limit` entries recorded unheld, oldest first, now held by this process."""

    @abc.abstractmethod
    async def done(self, entry: Entry, drop: Sequence[tuple[str, str]] = ()) -> None:
        """Processed: remove the entry, and the records (kind, key) in `drop`, in one write."""

    @abc.abstractmethod
    async def renew(self, entries: Sequence[Entry]) -> None:
        """Extend this process's leases on `entries`, and say that it is alive: called on every sweep,
        with no entries when their leases are not due yet."""

    @abc.abstractmethod
    async def reclaim(self, limit: int = 100) -> list[Entry]:
        """Entries whose holder died or whose lease ran out, now held by this process."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Group commit: a call made while a batch is being written waits, and goes with every other such
    call in the next batch — one store round trip (one transaction, one script) for many requests under
    load, and no added wait for a lone one. `run` returns a result per item, in order; an Exception in
    that list is raised to that item's caller only."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R | Exception]]], linger: float = 0.0) -> None:
        self._run = run
        # Seconds the first caller waits for others to join its batch: for writes nobody waits on (an entry
        # done), fewer and larger transactions; with statements run at once (bot/store/sqlite_file.py) no
        # call would ever find a batch being written to join.
        self._linger = linger
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._running:
            # The first caller writes its batch itself (no task to schedule for a lone call); what queued
            # meanwhile is written by a task, so this caller does not wait for others.
            self._running = True
            try:
                if self._linger:
                    await asyncio.sleep(self._linger)
                await self._one_batch()
            finally:
                if self._pending:
                    asyncio.ensure_future(self._drain())
                else:
                    self._running = False
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                await self._one_batch()
        finally:
            self._running = False

    async def _one_batch(self) -> None:
        batch, self._pending = self._pending, []
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:  # every caller of the batch gets it
            results = [exc] * len(batch)
        except BaseException:
            for _, future in batch:  # cancelled mid-write: whether it was written is unknown
                if not future.done():
                    future.set_exception(ConnectionError("batch cancelled"))
            raise
        for (_, future), result in zip(batch, results):
            if future.done():
                continue  # the caller was cancelled
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class MemoryInbox(Inbox):
    """The contract in one process: nothing survives it, and only a lease that ran out is reclaimed."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._entries: dict[str, tuple[Entry, float]] = {}
        self._unheld: set[str] = set()
        self._ids = itertools.count(1)

    async def put(self, key: str, payload: str, *, seen_ttl: int, limit: int = 0, held: bool = True) -> Entry | None:
        if limit and len(self._entries) >= limit:
            raise InboxFull()
        if not await self.store.claim(f"inbox:{key}", seen_ttl):
            return None
        now = self.store.clock()
        entry = Entry(str(next(self._ids)), payload, 1, now)
        self._entries[entry.id] = (entry, now + LEASE)
        if not held:
            self._unheld.add(entry.id)
        return entry

    async def claim(self, limit: int) -> list[Entry]:
        ids = sorted(self._unheld, key=int)[:limit]
        until = self.store.clock() + LEASE
        for entry_id in ids:
            self._unheld.discard(entry_id)
            self._entries[entry_id] = (self._entries[entry_id][0], until)
        return [self._entries[i][0] for i in ids]

    async def done(self, entry: Entry, drop: Sequence[tuple[str, str]] = ()) -> None:
        self._entries.pop(entry.id, None)
        self._unheld.discard(entry.id)
        for kind, key in drop:
            await self.store.delete_record(kind, key)

    async def renew(self, entries: Sequence[Entry]) -> None:
        until = self.store.clock() + LEASE
        for entry in entries:
            if entry.id in self._entries:
                self._entries[entry.id] = (self._entries[entry.id][0], until)

    async def reclaim(self, limit: int = 100) -> list[Entry]:
        now = self.store.clock()
        out: list[Entry] = []
        for entry, expires in list(self._entries.values()):
            if expires < now and len(out) < limit:
                self._unheld.discard(entry.id)
                entry.attempts += 1
                self._entries[entry.id] = (entry, now + LEASE)
                out.append(entry)
        return out
