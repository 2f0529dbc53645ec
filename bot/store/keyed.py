"""One asyncio lock per key, for the tasks of one process, kept only while some task holds or waits for it.

A lock is looked up once, when a task starts waiting, and released through the handle that task got: a
key's lock is dropped from the table only when nobody holds or waits for it any more, so a task that is
about to wait can never end up on a lock the table has already replaced, and a release can never reach
another task's lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Release = Callable[[], None]


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def acquire(self, key: str, timeout: float) -> Release:
        """Wait (in arrival order) for `key`; TimeoutError after `timeout` seconds. Returns the release,
        which may be called more than once."""
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            # asyncio.timeout, not wait_for: the acquire runs in this task, so a timeout that meets the
            # grant hands the lock on instead of leaving it held by nobody.
            async with asyncio.timeout(timeout):
                await lock.acquire()
        except BaseException:
            self._forget(key, users)
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                lock.release()
                self._forget(key, users)

        return release

    def _forget(self, key: str, users: list[int]) -> None:
        users[0] -= 1
        if users[0] == 0 and self._locks.get(key, (None, None))[1] is users:
            del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
