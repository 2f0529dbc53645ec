"""The channel-neutral language spoken between adapters and the engine.

An adapter turns whatever its platform delivered into one `Incoming`; the engine answers with one `Turn`
holding a list of `Reply` objects; a renderer turns each `Reply` into Block Kit, an Adaptive Card, terminal
text or web JSON. Nothing in here knows a platform.

Text conventions inside `Reply.text` (kept tiny so every renderer can honour them):
- `**bold**` for emphasis,
- backticks for literal console items (a field name, an error code),
- plain line breaks.
Console paths and quoted error messages travel in their own fields so each renderer can format them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from bot.outcome import Ending
from bot.text import valid_unicode

Channel = Literal["slack", "teams", "web", "terminal", "replay", "bench", "test"]

Phase = Literal["triage", "clarifying", "checking", "resolving", "escalating", "closed", "off-topic"]

AskingField = Literal["account", "idp", "upns", "groups"]


class Incoming(BaseModel):
    """One user turn, normalised."""

    channel: Channel
    # Channel-scoped and stable for the life of a thread/DM/web session: the store key.
    conversation_id: str
    user_id: str | None = None
    # Exactly one of text/choice is normally set; a button click carries `choice` (the choice id).
    text: str | None = None
    choice: str | None = None
    # True for DMs, mentions, slash commands, web and terminal: the user addressed the bot and gets an
    # answer even when the text is off-topic. False for ambient helpdesk-channel messages: the bot speaks
    # only when it is confident the message is a SCIM provisioning problem, or when it already owns the
    # thread.
    directed: bool = True
    # Delivery keys (a platform's event id, a message's timestamp): a message whose keys were seen before
    # is a redelivery and gets a silent, `duplicate` turn. Claimed together with the conversation's lock,
    # in the same store round trip.
    once: tuple[str, ...] = ()
    # Records (kind, key, value) the channel keeps beside the conversation, such as "this user's latest
    # conversation in this channel": written with the conversation's state, in the same store round trip,
    # when the bot answers (a silent turn writes none).
    remember: tuple[tuple[str, str, str], ...] = ()

    @field_validator("conversation_id", "user_id", "text", "choice")
    @classmethod
    def _valid_unicode(cls, v: str | None) -> str | None:
        """Lone surrogates (JSON allows `"\\ud800"`) cannot be stored, logged or sent on as UTF-8: they
        become U+FFFD here, once, instead of failing wherever the text goes next."""
        return v if v is None else valid_unicode(v)

    @field_validator("once")
    @classmethod
    def _valid_keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(valid_unicode(k) for k in v)  # store keys, from platform ids that are JSON strings too

    @field_validator("remember")
    @classmethod
    def _valid_records(cls, v: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, str, str], ...]:
        return tuple((valid_unicode(kind), valid_unicode(key), valid_unicode(data)) for kind, key, data in v)


class Choice(BaseModel):
    id: str
    label: str
    style: Literal["primary", "danger"] | None = None


ReplyKind = Literal[
    "greeting",  # welcome / help text
    "clarify",  # which symptom do you mean?
    "question",  # a playbook check or a ticket-field question
    "resolution",  # the steps that fix a cause
    "ticket",  # the prefilled support ticket
    "info",  # acknowledgement, notes, re-asks
    "off-topic",  # polite pointer away
    "closing",  # feedback question / goodbye
]


class Step(BaseModel):
    text: str
    path: str | None = None


class TicketStep(BaseModel):
    check: str
    answer: str


# What a ticket without the pack's labels shows (Ticket.label).
TICKET_LABEL_DEFAULTS = {
    "account": "Account", "idp": "Identity provider", "upns": "Affected UPNs", "groups": "IdP groups",
    "symptom": "Symptom", "topic": "Reported problem", "cause": "Suspected cause", "why": "Why escalated",
    "steps": "Troubleshooting steps taken", "ruled_out": "Causes ruled out", "attach": "Please attach",
}


class Ticket(BaseModel):
    """The support ticket prefilled from the conversation (see bot/ticket.py for how it is built)."""

    account: str | None = None
    idp: str | None = None  # display name ("Microsoft Entra ID")
    idp_id: str | None = None  # pack id ("entra")
    upns: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    symptom: str | None = None
    topic: str | None = None  # a topic beyond the playbook, reported instead of a symptom
    symptom_title: str | None = None  # the symptom's or the topic's title
    cause: str | None = None
    cause_title: str | None = None
    steps: list[TicketStep] = Field(default_factory=list)
    ruled_out: list[str] = Field(default_factory=list)
    resolution_tried: list[str] = Field(default_factory=list)
    why: str | None = None  # why it was escalated, in plain words
    attachments: list[str] = Field(default_factory=list)  # what to attach: the pack's list, then the IdP's screens
    # Every heading and field label of the ticket, from the pack (bot/ticket.py TICKET_LABELS): each view of
    # the ticket — Markdown, Slack, Teams, web — shows these words and no others.
    labels: dict[str, str] = Field(default_factory=dict)

    def label(self, key: str, default: str | None = None) -> str:
        """The heading or field label `key` as the pack names it; for a ticket built without the pack's
        labels (by hand, or before they existed), `default` or the plain English one."""
        return self.labels.get(key) or default or TICKET_LABEL_DEFAULTS[key]
    transcript: list[str] = Field(default_factory=list)
    body: str = ""  # Markdown, ready to paste into the Cato support form


class Reply(BaseModel):
    kind: ReplyKind
    text: str
    title: str | None = None
    # A console path in the playbook's `A > B > C` form, shown formatted by each renderer.
    path: str | None = None
    # An exact message the admin should look for (error text), shown quoted.
    quote: str | None = None
    steps: list[Step] = Field(default_factory=list)
    # Shown after the steps (how to verify, caveats): what an admin reads once the steps are done.
    after: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    ticket: Ticket | None = None
    # A link to offer beside the text (the support portal): each renderer shows it its own way.
    link: str | None = None
    link_label: str | None = None


class Turn(BaseModel):
    """Everything the engine says after one incoming message, plus where the conversation now stands."""

    conversation_id: str
    replies: list[Reply] = Field(default_factory=list)
    phase: Phase
    symptom: str | None = None
    # A topic beyond the playbook being walked instead of a symptom (knowledge pack `topics:`).
    topic: str | None = None
    probing: str | None = None
    cause: str | None = None
    asking: AskingField | None = None
    ticket: Ticket | None = None
    # True when the bot decided to say nothing (ambient, not a SCIM problem): adapters post nothing.
    silent: bool = False
    # True when the message was a redelivery of one already handled (see Incoming.once); also silent.
    duplicate: bool = False
    # True when this turn started a new conversation (adapters may want to thread or greet differently).
    started: bool = False
    # The episode's outcome when this turn recorded it (the episode closed, or its feedback came): for the
    # runtime's observers (metrics), not for channels.
    ending: Ending | None = None
