"""The one reading of one message: what the engine decides on. Computed once per turn by
`bot.understand.Reader.read(text, context)`; the engine parses no text itself.

This module is the contract between understanding (bot/understand/) and the dialogue (bot/engine/):
plain frozen dataclasses, no behaviour beyond small conveniences, so either side can change its insides
without touching the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# What the message does in the conversation.
# - report: describes a problem (an opening message, or a new problem mid-conversation)
# - answer: answers the pending prompt (see Reading.reply)
# - question: asks about the current step ("where is that?", "what does that mean?", "do I need a role?")
# - complaint: a complaint or a correction ("those are Entra menus, I said OneLogin", "there is no such menu")
# - info: new information about the problem instead of an answer ("btw the interns group is nested")
# - fixed: it works now / thanks, that was it
# - still-broken: it did not help / same problem
# - skip: "skip", "n/a", "none", "not sure" where a ticket field is asked
# - human: wants a person, support, a ticket (also surfaced as the `escalate` command)
# - restart: start over (also surfaced as the `restart` command)
# - aside: off-topic chatter inside a conversation
# - unclear: none of the above could be told
Act = Literal[
    "report", "answer", "question", "complaint", "info", "fixed", "still-broken",
    "skip", "human", "restart", "aside", "unclear",
]

Command = Literal["restart", "help", "escalate", "ticket", "cancel"]

PromptKind = Literal["check", "idp", "field", "fixed", "helpful", "clarify", "confirm"]


@dataclass(frozen=True)
class Option:
    """One answer the pending prompt offers, in the order the renderer numbers them (1-based)."""

    id: str  # the choice id's last part: a check's answer id, an IdP id, a symptom id, "yes"/"no"
    label: str
    # The answer's kind where it has one (a check answer: yes / no / unsure / other), so "yep" maps onto it.
    kind: str | None = None
    # Free-text phrasings that mean this option (a check answer's `says`).
    says: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSpec:
    """What the bot is waiting for, as the reader needs to know it."""

    kind: PromptKind
    id: str | None = None  # check id, ticket field id ("account", "idp", "upns", "groups")
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Context:
    pending: PromptSpec | None = None
    symptom: str | None = None
    topic: str | None = None
    idp: str | None = None
    # Checks whose answer could still be found anywhere in the text (the current symptom's open checks).
    open_checks: tuple[str, ...] = ()
    # DM, mention, slash command, web, terminal (True) vs an ambient helpdesk-channel message (False).
    addressed: bool = True


@dataclass(frozen=True)
class SymptomScore:
    symptom: str
    score: float


@dataclass(frozen=True)
class Evidence:
    """Something in the text that points at a cause or a topic."""

    cause: str | None
    topic: str | None
    via: Literal["signature", "error-code", "statement", "setting"]
    matched: str  # the exact catalogue string or the phrase that matched
    source: str | None = None  # where such a string appears ("Entra provisioning logs")
    error: str | None = None  # the error catalogue entry's id, when it came from one
    rules_out: bool = False  # a plain statement against the cause ("we have plenty of licences")


@dataclass(frozen=True)
class CheckAnswer:
    check: str
    answer: str
    via: Literal["choice", "number", "label", "text", "report"]
    confidence: float
    said: str | None = None


@dataclass(frozen=True)
class Entities:
    idp: str | None = None  # the pack's IdP id
    idp_named: str | None = None  # the IdP as the admin wrote it ("JumpCloud")
    upns: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    account: str | None = None  # account name and/or number, normalised ("Contoso (12345)")
    attribute: str | None = None  # an attribute named ("department", "surname")


@dataclass(frozen=True)
class Reply:
    """The reply to the pending prompt, when the message is one."""

    option: str | None = None  # the option recognised (an Option.id), when sure
    # A ticket field's value, normalised: str for account / idp, list[str] for upns / groups.
    value: str | tuple[str, ...] | None = None
    # Unsure between options: ask back in one line ("Do you mean: it shows an error?").
    maybe: tuple[str, ...] = ()
    via: Literal["choice", "number", "label", "text", "model", "none"] = "none"


@dataclass(frozen=True)
class Reading:
    text: str  # the message, normalised once (secrets already scrubbed)
    in_domain: bool
    domain_score: float
    symptoms: tuple[SymptomScore, ...] = ()  # distribution, likeliest first
    symptom: str | None = None  # set only when confident
    topic: str | None = None
    # Confident enough to speak in an ambient channel.
    confident: bool = False
    evidence: tuple[Evidence, ...] = ()
    answers: tuple[CheckAnswer, ...] = ()  # answers to open checks found anywhere in the text
    reply: Reply | None = None
    entities: Entities = field(default_factory=Entities)
    commands: tuple[Command, ...] = ()
    act: Act = "unclear"
    act_confidence: float = 0.0

    @property
    def cause(self) -> str | None:
        """The cause the text pins, if any (first evidence that confirms one)."""
        return next((e.cause for e in self.evidence if e.cause and not e.rules_out), None)
