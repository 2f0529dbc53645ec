"""Every sentence the engine and the channels say, by id: the slots a pack's messages file must fill, and
the placeholders code fills in."""

from __future__ import annotations

import string

from pydantic import Field

from knowledge.schema.base import MessageId, Strict
from knowledge.schema.worded import Worded

# Every sentence the engine and the channels say, by id, with the placeholders code fills in. A pack's
# messages file must define each id; its text may use any subset of the placeholders and no others.
MESSAGE_SLOTS: dict[str, frozenset[str]] = {
    k: frozenset(v)
    for k, v in {
        # opening, help, commands
        "greeting": [],
        "help": [],
        "commands": [],
        "restart": [],
        "cancelled": [],
        "closed": [],
        "lost-conversation": [],
        # triage
        "off-topic": [],
        "pick-symptom": [],
        "clarify": [],
        "clarify-unsure": [],
        "clarify-again": [],
        "ask-back": ["options"],
        "flow-start": ["title", "summary"],
        "topic-start": ["title", "summary"],
        "already-known": ["findings"],
        # checks
        "reask": [],
        "reask-answer": [],
        "reask-hint": [],
        "gave-up-check": [],
        "stale-click": [],
        "re-explain": ["title"],
        "complaint": [],
        "complaint-idp": ["idp"],
        "error-recognised": ["source", "text"],
        "error-other-flow": ["source", "text", "title"],
        "idp-title": [],
        "idp-ask": [],
        "idp-reask": [],
        "idp-noted": ["idp"],
        "look-for": ["text"],
        "path": ["path"],
        # resolution
        "cause-found": ["title"],
        "cause-likely": ["title"],
        "as-designed": ["title"],
        "as-designed-close": [],
        "unverified": ["text"],
        "verify": ["text"],
        "fixed-title": [],
        "fixed-ask": [],
        "fixed-yes": [],
        "fixed-no": [],
        "fixed-thanks": [],
        "next-cause": [],
        # escalation
        "escalate-asked": [],
        "escalate-no-cause": [],
        "escalate-not-fixed": [],
        "escalate-support-case": ["title"],
        "escalate-offer": [],
        "skip": [],
        "reask-account": [],
        "reask-upns": [],
        "reask-groups": [],
        "ticket-title": [],
        "ticket-draft-title": [],
        "ticket-draft-missing": ["missing"],
        "ticket-draft-so-far": [],
        "ticket-portal": ["url"],
        "start-over": [],
        # the ticket body
        "ticket.header": [],
        "ticket.not-provided": [],
        "ticket.symptom": [],
        "ticket.topic": [],
        "ticket.cause": [],
        "ticket.cause-confirmed": [],
        "ticket.cause-likely": [],
        "ticket.tried": [],
        "ticket.why": [],
        "ticket.steps": [],
        "ticket.no-steps": [],
        "ticket.from-report": [],
        "ticket.pasted": [],
        "ticket.admin-said": ["text"],
        "ticket.ruled-out": [],
        "ticket.attach": [],
        "ticket.transcript": [],
        # feedback
        "explain-generic": [],
        "idp-explain": [],
        "field-explain": ["field"],
        "field-required": ["field"],
        "aside": [],
        "other-symptom": [],
        "where-console": ["console"],
        "switch-ask": ["title"],
        "switch-yes": [],
        "switch-no": [],
        "none-of-these": [],
        "confirm-yes": [],
        "confirm-no": [],
        "confirm-none": [],
        "where-start": [],
        "ticket.why-asked": ["step"],
        "ticket.why-no-cause": [],
        "ticket.why-not-fixed": ["tried"],
        "ticket.looked-up": [],
        "feedback-ask": [],
        "feedback-yes": [],
        "feedback-no": [],
        "feedback-thanks": [],
        # channels
        "channel-error": [],
        "channel-no-conversation": ["command"],
        "channel-expired": [],
        "channel-undelivered": ["code"],
        "handoff-button": [],
        "handoff-title": [],
        "handoff-intro": ["where"],
        "handoff-sent": ["where"],
        "handoff-body-label": [],
        "handoff-body-hint": [],
        "handoff-no-channel": [],
        "handoff-posted": [],
        "handoff-account-placeholder": [],
        "handoff-upns-hint": [],
        "handoff-groups-hint": [],
        "handoff-account-required": [],
        "handoff-account-too-long": ["max"],
        "handoff-account-secret": [],
        "handoff-upn-invalid": ["value"],
        "handoff-upns-too-many": ["max"],
        "handoff-groups-too-many": ["max"],
        "handoff-group-too-long": ["max"],
        "handoff-body-empty": [],
        "handoff-body-too-long": ["max"],
        "escalation-post-title": [],
        "escalation-raised-by": ["who"],
        "escalation-back-link": [],
        "you-chose": ["label"],
    }.items()
}


class Messages(Strict):
    messages: dict[MessageId, Worded] = Field(min_length=1)
    __worded__ = ()


_FORMATTER = string.Formatter()


def placeholders(text: str) -> set[str]:
    """The {names} a message text uses. Raises ValueError on a malformed template."""
    names: set[str] = set()
    for _, name, spec, conv in _FORMATTER.parse(text):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a plain name (write {{{{ and }}}} for literal braces)")
        if spec or conv:
            raise ValueError(f"placeholder {{{name}}} takes no format spec or conversion")
        names.add(name)
    return names
