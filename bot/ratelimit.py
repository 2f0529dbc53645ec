"""Per-client request budgets and a cap on live conversations, kept in process memory.

`RateLimiter` is a token bucket per client key (an identity or an address): `per_minute` requests in a
burst, then one every 60 / per_minute seconds. The least recently seen clients are forgotten beyond
`max_clients`, so memory stays bounded whatever the number of clients. `LiveSet` counts conversations
touched within their time to live and refuses new ones above its cap.

Both are per process: with N workers or replicas the budgets are N times larger. They bound what one
anonymous client can make a process store, not a fair share between clients.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    def __init__(self, per_minute: int, *, max_clients: int = 10_000, clock=time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may go ahead (one token spent); otherwise the seconds until it may."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._remember(client, tokens - 1.0, now)
            return 0.0
        self._remember(client, tokens, now)
        return (1.0 - tokens) / self.rate

    def _remember(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


class LiveSet:
    """Conversation ids touched within `ttl` seconds, at most `cap` of them."""

    def __init__(self, cap: int, ttl: float, *, clock=time.monotonic) -> None:
        self.cap = cap
        self.ttl = ttl
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.ttl:
                return
            self._seen.popitem(last=False)

    def has_room(self) -> bool:
        self._expire(self.clock())
        return len(self._seen) < self.cap

    def touch(self, key: str) -> None:
        self._seen.pop(key, None)
        self._seen[key] = self.clock()

    def __len__(self) -> int:
        self._expire(self.clock())
        return len(self._seen)
