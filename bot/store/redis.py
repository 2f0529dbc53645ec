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
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.store.base import Held, Lease, LeasedStore, Record, StoreUnavailable

if TYPE_CHECKING:
    from bot.store.redis_inbox import RedisInbox

LEASE_SECONDS = 30
# Connections per process. Turns past this many at once wait for a free connection (up to POOL_WAIT
# seconds) instead of opening more: unbounded, a burst of a few thousand turns ran out of file
# descriptors and failed with "Too many connections".
POOL_SIZE = 64
POOL_WAIT = 10.0

# KEYS: lock, conversation, claim keys... ARGV: token, lease in ms, "1" to read the conversation.
# -> {0} when the lock is busy; else {1, none of the claims taken (1/0), the conversation or nil}.
_TAKE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local fresh = 1
if #KEYS > 2 and redis.call('EXISTS', unpack(KEYS, 3)) > 0 then fresh = 0 end
local data = false
if ARGV[3] == '1' then data = redis.call('GET', KEYS[2]) end
return {1, fresh, data}
"""
# KEYS: lock, conversation, then ARGV[4] claim keys, then record hashes... ARGV: token, data, ttl in seconds
# ("" = write nothing), the number of claim keys, the claims' ttl, then a field and a value per record hash.
# 0 = the lease was lost (nothing written).
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
local claims = tonumber(ARGV[4])
for i = 3, 2 + claims do redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[5]) end
local a = 6
for i = 3 + claims, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[a], ARGV[a + 1])
  a = a + 2
end
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
        self._take_script = self.r.register_script(_TAKE)
        self._give_back_script = self.r.register_script(_GIVE_BACK)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def load(self, key: str) -> str | None:
        try:
            # redis-py types replies as bytes | str; this client is made with decode_responses=True (str).
            return await self.r.get(self._k("conv", key))  # type: ignore[return-value]
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

    async def _take(self, key: str, timeout: float, *, load: bool, claims: Sequence[str] = (), claim_ttl: int = 1) -> Lease:
        keys = [self._k("lock", key), self._k("conv", key), *(self._k("claim", c) for c in claims)]
        token = secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                got = await self._take_script(keys=keys, args=[token, int(LEASE_SECONDS * 1000), "1" if load else "0"])
            except RedisError as exc:
                raise StoreUnavailable(f"redis: {exc}") from exc
            if got[0]:
                return Lease(self, key, token, Held(got[2] if len(got) > 2 else None, bool(got[1])), claims, claim_ttl)
            if time.monotonic() > deadline:
                raise TimeoutError("conversation lock busy")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _give_back(self, lease: Lease, records: Sequence[Record] = ()) -> None:
        held = lease.held
        data, ttl = held.write if held.write is not None else ("", "")
        keys = [self._k("lock", lease.key), self._k("conv", lease.key), *(self._k("claim", c) for c in lease.claims)]
        args: list[str | int] = [lease.token, data, ttl, len(lease.claims), max(1, int(lease.claim_ttl))]
        for kind, field, value in (*held.records, *records):
            keys.append(self._k("rec", kind))
            args += [field, value]
        try:
            kept = await self._give_back_script(keys=keys, args=args)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        if not kept:
            raise TimeoutError("conversation lease ran out before the turn finished; nothing written")

    async def _abandon(self, lease: Lease) -> None:
        keys = [self._k("lock", lease.key), self._k("conv", lease.key)]
        try:
            await self._give_back_script(keys=keys, args=[lease.token, "", "", 0, 1])
        except RedisError:
            pass  # the lease runs out by itself; the original error matters more

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

    async def delete_record(self, kind: str, key: str) -> None:
        try:
            await self.r.hdel(self._k("rec", kind), key)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def get_record(self, kind: str, key: str) -> str | None:
        try:
            # redis-py types replies as bytes | str; this client is made with decode_responses=True (str).
            return await self.r.hget(self._k("rec", kind), key)  # type: ignore[return-value]
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def records(self, kind: str) -> dict[str, str]:
        try:
            # redis-py types replies as bytes | str; this client is made with decode_responses=True (str).
            return await self.r.hgetall(self._k("rec", kind))  # type: ignore[return-value]
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    def inbox(self, name: str) -> RedisInbox:
        from bot.store.redis_inbox import RedisInbox

        return RedisInbox(self, name)

    async def ping(self) -> bool:
        try:
            return bool(await self.r.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.r.aclose()
