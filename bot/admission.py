"""Admission control for channel endpoints: how much work one process takes on at once, and what happens to
the rest when it is over capacity.

Both platforms deliver again what a bot refuses (Slack retries an event that was not acknowledged, Teams
an activity answered with a 5xx or not answered within 15 s) and both channels drop a repeat by its
delivery id. So above capacity an endpoint first makes new requests wait in arrival order, as long as the
platform lets them, and beyond that refuses them: the platform brings them back later, and the process
keeps a bounded amount of memory instead of growing until it is killed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("scim_help.admission")

# A refusal is logged at most this often per gate (with the running total), not once per request.
WARN_EVERY = 10.0

Release = Callable[[], None]


def register(app: web.Application, gate: Gate) -> None:
    """List a channel's gate on the app, where the server finds it for /metrics."""
    app.setdefault(GATES, []).append(gate)


class Gate:
    """At most `limit` holders at once. Later callers wait in arrival order: at most `max_waiting` of them
    (None: any number) and for at most `wait` seconds (None: as long as it takes). A caller that cannot
    wait is refused."""

    def __init__(self, name: str, limit: int, *, max_waiting: int | None = None, wait: float | None = None) -> None:
        self.name = name
        self.limit = limit
        self.max_waiting = max_waiting
        self.wait = wait
        self.waiting = 0
        self.refused = 0
        self._sem: asyncio.Semaphore | None = None  # created in the serving loop
        self._last_warning = 0.0

    @property
    def in_use(self) -> int:
        return self.limit - self._sem._value if self._sem is not None else 0  # read only

    async def enter(self) -> Release | None:
        """A release callable (safe to call more than once), or None when the caller was refused."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        sem = self._sem
        if not sem.locked():
            await sem.acquire()  # a free slot: returns without yielding to the loop
        elif self.max_waiting is not None and self.waiting >= self.max_waiting:
            self._refuse()
            return None
        else:
            self.waiting += 1
            try:
                async with asyncio.timeout(self.wait):
                    await sem.acquire()
            except TimeoutError:
                self._refuse()
                return None
            finally:
                self.waiting -= 1
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                sem.release()

        return release

    def _refuse(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log.warning(
                "over capacity: request refused for the platform to deliver again",
                extra={"gate": self.name, "limit": self.limit, "refused_total": self.refused},
            )
        return None


GATES = web.AppKey("scim_help_gates", list[Gate])
