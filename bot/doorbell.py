"""The doorbell: how a recording worker tells the processor processes that an entry is waiting.

With `serve --processors M` the supervisor makes one pipe before it forks; every process inherits both
ends. A worker writes a byte after it records an entry; a processor's event loop watches the read end and
looks for work when it turns readable. A byte is a hint, never the record: the entry is in the store, a
full pipe drops the byte (the processors are busy and keep claiming until the inbox is empty), and a
processor also looks every POLL seconds, for entries recorded by another host or before it started.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

# How often a processor looks for entries without being rung.
POLL = 0.5


class Doorbell:
    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def ring(self) -> None:
        try:
            os.write(self._write, b"\0")
        except (BlockingIOError, BrokenPipeError):
            pass  # full: the processors have work queued; nobody reading: the poll finds the entry

    def listen(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        def readable() -> None:
            try:
                while os.read(self._read, 4096):
                    pass
            except BlockingIOError:
                pass  # drained (or another processor read the bytes first: looking costs one query)
            callback()

        loop.add_reader(self._read, readable)

    def stop_listening(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._read)


# Set by the supervisor before it forks (bot/workers.py); None in a process that runs alone.
inherited: Doorbell | None = None
