"""The store interface every backend implements (SQLite, Redis, memory).

Conversations are opaque JSON strings to the store. Beyond load/save it offers the three things a chat
service needs to be correct under retries, replicas and restarts:
- `lock(key)`: serialise turns of one conversation (two messages at once must not lose an update),
  across tasks and — for SQLite and Redis — across processes;
- `claim(key, ttl)`: first caller wins, for de-duplicating retried platform events and double clicks;
- `records`: small keyed documents that outlive conversations (outcomes for `stats`, Teams conversation
  references for proactive messages).
The contract tests in tests/test_store_contract.py run against every backend.
"""

from __future__ import annotations

import abc
from contextlib import AbstractAsyncContextManager


class StoreUnavailable(Exception):
    """The backend cannot be reached; callers answer politely and keep the request retryable."""


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
    async def put_record(self, kind: str, key: str, data: str) -> None: ...

    @abc.abstractmethod
    async def get_record(self, kind: str, key: str) -> str | None: ...

    @abc.abstractmethod
    async def records(self, kind: str) -> dict[str, str]: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass
