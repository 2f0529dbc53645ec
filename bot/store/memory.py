"""In-process store: for unit tests, benchmarks of the engine alone and `replay` without persistence."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from contextlib import asynccontextmanager
from typing import AsyncIterator

from bot.store.base import Store


class MemoryStore(Store):
    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._claims: dict[str, float] = {}
        self._records: dict[str, dict[str, str]] = defaultdict(dict)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def load(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None or item[1] < time.time():
            self._data.pop(key, None)
            return None
        return item[0]

    async def save(self, key: str, data: str, ttl: int) -> None:
        self._data[key] = (data, time.time() + ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    @asynccontextmanager
    async def lock(self, key: str, timeout: float = 10.0) -> AsyncIterator[None]:
        lock = self._locks[key]
        await asyncio.wait_for(lock.acquire(), timeout)
        try:
            yield
        finally:
            lock.release()

    async def claim(self, key: str, ttl: int) -> bool:
        now = time.time()
        if self._claims.get(key, 0) > now:
            return False
        self._claims[key] = now + ttl
        return True

    async def put_record(self, kind: str, key: str, data: str) -> None:
        self._records[kind][key] = data

    async def get_record(self, kind: str, key: str) -> str | None:
        return self._records[kind].get(key)

    async def records(self, kind: str) -> dict[str, str]:
        return dict(self._records[kind])

    async def ping(self) -> bool:
        return True
