"""Slack conversation ids and places: pure functions, no I/O.

    slack:{team}:{channel}:{thread_ts}      a thread
    slack:{team}:{dm channel}:dm            a DM (one conversation per DM channel)
    slack:{team}:{channel}:slash:{user}     the picker a bare `/scim-help` shows (choosing a symptom
                                            there starts a real thread)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Slack user ids: what may go inside <@…> in text we build.
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_CHANNEL_ID = re.compile(r"^[CDG][A-Z0-9]{2,30}$")


@dataclass(frozen=True)
class Place:
    """Where the bot posts: a channel, optionally inside a thread."""

    channel: str
    thread_ts: str | None = None


@dataclass(frozen=True)
class ConversationRef:
    team: str
    channel: str
    kind: str  # "thread" | "dm" | "slash"
    thread_ts: str | None = None
    user: str | None = None

    @property
    def place(self) -> Place | None:
        if self.kind == "thread":
            return Place(self.channel, self.thread_ts)
        if self.kind == "dm":
            return Place(self.channel, None)
        return None


def thread_conversation(team: str, channel: str, thread_ts: str) -> str:
    return f"slack:{team}:{channel}:{thread_ts}"


def dm_conversation(team: str, channel: str) -> str:
    return f"slack:{team}:{channel}:dm"


def slash_conversation(team: str, channel: str, user: str) -> str:
    return f"slack:{team}:{channel}:slash:{user}"


def parse_conversation(conversation_id: str | None) -> ConversationRef | None:
    if not conversation_id:
        return None
    parts = conversation_id.split(":")
    if len(parts) < 4 or parts[0] != "slack" or not parts[1] or not parts[2]:
        return None
    team, channel, rest = parts[1], parts[2], parts[3:]
    if rest == ["dm"]:
        return ConversationRef(team, channel, "dm")
    if len(rest) == 2 and rest[0] == "slash" and rest[1]:
        return ConversationRef(team, channel, "slash", user=rest[1])
    if len(rest) == 1 and re.fullmatch(r"\d{1,12}\.\d{1,9}", rest[0]):
        return ConversationRef(team, channel, "thread", thread_ts=rest[0])
    return None


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    else:
        text = re.sub(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>", " ", text)
    return " ".join(text.split())


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and bool(_USER_ID.match(value))


def is_channel_id(value: object) -> bool:
    return isinstance(value, str) and bool(_CHANNEL_ID.match(value))


def team_of(body: dict[str, Any], context: Any, event: dict[str, Any]) -> str:
    team = None
    try:
        team = context.get("team_id")
    except AttributeError:
        pass
    return str(
        team
        or body.get("team_id")
        or (body.get("team") or {}).get("id")
        or (body.get("user") or {}).get("team_id")
        or event.get("team")
        or "T"
    )
