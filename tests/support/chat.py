"""A conversation with the engine driven the way a channel adapter drives it, for the engine tests."""

from __future__ import annotations

import uuid

from bot.engine import Engine
from bot.events import Incoming, Reply, Turn
from bot.state import State


class Chat:
    def __init__(self, engine: Engine, cid: str | None = None, channel: str = "test"):
        self.engine = engine
        self.cid = cid or f"{channel}:{uuid.uuid4().hex}"
        self.channel = channel
        self.turns: list[Turn] = []

    async def say(self, text: str, directed: bool = True) -> Turn:
        turn = await self.engine.handle(Incoming(channel=self.channel, conversation_id=self.cid, text=text, directed=directed))
        self.turns.append(turn)
        return turn

    async def click(self, choice: str) -> Turn:
        turn = await self.engine.handle(Incoming(channel=self.channel, conversation_id=self.cid, choice=choice))
        self.turns.append(turn)
        return turn

    async def state(self) -> State:
        s = await self.engine.state(self.cid)
        assert s is not None
        return s

    @property
    def last(self) -> Turn:
        return self.turns[-1]

    def text(self) -> str:
        """Everything the bot said in its last turn."""
        return "\n".join(r.text for r in self.last.replies)

    def choices(self) -> list[str]:
        return [c.id for r in self.last.replies for c in r.choices]

    def question(self) -> Reply:
        return next(r for r in self.last.replies if r.kind == "question")

    async def until_check(self, check_id: str, limit: int = 8) -> None:
        """Answer "not sure" (or Entra, when the IdP is asked) until the bot asks `check_id`."""
        for _ in range(limit):
            s = await self.state()
            if s.pending and s.pending.kind == "check" and s.pending.id == check_id:
                return
            assert s.pending is not None, s
            if s.pending.kind == "idp":
                await self.click("idp:entra")
                continue
            check = self.engine.kb.checks[s.pending.id or ""]
            unsure = next(a for a in check.answers if a.kind == "unsure")
            await self.click(f"{check.id}:{unsure.id}")
        raise AssertionError(f"never asked {check_id}")
