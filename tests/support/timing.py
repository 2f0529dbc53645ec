"""Time in tests without sleeping it out.

- `Clock`: the clock a memory or SQLite store is given (`MemoryStore(clock=...)`). It stands still until
  `advance(s)` moves it, so a TTL runs out at once instead of after a sleep, and never early or late because
  the machine was busy. (Waiting for a lock stays on real time: stores take deadlines from time.monotonic.)
- `pass_time(store, s)`: `s` seconds pass for `store`: its clock moves when it has a `Clock`; Redis keeps its
  TTLs in the server, so there the test really waits (the only place a test sleeps out a TTL).
- `eventually(check)`: wait for a condition instead of sleeping a fixed time and hoping it happened.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


class Clock:
    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def pass_time(store: Any, seconds: float) -> None:
    clock = getattr(store, "clock", None)
    if isinstance(clock, Clock):
        clock.advance(seconds)
    else:
        await asyncio.sleep(seconds)


async def eventually(check: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0, poll: float = 0.01, what: str = "condition") -> Any:
    """Poll `check` (a function or a coroutine function) until it returns something truthy; return that.
    TimeoutError naming `what` when it has not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        await asyncio.sleep(poll)
