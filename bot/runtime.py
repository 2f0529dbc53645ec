"""Wiring: settings -> knowledge pack -> reader -> store -> engine, shared by every channel.

Adapters call `Runtime.handle()` (channels through bot/service.py) rather than the engine directly, so
timing, metrics and error handling happen in one place for Slack, Teams, the web chat and the terminal
alike. What a host adds around the core is given to `Runtime.create` and composed once, before anything
holds the store or the handler: store wrappers (the server's ObservedStore), middleware around every
turn (the server's turns-in-flight count) and observers told of every turn's end (its metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.continuity import lost_turn, needs_conversation
from bot.engine import Engine
from bot.events import Incoming, Turn
from bot.graph.looker import Looker
from bot.redact import shield
from bot.settings import Settings, load_settings
from bot.store import Store, open_store
from bot.understand import Reader
from knowledge.loader import load_pack
from knowledge.schema import Bundle

# Called after every turn with (message, turn or None on error, seconds, error or None).
Observer = Callable[[Incoming, "Turn | None", float, "BaseException | None"], None]
# Wraps the store before the engine or any channel is given it.
StoreWrapper = Callable[[Store], Store]
Handler = Callable[[Incoming], Awaitable[Turn]]
# Runs around every turn, admission wait included: middleware(msg, next_handler) -> the turn.
Middleware = Callable[[Incoming, Handler], Awaitable[Turn]]

# Turns running at once per process; the rest wait their turn in arrival order. A turn is CPU plus a few
# store round trips, so more in parallel only adds contention: under a burst above capacity, unbounded
# concurrency made every turn slow until many hit the store's lock and pool timeouts (lost answers);
# bounded, each admitted turn finishes quickly and the others are answered late rather than never.
# The bound also caps how long one pass of the event loop takes, and so how long a new request waits for
# its ack: at 500 Slack events/s (Redis, 2 workers) ack p99 was ~134 ms with 16, ~60 ms with 8; with 2
# answers fell behind (bench/NOTES.md).
MAX_CONCURRENT_TURNS = 8


@dataclass
class Runtime:
    settings: Settings
    bundle: Bundle
    reader: Reader
    store: Store
    engine: Engine
    looker: Looker | None = None
    observers: list[Observer] = field(default_factory=list)
    middleware: tuple[Middleware, ...] = ()
    _admission: asyncio.Semaphore | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        settings: Settings | None = None,
        store: Store | None = None,
        *,
        store_wrappers: Sequence[StoreWrapper] = (),
        middleware: Sequence[Middleware] = (),
        observers: Sequence[Observer] = (),
    ) -> Runtime:
        """The runtime; `store_wrappers` apply in order (the last one outermost), the first `middleware`
        is the outermost around a turn."""
        settings = settings or load_settings()
        bundle = load_pack(settings.knowledge)
        reader = Reader(bundle)
        store = store or open_store(settings)
        for wrap in store_wrappers:
            store = wrap(store)
        # Optional: with a connected tenant, Entra checks are looked up in Microsoft Graph before asking.
        looker = Looker.from_settings(settings, bundle)
        engine = Engine(bundle, store, ttl=settings.conversation_ttl, support_url=settings.support_url, reader=reader, looker=looker)
        return cls(settings, bundle, reader, store, engine, looker=looker, observers=list(observers), middleware=tuple(middleware))

    async def handle(self, msg: Incoming) -> Turn:
        call: Handler = self._admitted
        for outer in reversed(self.middleware):
            call = _around(outer, call)
        return await call(msg)

    async def _admitted(self, msg: Incoming) -> Turn:
        if self._admission is None:
            self._admission = asyncio.Semaphore(MAX_CONCURRENT_TURNS)
        async with self._admission:
            return await self._handle(msg)

    async def _handle(self, msg: Incoming) -> Turn:
        start = time.perf_counter()
        # Before the engine: opaque secrets out of the text (nothing may cut one in half first), and a
        # reply to a conversation the store no longer has is told so (bot/continuity.py).
        msg = shield(msg)
        try:
            if needs_conversation(msg, self.bundle.symptoms) and await self.engine.state(msg.conversation_id) is None:
                turn = lost_turn(msg, ((s.id, s.title) for s in self.bundle.pack.symptoms))
            else:
                turn = await self.engine.handle(msg)
        except BaseException as exc:
            self._notify(msg, None, time.perf_counter() - start, exc)
            raise
        self._notify(msg, turn, time.perf_counter() - start, None)
        return turn

    def _notify(self, msg: Incoming, turn: Turn | None, seconds: float, error: BaseException | None) -> None:
        for observer in self.observers:
            observer(msg, turn, seconds, error)

    async def close(self) -> None:
        if self.looker is not None:
            await self.looker.close()
        await self.store.close()


def _around(middleware: Middleware, inner: Handler) -> Handler:
    async def call(msg: Incoming) -> Turn:
        return await middleware(msg, inner)

    return call
