"""Our text conventions (bot/events.py) as Adaptive Card text, and the size Teams counts for it.

- `**bold**` is kept (TextBlock markdown supports it) and backticks become bold; `plain` drops both for
  channels without markdown.
- What someone typed is escaped (`user_text`): no link, image, mention or emphasis can come out of it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.render.text import format_path as format_path  # cards.py takes it from here with the rest
from bot.render.text import strip_markup

Element = dict[str, Any]
Block = list[Element]  # elements that should stay on the same card

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
# CommonMark punctuation that can open markup in a TextBlock (links, images, emphasis, code, HTML such as
# Teams' <at> mentions, strikethrough) anywhere, and at the start of a line (headings, lists, quotes, rules):
# escaped with a backslash in user values.
_MARKUP = re.compile(r"([\\`*_\[\]<>~|])")
_LINE_START = re.compile(r"^(\s*)([#+=-]|\d+(?=[.)]))", re.M)
_CODE = re.compile(r"`([^`\n]+)`")
# Plain words for channels without markdown; one definition with the plain-text renderer's.
plain = strip_markup


# ---- measuring -----------------------------------------------------------------------------------


def card_size(card: dict) -> int:
    """Bytes Teams may count for this card: UTF-16 of the JSON as the Bot Connector client sends it."""
    return len(json.dumps(card).encode("utf-16-le"))


def text_size(text: str) -> int:
    return len(text.encode("utf-16-le"))


# ---- text ------------------------------------------------------------------------------------------


def card_markdown(text: str) -> str:
    """Our text conventions -> the TextBlock markdown subset (bold, italic, lists, links)."""
    out: list[str] = []
    pos = 0
    for m in _CODE.finditer(text):
        out.append(text[pos : m.start()])
        inside_bold = "".join(out).count("**") % 2 == 1
        out.append(m.group(1) if inside_bold else f"**{m.group(1)}**")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def user_text(text: str) -> str:
    """A value someone typed (account, UPNs, groups, names, the ticket text), shown as typed: no link,
    image, mention, emphasis or other markup can come out of it."""
    escaped = _MARKUP.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit() else "\\" + m.group(2)), escaped)


def text_block(text: str, **extra: Any) -> Element:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}
