"""The one door between the channels and the core: `Conversations`, and the `Channel` each platform is.

A channel (Slack, Teams, the web chat) is handed a `Conversations`, never the `Runtime`: what it may ask
of the core is listed here — run a turn, read a conversation's state, draft its ticket, where support
is — plus the store features a chat platform needs to be correct under retries and restarts (claims,
channel records, the deferred commit, the durable inbox) and its side data. So the engine, the reader
and the store can change behind this class without a channel noticing, and tests/test_architecture.py
holds that no channel imports them directly.

The model is Rasa's `InputChannel`: the server loads each channel by name, the channel mounts its routes
and calls back into `Conversations.handle` with one `Incoming`; `start`, `stop` and `close` follow the
application's life (bot/server.py).

Side data is what a channel keeps beside a conversation — the Teams cards it sent (to update a clicked
one), the web page's transcript (to restore it on reload). Each kind has its own namespace, declared in
SIDE_DATA, and expires with the conversation; its keys are `<namespace>:<conversation>[:<item>]`, the
layout earlier versions wrote, so what existing deployments stored still loads.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from bot.store.base import Deferred, StoreUnavailable
from bot.store.inbox import LEASE, Entry, Inbox, InboxFull

if TYPE_CHECKING:
    from bot.events import Incoming, Ticket, Turn
    from bot.runtime import Runtime
    from bot.settings import Settings
    from bot.state import State
    from bot.store.base import Store

__all__ = [
    "LEASE",
    "SIDE_DATA",
    "Channel",
    "Conversations",
    "Deferred",
    "Entry",
    "Inbox",
    "InboxFull",
    "SideData",
    "StoreUnavailable",
    "attach",
]

# Side-data namespace -> what it holds. A namespace is never a conversation id's prefix ("slack:",
# "teams:", "web:"), so side data can never be read as, or overwrite, a conversation.
SIDE_DATA = {
    "teams-card": "an Adaptive Card the bot sent, by activity id: updated when one of its buttons is clicked",
    "webchat": "the web page's transcript of the conversation, to restore the page on reload",
}
CONVERSATION_PREFIXES = ("slack", "teams", "web", "terminal", "replay", "bench", "test")


class Channel(Protocol):
    """A chat platform on the shared aiohttp application."""

    # Shown in the start-up banner ("web", "slack", "slack-socket", "teams").
    name: str

    def mount(self, app: Any) -> None:
        """Add the channel's routes (and admission gates) to the application; nothing runs yet."""

    async def start(self) -> None:
        """The application started: background work begins (an inbox's sweeps, a socket's connection)."""

    async def stop(self) -> None:
        """Shutting down: take no new work and finish what was taken (the server then drains turns)."""

    async def close(self) -> None:
        """The last request is answered: release connections and clients."""


def attach(app: Any, channel: Channel) -> None:
    """Mount `channel` on an aiohttp application and tie its start, stop and close to the app's life."""

    async def start(_app: Any) -> None:
        await channel.start()

    async def stop(_app: Any) -> None:
        await channel.stop()

    async def close(_app: Any) -> None:
        await channel.close()

    channel.mount(app)
    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.on_cleanup.append(close)


class SideData:
    """One namespace of side data (SIDE_DATA), expiring `ttl` seconds after each write."""

    def __init__(self, store: Store, namespace: str, ttl: int) -> None:
        if namespace not in SIDE_DATA or namespace in CONVERSATION_PREFIXES:
            raise ValueError(f"undeclared side-data namespace: {namespace!r}")
        self._store = store
        self.namespace = namespace
        self.ttl = ttl

    def key(self, conversation: str, item: str | None = None) -> str:
        return f"{self.namespace}:{conversation}" + (f":{item}" if item is not None else "")

    async def load(self, conversation: str, item: str | None = None) -> str | None:
        return await self._store.load(self.key(conversation, item))

    async def save(self, conversation: str, data: str, item: str | None = None) -> None:
        await self._store.save(self.key(conversation, item), data, self.ttl)

    def lock(self, conversation: str, item: str | None = None) -> AbstractAsyncContextManager[None]:
        """Serialise read-modify-write of one entry (a transcript appended by two turns at once)."""
        return self._store.lock(self.key(conversation, item))


class Conversations:
    """What a channel may ask of the core. Every call goes to the runtime's parts as they are at call time,
    so a runtime composed with wrappers and middleware (Runtime.create) is what every channel sees."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @property
    def settings(self) -> Settings:
        return self._runtime.settings

    @property
    def _store(self) -> Store:
        return self._runtime.store

    # ---- the conversation --------------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> Turn:
        """One turn: the message read, the conversation advanced and saved, the replies to send."""
        return await self._runtime.handle(msg)

    async def state(self, conversation: str) -> State | None:
        return await self._runtime.engine.state(conversation)

    def draft_ticket(self, state: State) -> Ticket:
        return self._runtime.engine.draft_ticket(state)

    def ticket_markdown(self, ticket: Ticket, state: State) -> str:
        """The ticket's text, written again from `ticket` (after an admin edited its fields)."""
        from bot.ticket import render_markdown

        return render_markdown(ticket, state, self._runtime.bundle)

    @property
    def support_url(self) -> str | None:
        return self._runtime.engine.support_url

    @property
    def portal_label(self) -> str:
        return self._runtime.bundle.pack.escalation.portal_label

    # ---- a channel's bookkeeping -----------------------------------------------------------------

    def say(self, message_id: str, /, **fields: Any) -> str:
        """A sentence of the knowledge pack's `messages:`: channels write none of their own, so another
        pack speaks of another domain on every surface."""
        return self._runtime.bundle.message(message_id, None, **fields)

    def ticket_labels(self) -> dict[str, str]:
        """The ticket fields' labels (account, idp, upns, groups), as every view of a ticket shows them."""
        from bot.ticket import field_labels

        return field_labels(self._runtime.bundle)

    @property
    def escalation_guidance(self) -> str:
        """What to do with the ticket text: the pack's own words."""
        return self._runtime.bundle.word(self._runtime.bundle.pack.escalation.guidance, None)

    def side(self, namespace: str) -> SideData:
        return SideData(self._store, namespace, self.settings.conversation_ttl)

    async def claim(self, *keys: str, ttl: int) -> bool:
        """First caller wins; with several keys, only if every one of them is new (one round trip). For
        what is not a turn's own delivery key: those go in `Incoming.once`, claimed with the turn."""
        if len(keys) == 1:
            return await self._store.claim(keys[0], ttl)
        return await self._store.claim_all(keys, ttl)

    async def get_record(self, kind: str, key: str) -> str | None:
        return await self._store.get_record(kind, key)

    async def put_record(self, kind: str, key: str, data: str) -> None:
        await self._store.put_record(kind, key, data)

    def deferred(self) -> AbstractAsyncContextManager[Deferred]:
        """The next turn's write-back is finished by the caller, with records of its own (an outbox)."""
        return self._store.deferred()

    def inbox(self, name: str) -> Inbox:
        return self._store.inbox(name)

