"""Plain-text rendering for the terminal chat and the replay protocol.

`**bold**` markers are kept as-is for replay (machine readers ignore them) and turned into ANSI bold for a
terminal that supports it; console paths and quotes get their own lines so they stand out in a log.
"""

from __future__ import annotations

import re

from bot.events import Reply

_BOLD = re.compile(r"\*\*(.+?)\*\*")


def render_plain(reply: Reply, ansi: bool = False) -> str:
    parts: list[str] = []
    if reply.title and reply.kind in ("question", "resolution", "ticket"):
        parts.append(f"[{reply.title}]")
    parts.append(reply.text)
    if reply.path:
        parts.append(f"Where: {reply.path}")
    if reply.quote:
        parts.append(f'Look for: "{reply.quote}"')
    for i, step in enumerate(reply.steps, 1):
        parts.append(f"  {i}. {step.text}" + (f"\n     ({step.path})" if step.path else ""))
    if reply.after:
        parts.append(reply.after)
    if reply.link:
        parts.append(f"{reply.link_label}: {reply.link}" if reply.link_label else reply.link)
    if reply.ticket is not None:
        parts.append("----- ticket (paste into the Cato support form) -----")
        parts.append(reply.ticket.body)
        parts.append("-----------------------------------------------------")
    text = "\n".join(p for p in parts if p)
    if ansi:
        return _BOLD.sub("\x1b[1m\\1\x1b[0m", text)
    return text
