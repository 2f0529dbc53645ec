"""What every part of the Slack channel shares: the bot's attributes and the job being processed.

`SlackBot` (bot/channels/slack/app.py) is put together from small parts — listeners, posting, the
escalation modal — that each live in their own module and see the bot through `BotCore`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.service import Entry

if TYPE_CHECKING:
    from bot.service import Conversations
    from bot.settings import Settings

CLAIM_TTL = 24 * 3600
# A record per processed request holding the messages its turn produced, written with the conversation.
OUTBOX = "slack-outbox"


@dataclass
class Job:
    """One inbox entry being processed: the listener reads it (through CURRENT_JOB) to put its turn's
    messages in the outbox, or to ask for another try later."""

    entry: Entry
    # Set by a listener whose turn could not reach the store: leave the entry for a later attempt.
    retry_later: bool = False
    # Set when the turn's messages went into the outbox: `done` drops that record too.
    outboxed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def recovering(self) -> bool:
        """A second attempt: the first may have posted some of its messages already."""
        return self.entry.attempts > 1


CURRENT_JOB: ContextVar[Job | None] = ContextVar("scim_help_slack_job", default=None)
# Attempts of an inbox entry whose turn could not reach the store, before the admin is told it failed.
MAX_ATTEMPTS = 5


def retry_later() -> bool:
    """Leave the inbox entry being processed for another attempt, if it has attempts left (True)."""
    job = CURRENT_JOB.get()
    if job is not None and job.entry.attempts < MAX_ATTEMPTS:
        job.retry_later = True
        return True
    return False


class BotCore:
    conversations: Conversations
    settings: Settings
    client: AsyncWebClient
    escalation_channel: str | None
    portal_label: str
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock]

    async def _claim(self, *keys: str) -> bool:
        """First caller wins; with several keys, only if every one of them is new (one round trip)."""
        return await self.conversations.claim(*keys, ttl=CLAIM_TTL)

    @asynccontextmanager
    async def _serial(self, conv: str) -> AsyncIterator[None]:
        """Turns of one conversation run and post in order within this process (the engine's store lock
        serialises across processes)."""
        lock = self._locks.get(conv)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conv] = lock
        async with lock:
            yield
