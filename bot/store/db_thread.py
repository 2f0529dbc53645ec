"""The one thread a SQLite store runs its statements on, with a fast lane.

One connection on one thread keeps SQLite simple (no lock contention inside the process), but a FIFO
queue put Slack's acknowledgements behind every turn's reads and writes: at 500 events/s the ack waited
for the turns queued before it (p99 271 ms against a 50 ms target). Work submitted as urgent — recording
an incoming event before it is acknowledged — now runs before any queued normal work; within a lane the
order stays first come, first served.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_URGENT, _NORMAL, _STOP = 0, 1, 2


class DBThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], Any] | None, Future[Any] | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, fn: Callable[[], T], *, urgent: bool = False) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the store is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((_URGENT if urgent else _NORMAL, next(self._seq), fn, future))
        return future

    def _work(self) -> None:
        while True:
            _, _, fn, future = self._queue.get()
            if fn is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, who decides
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            if thread is not None:
                self._queue.put((_STOP, next(self._seq), None, None))
        if thread is not None:
            thread.join()
