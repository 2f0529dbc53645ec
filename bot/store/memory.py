"""In-process store: for unit tests, benchmarks of the engine alone and `replay` without persistence."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from bot.store.base import Held, Record, Store, park
from bot.store.inbox import Inbox, MemoryInbox
from bot.store.keyed import KeyedLocks, Release


class _MemoryLease:
    """A hold of the memory store: its asyncio lock is held until `give_back` or `abandon`."""

    def __init__(self, store: MemoryStore, key: str, release: Release, held: Held, claims: Sequence[str], claim_ttl: int) -> None:
        self.store, self.key, self.release, self.held = store, key, release, held
        self.claims, self.claim_ttl = tuple(claims), claim_ttl

    async def give_back(self, records: Sequence[Record] = ()) -> None:
        try:
            store, held = self.store, self.held
            if held.write is not None:
                await store.save(self.key, *held.write)
            for record in (*held.records, *records):
                await store.put_record(*record)
            for claim in self.claims:
                await store.claim(claim, self.claim_ttl)
        finally:
            self.release()

    async def abandon(self) -> None:
        self.release()


class MemoryStore(Store):
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        # Seconds since the epoch for every expiry (conversations, claims, inbox leases): tests move it
        # forward instead of sleeping out a TTL.
        self.clock = clock
        self._data: dict[str, tuple[str, float]] = {}
        self._claims: dict[str, float] = {}
        self._records: dict[str, dict[str, str]] = defaultdict(dict)
        self._locks = KeyedLocks()
        self._inboxes: dict[str, MemoryInbox] = {}

    async def load(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None or item[1] < self.clock():
            self._data.pop(key, None)
            return None
        return item[0]

    async def save(self, key: str, data: str, ttl: int) -> None:
        self._data[key] = (data, self.clock() + ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    @asynccontextmanager
    async def lock(self, key: str, timeout: float = 10.0) -> AsyncIterator[None]:
        release = await self._locks.acquire(key, timeout)
        try:
            yield
        finally:
            release()

    @asynccontextmanager
    async def hold(self, key: str, timeout: float = 10.0, *, claims: Sequence[str] = (), claim_ttl: int = 86400) -> AsyncIterator[Held]:
        release = await self._locks.acquire(key, timeout)
        now = self.clock()
        held = Held(await self.load(key), not any(self._claims.get(k, 0) > now for k in claims))
        lease = _MemoryLease(self, key, release, held, claims, claim_ttl)
        try:
            yield held
        except BaseException:
            await lease.abandon()
            raise
        if not park(lease):
            await lease.give_back()

    async def claim(self, key: str, ttl: int) -> bool:
        now = self.clock()
        if self._claims.get(key, 0) > now:
            return False
        self._claims[key] = now + ttl
        return True

    async def put_record(self, kind: str, key: str, data: str) -> None:
        self._records[kind][key] = data

    async def get_record(self, kind: str, key: str) -> str | None:
        return self._records[kind].get(key)

    async def delete_record(self, kind: str, key: str) -> None:
        self._records[kind].pop(key, None)

    async def records(self, kind: str) -> dict[str, str]:
        return dict(self._records[kind])

    async def ping(self) -> bool:
        return True

    def inbox(self, name: str) -> Inbox:
        if name not in self._inboxes:
            self._inboxes[name] = MemoryInbox(self)
        return self._inboxes[name]
