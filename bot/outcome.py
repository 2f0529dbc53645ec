"""What a conversation episode achieved: the `Outcome` record the engine keeps when an episode closes.

Written by the engine (bot/engine/core.py) with the conversation, in the same commit, under the record
kind OUTCOME_KIND; read back by `scim-help stats` (bot/stats.py); reported with the turn that wrote it
(`Turn.outcome`) to the runtime's observers, which is how the metrics count endings and feedback
(bot/metrics.py) without reading records back. The JSON is the one earlier versions wrote, so their
records still load.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeGuard

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from bot.state import State

OUTCOME_KIND = "outcome"


class Outcome(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation: str
    episode: int
    channel: str | None = None
    symptom: str | None = None
    topic: str | None = None
    cause: str | None = None
    outcome: str | None = None
    helpful: bool | None = None
    questions_to_cause: int | None = None
    questions: int = 0
    turns: int = 0
    ended_at: float = 0.0

    @classmethod
    def of(cls, state: State, ended_at: float | None = None) -> Outcome:
        return cls(
            conversation=state.id,
            episode=state.episode,
            channel=state.channel,
            symptom=state.symptom,
            topic=state.topic,
            cause=state.cause,
            outcome=state.outcome,
            helpful=state.helpful,
            questions_to_cause=state.questions_to_cause,
            questions=state.questions,
            turns=state.turns,
            ended_at=time.time() if ended_at is None else ended_at,
        )

    @property
    def key(self) -> str:
        return f"{self.conversation}#{self.episode}"


def recorded(state: State | None) -> TypeGuard[State]:
    """Whether a turn that ends in `state` records its episode's outcome."""
    return state is not None and state.outcome is not None and state.phase == "closed"


class Ending(BaseModel):
    """An outcome a turn recorded, and the one recorded before it for the same episode (None: the first)."""

    now: Outcome
    before: Outcome | None = None

    @property
    def first(self) -> bool:
        """The episode ends with this outcome for the first time (or ends again otherwise)."""
        return self.before is None or self.before.outcome != self.now.outcome

    @property
    def rated(self) -> bool:
        """The admin's answer to "was this helpful?" arrived with this turn."""
        return self.now.helpful is not None and (self.before is None or self.before.helpful is None)
