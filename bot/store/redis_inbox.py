"""The Redis inbox (bot/store/inbox.py): a Stream per inbox with one consumer group, `workers`.

Each process is a consumer named like a SQLite lease holder (host, pid namespace, pid, a token). `put`
de-duplicates, adds the entry and delivers it to the recording consumer in one script, so the entry is in
that consumer's pending list (PEL) from the moment it is acknowledged; recorded unheld (`held=False`, for
processor processes) it is only added, and a processor's `claim` reads it for itself (XREADGROUP). `done` acknowledges and deletes it,
so the stream holds only entries not yet processed and its length bounds the backlog.

A consumer is alive while its key `inbox-alive:<consumer>` exists (refreshed every ALIVE / 3 s by `renew`,
which the holder calls on every sweep, expiring after ALIVE s). `reclaim` takes over the pending entries of consumers that are no longer alive (XCLAIM),
entries idle longer than LEASE in any consumer (XAUTOCLAIM: a consumer stuck on them), and entries that
were never delivered.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError, ResponseError

from bot.store.base import StoreUnavailable
from bot.store.inbox import LEASE, Batcher, Entry, Inbox, InboxFull

if TYPE_CHECKING:
    from bot.store.redis import RedisStore

GROUP = "workers"
# A consumer says it is alive every ALIVE / 3 seconds; after ALIVE seconds of silence its entries are
# taken over (after a SIGKILL: within about ALIVE seconds).
ALIVE = 10

# Several requests in one call (group commit). KEYS: stream, then a seen key per request. ARGV: consumer,
# recorded at, then per request: payload, seen ttl, limit (0 = none).
# -> per request: "-1" full, "0" seen before, else the entry id (delivered to the consumer)
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'workers', '$', 'MKSTREAM')
end
local waiting = redis.call('XLEN', KEYS[1])
local out = {}
local added = 0
for i = 2, #KEYS do
  local a = 3 * (i - 2) + 3
  local limit = tonumber(ARGV[a + 2])
  if limit > 0 and waiting >= limit then
    table.insert(out, '-1')
  elseif not redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[a + 1]) then
    table.insert(out, '0')
  else
    table.insert(out, redis.call('XADD', KEYS[1], '*', 'p', ARGV[a], 't', ARGV[2]))
    waiting = waiting + 1
    added = added + 1
  end
end
if added > 0 and ARGV[1] ~= '' then
  redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', added, 'STREAMS', KEYS[1], '>')
end
return out
"""


# KEYS: stream, then one record hash per dropped record. ARGV: the entry ids' count, the ids, then a field
# per record hash. One call for a whole batch of processed entries.
_DONE = """
local n = tonumber(ARGV[1])
local ids = {}
for i = 2, n + 1 do table.insert(ids, ARGV[i]) end
if n > 0 then
  redis.call('XACK', KEYS[1], 'workers', unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
end
for i = 2, #KEYS do redis.call('HDEL', KEYS[i], ARGV[n + i]) end
return n
"""


def _consumer_name() -> str:
    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = "-"
    return f"{socket.gethostname()}/{ns}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class RedisInbox(Inbox):
    def __init__(self, store: RedisStore, box: str) -> None:
        self.store = store
        self.r = store.r
        self.stream = store._k("inbox", box)
        self.box = box
        self.consumer = _consumer_name()
        self._put = self.r.register_script(_PUT)
        self._done = self.r.register_script(_DONE)
        self._alive_at = 0.0
        self._puts: Batcher[tuple[str, str, int, int, bool], Entry | None] = Batcher(self._put_batch)
        self._dones: Batcher[tuple[str, tuple[tuple[str, str], ...]], None] = Batcher(self._done_batch)

    def _alive_key(self, consumer: str) -> str:
        return self.store._k("inbox-alive", self.box, consumer)

    async def put(self, key: str, payload: str, *, seen_ttl: int, limit: int = 0, held: bool = True) -> Entry | None:
        return await self._puts.submit((key, payload, seen_ttl, limit, held))

    async def _put_batch(self, items: list[tuple[str, str, int, int, bool]]) -> list[Entry | None | Exception]:
        # XREADGROUP delivers the oldest undelivered entries, not necessarily the ones just added: a process
        # records either always held or always unheld (bot/store/inbox.py), so a batch is all one or the other.
        held = items[0][4]
        now = time.time()
        keys = [self.stream, *(self.store._k("claim", f"inbox:{self.box}:{key}") for key, *_ in items)]
        args: list[str | float | int] = [self.consumer if held else "", now]
        for _, payload, seen_ttl, limit, _ in items:
            args += [payload, seen_ttl, limit]
        try:
            await self._say_alive(now)
            got = await self._put(keys=keys, args=args)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        out: list[Entry | None | Exception] = []
        for (_, payload, _, _, _), result in zip(items, got):
            result = str(result)
            out.append(InboxFull() if result == "-1" else None if result == "0" else Entry(result, payload, 1, now))
        return out

    async def done(self, entry: Entry, drop: Sequence[tuple[str, str]] = ()) -> None:
        await self._dones.submit((entry.id, tuple(drop)))

    async def _done_batch(self, items: list[tuple[str, tuple[tuple[str, str], ...]]]) -> list[None | Exception]:
        keys = [self.stream]
        args: list[str | int] = [len(items), *(entry_id for entry_id, _ in items)]
        for _, drop in items:
            for kind, key in drop:
                keys.append(self.store._k("rec", kind))
                args.append(key)
        try:
            await self._done(keys=keys, args=args)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return [None] * len(items)

    async def claim(self, limit: int) -> list[Entry]:
        return await self._none_yet_or(self._claim(limit))

    async def _claim(self, limit: int) -> list[Entry]:
        await self._say_alive(time.time())
        return await self._read_new(limit, attempts=1)

    async def _none_yet_or(self, work: Awaitable[list[Entry]]) -> list[Entry]:
        """`work`'s entries; none when nothing was recorded since Redis started (no group yet)."""
        try:
            return await work
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []
            raise StoreUnavailable(f"redis: {exc}") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def _say_alive(self, now: float, force: bool = False) -> None:
        if force or now - self._alive_at > ALIVE / 3:
            self._alive_at = now
            await self.r.set(self._alive_key(self.consumer), "1", ex=ALIVE)

    async def renew(self, entries: Sequence[Entry]) -> None:
        try:
            await self._say_alive(time.time())
            if entries:
                # Claiming our own entries again resets their idle time (JUSTID: no payload back).
                await self.r.xclaim(self.stream, GROUP, self.consumer, 0, [e.id for e in entries], justid=True)
        except ResponseError:
            return  # no stream or group yet (nothing recorded since Redis started)
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def reclaim(self, limit: int = 100) -> list[Entry]:
        return await self._none_yet_or(self._reclaim(limit))

    async def _reclaim(self, limit: int) -> list[Entry]:
        await self._say_alive(time.time())
        taken = await self._from_dead_consumers(limit)
        if len(taken) < limit:
            taken += await self._idle(limit - len(taken))
        if len(taken) < limit:
            taken += await self._undelivered(limit - len(taken))
        return taken

    async def _from_dead_consumers(self, limit: int) -> list[Entry]:
        taken: list[Entry] = []
        for info in await self.r.xinfo_consumers(self.stream, GROUP):
            name = info["name"]
            if name == self.consumer or await self.r.exists(self._alive_key(name)):
                continue
            if not info.get("pending"):
                await self.r.xgroup_delconsumer(self.stream, GROUP, name)
                continue
            pending = await self.r.xpending_range(self.stream, GROUP, min="-", max="+", count=limit - len(taken), consumername=name)
            counts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
            if counts:
                claimed = await self.r.xclaim(self.stream, GROUP, self.consumer, 0, list(counts))
                # redis-py types stream replies as a union of every reply shape; these are lists of (id, fields) pairs.
                taken += [_entry(i, fields, counts.get(i, 1) + 1) for i, fields in claimed if fields]  # type: ignore[str-unpack, arg-type]
            if len(taken) >= limit:
                break
        return taken

    async def _idle(self, limit: int) -> list[Entry]:
        got = await self.r.xautoclaim(self.stream, GROUP, self.consumer, int(LEASE * 1000), "0-0", count=limit)
        return [_entry(i, fields, 2) for i, fields in got[1] if fields]

    async def _undelivered(self, limit: int) -> list[Entry]:
        """Entries recorded unheld that no processor claimed within LEASE (none is running). XREADGROUP
        takes the oldest undelivered ones: they are taken only when the oldest is that old, so a sweep
        never takes fresh entries from under the processors."""
        groups = await self.r.xinfo_groups(self.stream)
        last = next((str(g.get("last-delivered-id")) for g in groups if g.get("name") == GROUP), "0-0")
        oldest = await self.r.xrange(self.stream, min=f"({last}", count=1)
        if not oldest:
            return []
        recorded_ms = int(str(oldest[0][0]).partition("-")[0])
        if time.time() * 1000 - recorded_ms < LEASE * 1000:
            return []
        return await self._read_new(limit, attempts=2)

    async def _read_new(self, limit: int, attempts: int) -> list[Entry]:
        """The oldest entries never delivered to a consumer, now this one's (XREADGROUP `>`)."""
        got = await self.r.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=limit)
        # redis-py types stream replies as a union of every reply shape; these are lists of (id, fields) pairs.
        return [_entry(i, fields, attempts) for _, entries in got or [] for i, fields in entries if fields]  # type: ignore[str-unpack, arg-type, union-attr]

    async def close(self) -> None:
        try:
            await self.r.delete(self._alive_key(self.consumer))
        except RedisError:
            pass


def _entry(entry_id: Any, fields: dict[str, Any], attempts: int) -> Entry:
    try:
        recorded = float(fields.get("t") or 0)
    except ValueError:
        recorded = 0.0
    return Entry(str(entry_id), str(fields.get("p") or ""), attempts, recorded)
