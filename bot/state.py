"""What the engine remembers about one conversation. Serialised as JSON into the store after every turn,
so a restart resumes exactly where the conversation was."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from bot.events import Phase
from bot.redact import mask_upns

SCHEMA_VERSION = 1


class Finding(BaseModel):
    """One check answered: asked and answered, or read from the admin's own report."""

    check: str
    answer: str
    finding: str
    source: Literal["asked", "report", "signature"]
    # The admin's words when the answer came as free text (already scrubbed of secrets; UPNs masked).
    said: str | None = None

    @field_validator("said")
    @classmethod
    def _no_upns(cls, v: str | None) -> str | None:
        return v if v is None else mask_upns(v)


class Pending(BaseModel):
    """What the bot is waiting for."""

    kind: Literal["check", "idp", "field", "fixed", "feedback", "clarify"]
    id: str | None = None  # check id / field id
    reasks: int = 0
    # What to ask after the IdP question is answered (a check, or the resolution of a cause).
    then: str | None = None


class Line(BaseModel):
    who: Literal["admin", "bot"]
    # UPNs go into the ticket's UPN field only: in a stored transcript line they are masked
    # (bot.redact.mask_upns), whoever builds the line.
    text: str
    at: float = Field(default_factory=time.time)

    @field_validator("text")
    @classmethod
    def _no_upns(cls, v: str) -> str:
        return mask_upns(v)


class State(BaseModel):
    version: int = SCHEMA_VERSION
    id: str
    channel: str
    episode: int = 1  # bumps on "start over": outcomes are recorded per episode
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    turns: int = 0

    phase: Phase = "triage"
    pending: Pending | None = None
    symptom: str | None = None
    clarify: list[str] = Field(default_factory=list)
    idp: str | None = None

    findings: list[Finding] = Field(default_factory=list)
    cause: str | None = None
    cause_confirmed: bool = False
    tried: list[str] = Field(default_factory=list)  # causes whose resolution did not fix it
    questions: int = 0  # check questions asked
    questions_to_cause: int | None = None

    account: str | None = None
    upns: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # ticket fields the admin chose not to give
    escalation_reason: str | None = None

    outcome: Literal["resolved", "escalated", "cancelled", "off-topic"] | None = None
    helpful: bool | None = None
    transcript: list[Line] = Field(default_factory=list)

    def finding_for(self, check_id: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check_id), None)
