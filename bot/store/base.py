"""The store interface every backend implements (SQLite, Redis, memory).

Conversations are opaque JSON strings to the store. Beyond load/save it offers the three things a chat
service needs to be correct under retries, replicas and restarts:
- `lock(key)`: serialise turns of one conversation (two messages at once must not lose an update),
  across tasks and — for SQLite and Redis — across processes; `hold(key)` is lock + load on the way in
  and save + unlock on the way out, which a backend can do in one round trip each way (a turn is then
  two store round trips instead of four — measured in bench/NOTES.md);
- `claim(key, ttl)`: first caller wins, for de-duplicating retried platform events and double clicks;
  `claim_all(keys, ttl)` claims several at once. A hold's `claims` are checked when it is taken and
  written with the conversation when it is given back, so a turn that fails (or a process killed
  mid-turn) leaves them unclaimed and the redelivery is processed;
- `records`: small keyed documents that outlive conversations (outcomes for `stats`, Teams conversation
  references for proactive messages);
- `deferred()`: the caller finishes the write-back of a hold taken inside it, adding records of its own
  (a channel's outbox) to the same commit;
- `inbox(name)`: a durable queue of acknowledged platform requests (bot/store/inbox.py).
The contract tests in tests/test_store_contract.py run against every backend.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.store.inbox import Inbox

Record = tuple[str, str, str]


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
        conversation: a channel's bookkeeping, the episode's outcome."""
        self.records.append((kind, key, data))


class Parked(Protocol):
    """A hold whose write-back was deferred (`Store.deferred`): still holding the conversation's lock."""

    async def give_back(self, records: Sequence[Record]) -> None: ...

    async def abandon(self) -> None: ...


_DEFERRED: ContextVar[Deferred | None] = ContextVar("scim_help_deferred_commit", default=None)


class Deferred:
    """The write-back of the first hold taken inside `Store.deferred()`, finished by the caller: the
    conversation, its records and the caller's records in one commit, after the caller has seen the turn.
    Without a hold, `commit` writes the caller's records on their own."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._parked: Parked | None = None
        self._closed = False

    def park(self, lease: Parked) -> bool:
        """Called by a hold on a clean exit: True when this deferral takes over its write-back."""
        if self._closed or self._parked is not None:
            return False
        self._parked = lease
        return True

    async def commit(self, records: Sequence[Record] = ()) -> None:
        self._closed = True
        parked, self._parked = self._parked, None
        if parked is not None:
            await parked.give_back(records)
        else:
            for record in records:
                await self.store.put_record(*record)

    async def abort(self) -> None:
        self._closed = True
        parked, self._parked = self._parked, None
        if parked is not None:
            await parked.abandon()


def park(lease: Parked) -> bool:
    """For backends: hand a hold's write-back to the `deferred()` block around it, if there is one."""
    deferred = _DEFERRED.get()
    return deferred is not None and deferred.park(lease)


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

    @abc.abstractmethod
    def hold(self, key: str, timeout: float = 10.0, *, claims: Sequence[str] = (), claim_ttl: int = 86400) -> AbstractAsyncContextManager[Held]:
        """Lock the conversation, check `claims` (`held.fresh`: none of them claimed before) and read it;
        on a clean exit write what `held.save()` was given, its records and the claims, then unlock. After
        an exception nothing is written. Inside `deferred()` the caller finishes the write-back (`park`)."""

    @asynccontextmanager
    async def deferred(self) -> AsyncIterator[Deferred]:
        """Within this block, the first `hold` does not write back when it ends: the caller commits
        (`Deferred.commit(records)`), adding its own records to the same write, or the block does on a
        clean exit. After an exception nothing is written."""
        deferred = Deferred(self)
        token = _DEFERRED.set(deferred)
        try:
            yield deferred
        except BaseException:
            _DEFERRED.reset(token)
            await deferred.abort()
            raise
        _DEFERRED.reset(token)
        if not deferred._closed:
            await deferred.commit()

    def inbox(self, name: str) -> Inbox:
        """The durable queue `name` (one per platform) kept by this backend."""
        raise NotImplementedError(f"{self.name} keeps no inbox")

    async def claim_all(self, keys: Sequence[str], ttl: int) -> bool:
        """Claim every key; true only if none of them was claimed before."""
        results = [await self.claim(key, ttl) for key in keys]
        return all(results)

    @abc.abstractmethod
    async def put_record(self, kind: str, key: str, data: str) -> None: ...

    @abc.abstractmethod
    async def get_record(self, kind: str, key: str) -> str | None: ...

    @abc.abstractmethod
    async def delete_record(self, kind: str, key: str) -> None: ...

    @abc.abstractmethod
    async def records(self, kind: str) -> dict[str, str]: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


def _nothing() -> None:
    pass


class Lease:
    """A conversation lease taken by a LeasedStore: what `give_back` and `abandon` need."""

    __slots__ = ("store", "key", "token", "held", "claims", "claim_ttl", "purge", "release_local")

    def __init__(self, store: LeasedStore, key: str, token: str, held: Held, claims: Sequence[str], claim_ttl: int) -> None:
        self.store = store
        self.key = key
        self.token = token
        self.held = held
        self.claims = tuple(claims)
        self.claim_ttl = claim_ttl
        self.purge = False
        # Lets this process's next task for the key in (backends that queue their own tasks first).
        self.release_local: Callable[[], None] = _nothing

    async def give_back(self, records: Sequence[Record] = ()) -> None:
        await self.store._give_back(self, records)

    async def abandon(self) -> None:
        await self.store._abandon(self)


class LeasedStore(Store):
    """A backend whose `lock` and `hold` are one primitive: take the lease (and, for a hold, read the
    conversation and check the claims) in one round trip, give it back (writing what the hold saved, its
    records and its claims) in one more."""

    @asynccontextmanager
    async def lock(self, key: str, timeout: float = 10.0) -> AsyncIterator[None]:
        lease = await self._take(key, timeout, load=False)
        try:
            yield
        except BaseException:
            await self._abandon(lease)
            raise
        await self._give_back(lease)

    @asynccontextmanager
    async def hold(self, key: str, timeout: float = 10.0, *, claims: Sequence[str] = (), claim_ttl: int = 86400) -> AsyncIterator[Held]:
        lease = await self._take(key, timeout, load=True, claims=claims, claim_ttl=claim_ttl)
        try:
            yield lease.held
        except BaseException:
            await self._abandon(lease)
            raise
        if not park(lease):
            await self._give_back(lease)

    @abc.abstractmethod
    async def _take(self, key: str, timeout: float, *, load: bool, claims: Sequence[str] = (), claim_ttl: int = 1) -> Lease:
        """Wait for the lease (TimeoutError after `timeout`); read the conversation when `load`."""

    @abc.abstractmethod
    async def _give_back(self, lease: Lease, records: Sequence[Record] = ()) -> None:
        """Write the hold's data, records and claims (and `records`), drop the lease. TimeoutError, and
        nothing written, when the lease ran out and another holder took it."""

    @abc.abstractmethod
    async def _abandon(self, lease: Lease) -> None:
        """Drop the lease, writing nothing (quietly: the lease runs out by itself anyway)."""
