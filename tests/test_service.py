"""The channels' door (bot/service.py) and how a runtime is composed (Runtime.create): what the channels
see is what the host wrapped, before anything held the store; side data keeps to its namespaces and to
the key layout deployments already have stored."""

from __future__ import annotations

import pytest

from bot.events import Incoming, Turn
from bot.metrics import ObservedStore
from bot.runtime import Runtime
from bot.service import Conversations, SideData
from bot.store.memory import MemoryStore


class CountingStore(MemoryStore):
    """Counts the conversation writes that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[str] = []

    async def save(self, key: str, data: str, ttl: int) -> None:
        self.saved.append(key)
        await super().save(key, data, ttl)


class Wrapper(MemoryStore):
    """A stand-in for ObservedStore: marks the store it wraps, delegating nothing (a new memory store)."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner


def _create(settings, **parts) -> Runtime:
    return Runtime.create(settings, MemoryStore(), **parts)


async def test_store_wrappers_are_composed_before_the_engine_and_the_channels_get_the_store(settings, shared_pack):
    wrapped: list[Wrapper] = []

    def wrap(store):
        wrapped.append(Wrapper(store))
        return wrapped[-1]

    rt = _create(settings, store_wrappers=[wrap])
    [outer] = wrapped
    assert rt.store is outer and rt.engine.store is outer
    await Conversations(rt).side("webchat").save("web:abc", "[]")
    assert await outer.load("webchat:web:abc") == "[]"  # through the wrapper, as a channel writes it
    await rt.close()


async def test_middleware_runs_around_every_turn_first_outermost_and_sees_failures(settings, shared_pack):
    seen: list[str] = []

    def named(name):
        async def middleware(msg, handle):
            seen.append(f"{name}>")
            try:
                return await handle(msg)
            finally:
                seen.append(f"<{name}")

        return middleware

    observed: list[tuple[Turn | None, BaseException | None]] = []
    rt = _create(settings, middleware=[named("a"), named("b")], observers=[lambda msg, turn, s, err: observed.append((turn, err))])
    turn = await Conversations(rt).handle(Incoming(channel="test", conversation_id="test:1", text="hi"))
    assert seen == ["a>", "b>", "<b", "<a"] and observed == [(turn, None)]

    async def broken(msg):
        raise RuntimeError("engine failed")

    rt.engine.handle = broken  # type: ignore[method-assign]
    seen.clear()
    with pytest.raises(RuntimeError):
        await rt.handle(Incoming(channel="test", conversation_id="test:2", text="hi"))
    assert seen == ["a>", "b>", "<b", "<a"] and isinstance(observed[-1][1], RuntimeError)
    await rt.close()


async def test_the_servers_runtime_counts_turns_in_flight_and_observes_its_store(make_runtime, shared_pack):
    from bot.server import Instruments

    rt = make_runtime(store=MemoryStore())
    instruments = Instruments.of(rt)
    assert isinstance(rt.store, ObservedStore) and rt.engine.store is rt.store
    counts: list[int] = []
    real = rt.engine.handle

    async def counting(msg):
        counts.append(instruments.inflight.count)
        return await real(msg)

    rt.engine.handle = counting
    await Conversations(rt).handle(Incoming(channel="test", conversation_id="test:1", text="hi"))
    assert counts == [1] and instruments.inflight.count == 0


def test_build_app_refuses_a_runtime_without_the_servers_instruments(settings, shared_pack):
    from bot.server import build_app

    with pytest.raises(ValueError, match="create_runtime"):
        build_app(_create(settings))


async def test_side_data_keeps_the_key_layout_deployments_have_stored(settings, shared_pack):
    store = CountingStore()
    rt = Runtime.create(settings, store)
    door = Conversations(rt)
    # What earlier versions wrote: the web page's transcript and a Teams card, beside the conversation.
    await store.save("webchat:web:0123456789abcdef01234567", '[{"who": "admin", "text": "hi"}]', 60)
    await store.save("teams-card:teams:t1:c1:act-9", '{"type": "AdaptiveCard"}', 60)
    assert await door.side("webchat").load("web:0123456789abcdef01234567") == '[{"who": "admin", "text": "hi"}]'
    assert await door.side("teams-card").load("teams:t1:c1", "act-9") == '{"type": "AdaptiveCard"}'
    await door.side("teams-card").save("teams:t1:c1", "{}", "act-10")
    assert store.saved[-1] == "teams-card:teams:t1:c1:act-10"
    await rt.close()


@pytest.mark.parametrize("namespace", ["web", "teams", "slack", "outcome", "anything"])
def test_side_data_only_in_declared_namespaces_never_a_conversations_own(namespace):
    with pytest.raises(ValueError, match="namespace"):
        SideData(MemoryStore(), namespace, 60)


async def test_claims_first_caller_wins_and_several_only_when_all_are_new(settings, shared_pack):
    rt = _create(settings)
    door = Conversations(rt)
    assert await door.claim("k1", ttl=60)
    assert not await door.claim("k1", ttl=60)
    assert not await door.claim("k1", "k2", ttl=60)
    assert await door.claim("k3", "k4", ttl=60)
    await rt.close()
