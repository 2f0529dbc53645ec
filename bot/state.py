"""What the engine remembers about one conversation. Serialised as JSON into the store after every turn,
so a restart resumes exactly where the conversation was."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from bot.events import Phase
from bot.redact import mask_upns

# 2: typed continuations (`Then`) instead of "check:<id>" strings, topics, the ask-back prompt. A version 1
# state still loads: its string continuations are read into `Then` below.
SCHEMA_VERSION = 2


class Finding(BaseModel):
    """One check answered: asked and answered, or read from the admin's own report."""

    check: str
    answer: str
    finding: str
    # asked: answered to the question; report: read from a message; signature: a pasted error;
    # graph: looked up in the tenant (bot/graph), with `ref` naming the log entry or job it came from.
    source: Literal["asked", "report", "signature", "graph"]
    # The admin's words when the answer came as free text (already scrubbed of secrets; UPNs masked).
    said: str | None = None
    ref: str | None = None

    @field_validator("said")
    @classmethod
    def _no_upns(cls, v: str | None) -> str | None:
        return v if v is None else mask_upns(v)


class Pin(BaseModel):
    """A cause pinned by a pasted error or a plain statement that no check of the flow stands for."""

    cause: str
    matched: str
    source: str | None = None

    @field_validator("matched")
    @classmethod
    def _no_upns(cls, v: str) -> str:
        return mask_upns(v)


class Then(BaseModel):
    """What to do once the prompt in front of it is answered (the IdP question, an ask-back)."""

    kind: Literal["check", "cause", "field", "advance"]
    id: str | None = None


class Pending(BaseModel):
    """What the bot is waiting for: one prompt kind of bot/engine/prompts.py."""

    kind: Literal["check", "idp", "field", "fixed", "feedback", "clarify", "confirm", "switch"]
    id: str | None = None  # check id / field id; for "switch", the flow offered
    reasks: int = 0
    then: Then | None = None
    # "confirm": the option ids the last reply might have meant ("Do you mean: …?"), and the prompt they
    # belong to (kind "check" with its id, or "fixed").
    maybe: list[str] = Field(default_factory=list)
    of: Pending | None = None

    @field_validator("then", mode="before")
    @classmethod
    def _legacy_then(cls, v: object) -> object:
        if isinstance(v, str):  # version 1: "check:<id>", "cause:<id>", "field"
            kind, _, ident = v.partition(":")
            return {"kind": kind if kind in ("check", "cause", "field") else "advance", "id": ident or None}
        return v


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
    # A topic beyond the playbook (knowledge pack `topics:`), walked like a symptom; set instead of `symptom`.
    topic: str | None = None
    clarify: list[str] = Field(default_factory=list)
    idp: str | None = None
    # The IdP as the admin named it ("JumpCloud"), for the ticket; `idp` is the pack's id ("other").
    idp_named: str | None = None

    findings: list[Finding] = Field(default_factory=list)
    pinned: list[Pin] = Field(default_factory=list)
    # Checks already looked up in the tenant (bot/graph) in this episode: looked up once, then asked.
    looked: list[str] = Field(default_factory=list)
    cause: str | None = None
    cause_confirmed: bool = False
    tried: list[str] = Field(default_factory=list)
    # The other symptoms were offered once, after every cause of the first was ruled out or tried.
    repicked: bool = False  # causes whose resolution did not fix it
    questions: int = 0  # check questions asked
    questions_to_cause: int | None = None

    account: str | None = None
    upns: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # ticket fields the admin chose not to give
    escalation_reason: str | None = None

    # "answered": the finding is that Cato works as designed (nothing to fix, no ticket unless asked).
    outcome: Literal["resolved", "answered", "escalated", "cancelled", "off-topic"] | None = None
    helpful: bool | None = None
    transcript: list[Line] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        """An episode is under way: every reply belongs to it. Closed or off-topic, only a new problem (or
        the feedback answer) starts something; channels ask this too, to know who a thread reply is for."""
        return self.phase not in ("closed", "off-topic")

    @property
    def flow(self) -> str | None:
        """The symptom or topic being walked."""
        return self.topic or self.symptom

    def finding_for(self, check_id: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check_id), None)
