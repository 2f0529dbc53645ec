"""Redis store: for deployments with several replicas. Uses redis-py's asyncio client and its Lock
(token-checked release, expiring lease) rather than a hand-rolled one."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from bot.store.base import Store, StoreUnavailable

LEASE_SECONDS = 30
# Connections per process. Turns past this many at once wait for a free connection (up to POOL_WAIT
# seconds) instead of opening more: unbounded, a burst of a few thousand turns ran out of file
# descriptors and failed with "Too many connections".
POOL_SIZE = 64
POOL_WAIT = 10.0


class RedisStore(Store):
    name = "redis"

    def __init__(self, url: str, prefix: str = "scim-help:"):
        # Short timeouts: a dead Redis must turn into a polite error quickly, not a hung request.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT,
            decode_responses=True,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=15,
        )
        self.r = aioredis.Redis.from_pool(pool)
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def load(self, key: str) -> str | None:
        try:
            return await self.r.get(self._k("conv", key))
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def save(self, key: str, data: str, ttl: int) -> None:
        try:
            await self.r.set(self._k("conv", key), data, ex=ttl)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self.r.delete(self._k("conv", key))
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    @asynccontextmanager
    async def lock(self, key: str, timeout: float = 10.0) -> AsyncIterator[None]:
        lock = self.r.lock(self._k("lock", key), timeout=LEASE_SECONDS, blocking_timeout=timeout, sleep=0.005)
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        if not acquired:
            raise TimeoutError(f"conversation lock busy: {key}")
        try:
            yield
        finally:
            try:
                await lock.release()
            except (LockError, RedisError):
                pass  # lease already expired or Redis gone: the lock frees itself

    async def claim(self, key: str, ttl: int) -> bool:
        try:
            return bool(await self.r.set(self._k("claim", key), "1", nx=True, ex=ttl))
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def put_record(self, kind: str, key: str, data: str) -> None:
        try:
            await self.r.hset(self._k("rec", kind), key, data)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def get_record(self, kind: str, key: str) -> str | None:
        try:
            return await self.r.hget(self._k("rec", kind), key)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def records(self, kind: str) -> dict[str, str]:
        try:
            return await self.r.hgetall(self._k("rec", kind))
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def ping(self) -> bool:
        try:
            return bool(await self.r.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.r.aclose()
