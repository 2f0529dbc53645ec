"""Reply -> JSON for the browser chat (bot/web/app.js draws it).

Mostly `Reply.model_dump()`: the browser formats `**bold**`, backticks, console paths, quotes and numbered
steps itself (with DOM nodes, never innerHTML). Added here: ready-made download names for the ticket, and
the ticket as the JSON document the "Download .json" button saves.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bot.events import Reply, Ticket, Turn


def ticket_filename(ticket: Ticket, ext: str) -> str:
    stem = "cato-scim-ticket"
    if ticket.symptom:
        stem += "-" + re.sub(r"[^a-z0-9-]+", "-", ticket.symptom.lower()).strip("-")
    return f"{stem}-{time.strftime('%Y%m%d-%H%M')}.{ext}"


def ticket_document(ticket: Ticket) -> dict[str, Any]:
    """The structured ticket without the Markdown body (that is the .md download)."""
    return ticket.model_dump(mode="json", exclude={"body"})


def render_reply(reply: Reply) -> dict[str, Any]:
    out = reply.model_dump(mode="json")
    if reply.ticket is not None:
        out["ticket"]["files"] = {
            "markdown": ticket_filename(reply.ticket, "md"),
            "json": ticket_filename(reply.ticket, "json"),
        }
        out["ticket"]["document"] = ticket_document(reply.ticket)
    return out


def render_turn(turn: Turn) -> dict[str, Any]:
    return {
        "conversation": turn.conversation_id,
        "replies": [render_reply(r) for r in turn.replies],
        "phase": turn.phase,
        "symptom": turn.symptom,
        "cause": turn.cause,
        "probing": turn.probing,
        "asking": turn.asking,
        "started": turn.started,
        "silent": turn.silent,
    }
