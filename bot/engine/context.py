"""Per-turn scratch shared by the engine's parts: the state being changed and the replies being collected."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.events import Reply
from bot.state import State
from bot.understand.reading import Reading

MAX_REASKS = 3


@dataclass
class Ctx:
    state: State
    replies: list[Reply] = field(default_factory=list)
    started: bool = False
    directed: bool = True
    # This turn's one reading of the message (None for a button click or an empty message).
    reading: Reading | None = None
    # The admin's words this turn, scrubbed: kept as "said" beside a finding they answered.
    said: str | None = None

    @property
    def idp(self) -> str | None:
        return self.state.idp

    def add(self, reply: Reply) -> None:
        self.replies.append(reply)


def clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
