"""Plain text: one rendering of a reply for every surface without cards or Block Kit — the terminal chat,
the replay protocol, Slack's notification `text` and Teams' no-card messages.

It was written three times (here, for Slack and for Teams), and the three drifted: "Where:", "Path:" and
"Where to look:" for the same console path; one showed the support link, one the ticket's fields. Now
the surfaces differ only in what they must: how markup is shown (`markup`), whether choices are listed
for typing back (`choices`), and how parts are separated; the caller escapes for its platform.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from bot.events import Reply

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_CODE = re.compile(r"`([^`\n]+)`")

# A knowledge pack's sentence by id, its {placeholders} filled (Bundle.message, Conversations.say):
# renderers that write a sentence of the domain take it from there, never from code.
Say = Callable[..., str]

# keep: `**bold**` as written (the replay protocol, the terminal, which makes it ANSI bold itself);
# strip: words only (`code` in single quotes), for surfaces that show no markup at all.
Markup = Literal["keep", "strip"]


def strip_markup(text: str) -> str:
    """Our text conventions (bot/events.py) -> plain words."""
    return _CODE.sub(lambda m: f"'{m.group(1)}'", _BOLD.sub(lambda m: m.group(1), text))


def format_path(path: str) -> str:
    """A console path as menus read: "A > B" -> "A › B"."""
    return " › ".join(part.strip() for part in path.split(">") if part.strip())


def render_plain(
    reply: Reply, *, markup: Markup = "keep", choices: bool = False, support_url: str | None = None, ticket_head: str | None = None, sep: str = "\n"
) -> str:
    """The reply as text. `choices` lists the answers numbered, for a surface where the admin types the
    number back; `support_url` is offered with a ticket when the reply carries no link of its own;
    `ticket_head` goes before a ticket's text (a surface without cards shows its fields there)."""
    m = strip_markup if markup == "strip" else (lambda text: text)
    parts: list[str] = []
    if reply.title and reply.kind in ("question", "resolution", "ticket"):
        parts.append(m(reply.title))
    parts.append(m(reply.text))
    if reply.path:
        parts.append(f"Where to look: {format_path(reply.path)}")
    if reply.quote:
        parts.append(f'Look for: "{reply.quote}"')
    for i, step in enumerate(reply.steps, 1):
        parts.append(f"{i}. {m(step.text)}" + (f"\n   ({format_path(step.path)})" if step.path else ""))
    if reply.after:
        parts.append(m(reply.after))
    if reply.ticket is not None and ticket_head:
        parts.append(ticket_head)
    if reply.ticket is not None and reply.ticket.body:
        parts.append("Ticket text to copy:\n" + reply.ticket.body)
    link = reply.link or (support_url if reply.ticket is not None else None)
    if link and link not in reply.text:
        parts.append(f"{reply.link_label or 'Support portal'}: {link}")
    if choices and reply.choices:
        parts.append("Reply with one of: " + "; ".join(f"{i}) {c.label}" for i, c in enumerate(reply.choices, 1)))
    return sep.join(p for p in parts if p.strip())
