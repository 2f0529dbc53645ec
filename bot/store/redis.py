"""Redis store: for deployments with several replicas, on redis-py's asyncio client.

Conversation locks are expiring, token-checked leases like redis-py's `Lock` (SET NX PX to take, a
compare-and-delete script to give back), with the conversation's read folded into the taking script and
its write into the giving-back one: a turn costs two round trips instead of four (bench/NOTES.md). A
holder whose lease ran out writes nothing, so a slow turn cannot overwrite a newer one.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.store.base import Held, LeasedStore, StoreUnavailable

LEASE_SECONDS = 30
# Connections per process. Turns past this many at once wait for a free connection (up to POOL_WAIT
# seconds) instead of opening more: unbounded, a burst of a few thousand turns ran out of file
# descriptors and failed with "Too many connections".
POOL_SIZE = 64
POOL_WAIT = 10.0

# KEYS: lock, conversation, claim keys... ARGV: token, lease in ms, "1" to read the conversation, claim ttl.
# -> {0} when the lock is busy; else {1, every claim new (1/0), the conversation or nil}.
_TAKE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local fresh = 1
for i = 3, #KEYS do
  if not redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[4]) then fresh = 0 end
end
local data = false
if ARGV[3] == '1' then data = redis.call('GET', KEYS[2]) end
return {1, fresh, data}
"""
# KEYS: lock, conversation, record hashes... ARGV: token, data, ttl in seconds ("" = write nothing), then a
# field and a value per record hash. 0 = the lease was lost (nothing written).
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
for i = 3, #KEYS do redis.call('HSET', KEYS[i], ARGV[2 * i - 2], ARGV[2 * i - 1]) end
redis.call('DEL', KEYS[1])
return 1
"""


class RedisStore(LeasedStore):
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
        # redis-py's Script: EVALSHA, and SCRIPT LOAD again after a Redis restart.
        self._take = self.r.register_script(_TAKE)
        self._give_back = self.r.register_script(_GIVE_BACK)

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
    async def _held(self, key: str, timeout: float, *, load: bool, claims: Sequence[str] = (), claim_ttl: int = 1) -> AsyncIterator[Held]:
        keys = [self._k("lock", key), self._k("conv", key)]
        claim_keys = [self._k("claim", c) for c in claims]
        token = secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                got = await self._take(keys=keys + claim_keys, args=[token, int(LEASE_SECONDS * 1000), "1" if load else "0", max(1, int(claim_ttl))])
            except RedisError as exc:
                raise StoreUnavailable(f"redis: {exc}") from exc
            if got[0]:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"conversation lock busy: {key}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        held = Held(got[2] if len(got) > 2 else None, bool(got[1]))
        try:
            yield held
        except BaseException:
            try:
                await self._give_back(keys=keys, args=[token, "", ""])
            except RedisError:
                pass  # the lease runs out by itself; the original error matters more
            raise
        data, ttl = held.write if held.write is not None else ("", "")
        args: list[str | int] = [token, data, ttl]
        for kind, field, value in held.records:
            keys.append(self._k("rec", kind))
            args += [field, value]
        try:
            kept = await self._give_back(keys=keys, args=args)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        if not kept:
            raise TimeoutError(f"conversation lease ran out before the turn finished; nothing written: {key}")

    async def claim(self, key: str, ttl: int) -> bool:
        try:
            return bool(await self.r.set(self._k("claim", key), "1", nx=True, ex=ttl))
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def claim_all(self, keys: Sequence[str], ttl: int) -> bool:
        if len(keys) == 1:
            return await self.claim(keys[0], ttl)
        try:
            async with self.r.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(self._k("claim", key), "1", nx=True, ex=ttl)
                results = await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return all(bool(r) for r in results)

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
