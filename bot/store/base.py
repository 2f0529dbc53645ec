"""The store interface every backend implements (SQLite, Redis, memory).

Conversations are opaque JSON strings to the store. Beyond load/save it offers the three things a chat
service needs to be correct under retries, replicas and restarts:
- `lock(key)`: serialise turns of one conversation (two messages at once must not lose an update),
  across tasks and — for SQLite and Redis — across processes; `hold(key)` is lock + load on the way in
  and save + unlock on the way out, which a backend can do in one round trip each way (a turn is then
  two store round trips instead of four — measured in bench/NOTES.md);
- `claim(key, ttl)`: first caller wins, for de-duplicating retried platform events and double clicks;
  `claim_all(keys, ttl)` claims several at once;
- `records`: small keyed documents that outlive conversations (outcomes for `stats`, Teams conversation
  references for proactive messages).
The contract tests in tests/test_store_contract.py run against every backend.
"""

from __future__ import annotations

import abc
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import AsyncIterator, Sequence


class StoreUnavailable(Exception):
    """The backend cannot be reached; callers answer politely and keep the request retryable."""


class Held:
    """A conversation held under its lock (`Store.hold`): the data stored when the lock was taken, and what
    to write back when it is released."""

    __slots__ = ("data", "fresh", "write", "records")

    def __init__(self, data: str | None, fresh: bool = True) -> None:
        self.data = data
        # False when any of the hold's `claims` had been claimed before (a redelivered message).
        self.fresh = fresh
        self.write: tuple[str, int] | None = None
        self.records: list[tuple[str, str, str]] = []

    def save(self, data: str, ttl: int) -> None:
        """Write `data` (expiring after `ttl` seconds) when the hold ends without an exception."""
        self.write = (data, ttl)

    def put_record(self, kind: str, key: str, data: str) -> None:
        """`Store.put_record` when the hold ends without an exception, in the same round trip as the
        conversation. For a channel's bookkeeping; outcome records go through `Store.put_record`, where
        the metrics see them."""
        self.records.append((kind, key, data))


class Store(abc.ABC):
    name: str = "store"

    @abc.abstractmethod
    async def load(self, key: str) -> str | None: ...

    @abc.abstractmethod
    async def save(self, key: str, data: str, ttl: int) -> None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def lock(self, key: str, timeout: float = 10.0) -> AbstractAsyncContextManager[None]: ...

    @abc.abstractmethod
    async def claim(self, key: str, ttl: int) -> bool: ...

    @asynccontextmanager
    async def hold(self, key: str, timeout: float = 10.0, *, claims: Sequence[str] = (), claim_ttl: int = 86400) -> AsyncIterator[Held]:
        """Lock the conversation, claim `claims` (see `claim_all`; `held.fresh`) and read it; on a clean
        exit write what `held.save()` was given, then unlock. After an exception nothing is written.
        Backends with round trips override this."""
        async with self.lock(key, timeout):
            fresh = await self.claim_all(claims, claim_ttl) if claims else True
            held = Held(await self.load(key), fresh)
            yield held
            if held.write is not None:
                await self.save(key, *held.write)
            for record in held.records:
                await self.put_record(*record)

    async def claim_all(self, keys: Sequence[str], ttl: int) -> bool:
        """Claim every key; true only if none of them was claimed before."""
        results = [await self.claim(key, ttl) for key in keys]
        return all(results)

    @abc.abstractmethod
    async def put_record(self, kind: str, key: str, data: str) -> None: ...

    @abc.abstractmethod
    async def get_record(self, kind: str, key: str) -> str | None: ...

    @abc.abstractmethod
    async def records(self, kind: str) -> dict[str, str]: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LeasedStore(Store):
    """A backend whose `lock` and `hold` are one primitive, `_held`: take the lease (and, for a hold, read
    the conversation and claim the keys) in one round trip, give it back (writing what the hold saved) in
    one more."""

    @asynccontextmanager
    async def lock(self, key: str, timeout: float = 10.0) -> AsyncIterator[None]:
        async with self._held(key, timeout, load=False):
            yield

    @asynccontextmanager
    async def hold(self, key: str, timeout: float = 10.0, *, claims: Sequence[str] = (), claim_ttl: int = 86400) -> AsyncIterator[Held]:
        async with self._held(key, timeout, load=True, claims=claims, claim_ttl=claim_ttl) as held:
            yield held

    @abc.abstractmethod
    def _held(
        self, key: str, timeout: float, *, load: bool, claims: Sequence[str] = (), claim_ttl: int = 1
    ) -> AbstractAsyncContextManager[Held]: ...
