"""Adaptive Cards for Microsoft Teams (and the Bot Framework Emulator / Web Chat): `Reply` -> card dicts.

Pure functions, no botbuilder import: `bot/channels/teams.py` wraps the dicts into Bot Framework
attachments. Everything here is plain JSON so the renderer survives a move off botbuilder-python.

- Schema version 1.5, the highest Teams renders (https://adaptivecards.io/schemas/adaptive-card.json).
- Choices become `Action.Submit` buttons whose `data` is `{"scim_help_choice": "<choice id>"}`; Teams
  delivers a click as a message activity with empty text and that dict in `activity.value`. Short labels
  are buttons in an `ActionSet`; long ones (Teams truncates button titles, it does not wrap them) become
  full-width tappable rows (a `Container` whose `selectAction` is the same `Action.Submit`). Each group
  carries an id so `mark_answered` can swap it for the chosen answer once clicked.
- Text follows the conventions of `bot/events.py` (converted in `bot/render/card_text.py`): `**bold**` is
  kept (TextBlock markdown supports it), backticks become bold, one TextBlock per line because a single
  newline does not reliably break a line. The ticket's part of a card is `bot/render/ticket_card.py`.
- Size: Teams refuses a message above 40 KB counted as UTF-16 over the whole payload (older guidance:
  28 KB). Every card is kept under `MAX_CARD_BYTES` (28 KB, measured as UTF-16 of the ASCII-escaped JSON,
  the larger of the two ways to count), which leaves room for the activity envelope; bigger content is
  split over several cards and, beyond `MAX_PARTS` cards, truncated with a note.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from bot.events import Choice, Reply
from bot.render.card_text import Block, Element, card_markdown, card_size, format_path, plain, text_block, text_size, user_text
from bot.render.text import Say, render_plain
from bot.render.ticket_card import ticket_blocks, ticket_facts

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
CHOICE_KEY = "scim_help_choice"
GROUP_PREFIX = "scim-help-choices-"

MAX_CARD_BYTES = 28 * 1024
MAX_TEXT_BYTES = 28 * 1024
MAX_PARTS = 6
BUTTON_LABEL_MAX = 28  # longer labels are rendered as wrapping rows instead of buttons
BUTTONS_PER_SET = 5  # Teams shows at most 6 actions per set; keep one spare


# ---- text ------------------------------------------------------------------------------------------


def _paragraphs(text: str) -> list[Block]:
    """One TextBlock per line; a blank line adds spacing before the next block."""
    blocks: list[Block] = []
    gap = False
    for line in text.split("\n"):
        if not line.strip():
            gap = True
            continue
        el = text_block(card_markdown(line.rstrip()))
        if blocks:
            el["spacing"] = "Medium" if gap else "Small"
        blocks.append([el])
        gap = False
    return blocks


# ---- choices -----------------------------------------------------------------------------------------


def choice_data(choice_id: str) -> dict[str, str]:
    return {CHOICE_KEY: choice_id}


def choice_from_value(value: Any) -> str | None:
    """The choice id carried by a card click (`activity.value`), or None if it is not one of ours."""
    if isinstance(value, dict):
        raw = value.get(CHOICE_KEY)
        if isinstance(raw, str) and raw.strip():
            return raw.strip()[:200]
    return None


def _submit(choice: Choice) -> Element:
    action: Element = {"type": "Action.Submit", "title": choice.label, "data": choice_data(choice.id)}
    if choice.style == "primary":
        action["style"] = "positive"
    elif choice.style == "danger":
        action["style"] = "destructive"
    return action


def _choices_block(choices: list[Choice], group: str) -> Block:
    if all(len(c.label) <= BUTTON_LABEL_MAX for c in choices) and len(choices) <= BUTTONS_PER_SET:
        return [{"type": "ActionSet", "id": group, "actions": [_submit(c) for c in choices], "spacing": "Medium"}]
    rows = [
        {
            "type": "Container",
            "style": "emphasis",
            "selectAction": _submit(c),
            "spacing": "Small",
            "items": [text_block(f"▸ {c.label}", color="Accent")],
        }
        for c in choices
    ]
    return [{"type": "Container", "id": group, "items": rows, "spacing": "Medium"}]


# ---- one reply ----------------------------------------------------------------------------------


def reply_blocks(reply: Reply, *, support_url: str | None = None, index: int = 0, actions: bool = True) -> list[Block]:
    """The card body for one reply, as blocks that can be distributed over several cards."""
    blocks: list[Block] = []
    if reply.title:
        blocks.append([text_block(card_markdown(reply.title), size="Medium", weight="Bolder")])
    blocks += _paragraphs(reply.text)
    if reply.path:
        blocks.append(
            [
                text_block("Where to look", size="Small", isSubtle=True, spacing="Medium"),
                text_block(format_path(reply.path), fontType="Monospace", weight="Bolder", spacing="None"),
            ]
        )
    if reply.quote:
        blocks.append(
            [
                {
                    "type": "Container",
                    "style": "emphasis",
                    "spacing": "Medium",
                    "items": [text_block(reply.quote, fontType="Monospace")],
                }
            ]
        )
    for i, step in enumerate(reply.steps, 1):
        body: list[Element] = [text_block(card_markdown(step.text))]
        if step.path:
            body.append(text_block(format_path(step.path), fontType="Monospace", isSubtle=True, spacing="None"))
        blocks.append(
            [
                {
                    "type": "ColumnSet",
                    "spacing": "Small",
                    "columns": [
                        {"type": "Column", "width": "auto", "items": [text_block(f"**{i}.**", wrap=False)]},
                        {"type": "Column", "width": "stretch", "items": body},
                    ],
                }
            ]
        )
    if reply.after:
        after = _paragraphs(reply.after)
        if after:
            after[0][0]["spacing"] = "Medium"
        blocks += after
    if reply.ticket is not None:
        blocks += ticket_blocks(reply.ticket, reply.link or support_url, reply.link_label)
    elif reply.link:
        title = reply.link_label or reply.link
        blocks.append([{"type": "ActionSet", "spacing": "Medium", "actions": [{"type": "Action.OpenUrl", "title": title, "url": reply.link}]}])
    if actions and reply.choices:
        blocks.append(_choices_block(reply.choices, f"{GROUP_PREFIX}{index}"))
    if blocks and index > 0:
        first = blocks[0][0]
        first["separator"] = True
        first["spacing"] = "Large"
    return blocks


# ---- cards -------------------------------------------------------------------------------------------


def new_card(body: list[Element] | None = None, fallback: str = "") -> dict:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": VERSION,
        "body": list(body or []),
        "msteams": {"width": "Full"},
    }
    if fallback:
        card["fallbackText"] = fallback
    return card


def attachment(card: dict) -> dict:
    return {"contentType": CONTENT_TYPE, "content": card}


def render_reply(reply: Reply, *, support_url: str | None = None) -> list[dict]:
    """One reply -> attachment dicts (normally one; several when the content is too big for one message)."""
    return render_replies([reply], support_url=support_url)


def render_replies(replies: Iterable[Reply], *, support_url: str | None = None, budget: int = MAX_CARD_BYTES) -> list[dict]:
    """Everything one turn says -> as few cards as fit, in order; buttons stay with their question."""
    replies = list(replies)
    blocks: list[Block] = []
    for i, reply in enumerate(replies):
        blocks += reply_blocks(reply, support_url=support_url, index=i)
    fallback = _fallback(replies)
    return [attachment(c) for c in pack(blocks, fallback=fallback, budget=budget)]


def _fallback(replies: list[Reply]) -> str:
    """Short text shown by hosts that cannot render the card (and in some notifications)."""
    main = next((r for r in replies if r.kind != "info"), replies[0] if replies else None)
    if main is None:
        return ""
    return plain(main.title or main.text.split("\n", 1)[0])[:150]


def _els_size(elements: list[Element]) -> int:
    # Matches card_size: json.dumps separates list items with ", " (two characters, four UTF-16 bytes).
    return sum(len(json.dumps(el)) * 2 + 4 for el in elements)


def pack(blocks: list[Block], *, fallback: str = "", budget: int = MAX_CARD_BYTES) -> list[dict]:
    """Distribute blocks over cards no larger than `budget`; split or truncate blocks that are too big."""
    cards: list[dict] = []
    current = new_card(fallback=fallback)
    # Room for the "(continued — part n of m)" line every card may get.
    empty = card_size(current) + _els_size([_continued(MAX_PARTS, MAX_PARTS)])
    used = empty
    queue = list(blocks)
    while queue:
        block = queue.pop(0)
        size = _els_size(block)
        if used + size <= budget:
            current["body"] += block
            used += size
            continue
        if current["body"]:
            cards.append(current)
            current = new_card(fallback=fallback)
            used = empty
            if len(cards) >= MAX_PARTS - 1:
                current = _last_part(current, [block] + queue, budget)
                queue = []
                break
            queue.insert(0, block)
            continue
        # The block alone is too big for an empty card: split it.
        pieces = _split_block(block, budget - empty)
        if len(pieces) == 1 and pieces[0] == block:
            pieces = [_truncate_block(block, budget - empty)]
        queue[:0] = pieces
    if current["body"] or not cards:
        cards.append(current)
    if len(cards) > 1:
        for n, card in enumerate(cards, 1):
            if n > 1:
                card["body"].insert(0, _continued(n, len(cards)))
    # Continuation notes (and rounding) can push a card over: trim the rare one that is.
    return [c if card_size(c) <= budget else _trim_card(c, budget) for c in cards]


def _continued(n: int, total: int) -> Element:
    return text_block(f"(continued — part {n} of {total})", size="Small", isSubtle=True)


def _last_part(card: dict, rest: list[Block], budget: int) -> dict:
    """The final allowed card: what fits, the buttons (so the conversation can go on), and a note."""
    note = text_block("… (message truncated: too long for one Teams message)", isSubtle=True, size="Small")
    choice_blocks = [b for b in rest if b and str(b[0].get("id", "")).startswith(GROUP_PREFIX)]
    reserved = [note] + [el for b in choice_blocks for el in b]
    for block in rest:
        if block in choice_blocks:
            continue
        trial = new_card(card["body"] + block + reserved, fallback=card.get("fallbackText", ""))
        if card_size(trial) > budget:
            room = budget - card_size(new_card(card["body"] + reserved, fallback=card.get("fallbackText", "")))
            if room > 400:
                card["body"] += _truncate_block(block, room)
            break
        card["body"] += block
    card["body"] += reserved
    return card if card_size(card) <= budget else _trim_card(card, budget)


def _split_block(block: Block, budget: int) -> list[Block]:
    if len(block) > 1:
        return [[el] for el in block]
    el = block[0]
    kind = el.get("type")
    if kind == "TextBlock":
        return [[{**el, "text": part}] for part in _split_text(el["text"], budget)]
    if kind == "Container" and len(el.get("items", [])) > 1 and not str(el.get("id", "")).startswith(GROUP_PREFIX):
        items = el["items"]
        half = len(items) // 2
        return [[{**el, "items": items[:half]}], [{**el, "items": items[half:], "spacing": "None"}]]
    if kind == "Container" and len(el.get("items", [])) == 1 and el["items"][0].get("type") == "TextBlock":
        inner = el["items"][0]
        return [[{**el, "items": [{**inner, "text": part}]}] for part in _split_text(inner["text"], budget)]
    if kind == "FactSet" and len(el.get("facts", [])) > 1:
        facts = el["facts"]
        half = len(facts) // 2
        return [[{**el, "facts": facts[:half]}], [{**el, "facts": facts[half:], "spacing": "None"}]]
    return [block]


def _split_text(text: str, budget: int) -> list[str]:
    """Pieces of `text` whose JSON string fits in `budget` bytes (UTF-16), cut at a line or word boundary."""
    limit = max(400, budget - 400)
    pieces: list[str] = []
    rest = text
    while rest:
        n = min(len(rest), limit // 2)
        while n > 50 and text_size(json.dumps(rest[:n])) > limit:
            n = int(n * 0.8)
        if n >= len(rest):
            pieces.append(rest)
            break
        cut = rest.rfind("\n", n // 2, n)
        if cut < 0:
            cut = rest.rfind(" ", n // 2, n)
        if cut <= 0:
            cut = n
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return pieces or [""]


def _truncate_block(block: Block, budget: int) -> Block:
    """Cut the longest strings in the block until its JSON fits."""
    block = copy.deepcopy(block)
    for _ in range(60):
        if card_size(new_card(block)) <= budget:
            return block
        holder, key, value = _longest_string(block)
        if holder is None or len(value) < 20:
            break
        holder[key] = value[: max(10, int(len(value) * 0.6))].rstrip() + "…"
    return [text_block("… (content too long to show)", isSubtle=True)]


def _longest_string(node: Any, best: tuple[Any, Any, str] | None = None) -> tuple[Any, Any, str]:
    best = best or (None, None, "")
    if isinstance(node, dict):
        items: Iterable[tuple[Any, Any]] = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return best
    for key, value in items:
        if isinstance(value, str):
            if key not in ("type", "id", "url", "version", "$schema", CHOICE_KEY) and len(value) > len(best[2]):
                best = (node, key, value)
        else:
            best = _longest_string(value, best)
    return best


def _trim_card(card: dict, budget: int) -> dict:
    """Last resort for a card over budget: shorten its longest strings, then drop trailing content
    (never the choice buttons)."""
    card = copy.deepcopy(card)
    for _ in range(200):
        if card_size(card) <= budget:
            return card
        holder, key, value = _longest_string(card["body"])
        if holder is None or len(value) < 200:
            break
        holder[key] = value[: max(100, int(len(value) * 0.8))].rstrip() + "…"
    body = card["body"]
    keep = [el for el in body if str(el.get("id", "")).startswith(GROUP_PREFIX)]
    rest = [el for el in body if el not in keep]
    note = text_block("… (message truncated: too long for one Teams message)", isSubtle=True, size="Small")
    while rest and card_size({**card, "body": rest + [note] + keep}) > budget:
        rest.pop()
    card["body"] = rest + [note] + keep
    return card


# ---- after a click ---------------------------------------------------------------------------------


def mark_answered(card: dict, choice_id: str) -> dict | None:
    """The card with the clicked choice group replaced by the chosen answer (no buttons left to double
    click), or None when the card holds no such choice."""
    card = copy.deepcopy(card)
    found = _replace_group(card.get("body", []), choice_id)
    return card if found else None


def _replace_group(items: list[Element], choice_id: str) -> bool:
    for i, el in enumerate(items):
        if str(el.get("id", "")).startswith(GROUP_PREFIX):
            label = _label_in(el, choice_id)
            if label is not None:
                items[i] = text_block(f"✅ **{label}**", spacing="Medium", color="Good")
                return True
        for key in ("items", "columns"):
            if isinstance(el.get(key), list) and _replace_group(el[key], choice_id):
                return True
    return False


def _label_in(node: Any, choice_id: str) -> str | None:
    if isinstance(node, dict):
        if node.get("type") == "Action.Submit" and choice_from_value(node.get("data")) == choice_id:
            return str(node.get("title", choice_id))
        for value in node.values():
            found = _label_in(value, choice_id)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _label_in(value, choice_id)
            if found is not None:
                return found
    return None


def has_choices(card: dict) -> bool:
    return _label_any(card.get("body", []))


def _label_any(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("type") == "Action.Submit" and choice_from_value(node.get("data")):
            return True
        return any(_label_any(v) for v in node.values())
    if isinstance(node, list):
        return any(_label_any(v) for v in node)
    return False


# ---- escalation ------------------------------------------------------------------------------------


def render_escalation(
    reply: Reply,
    *,
    support_url: str | None = None,
    raised_by: str | None = None,
    where: str | None = None,
    link: str | None = None,
    budget: int = MAX_CARD_BYTES,
    say: Say,
) -> list[dict]:
    """The ticket as posted to the support team's escalation channel: who, where, a way back, the ticket."""
    title = say("escalation-post-title")
    head: list[Block] = [[text_block(f"🆘 {title}", size="Large", weight="Bolder")]]
    if raised_by or where:
        who = " · ".join(x for x in (f"**{user_text(raised_by)}**" if raised_by else "", user_text(where) if where else "") if x)
        head.append([text_block(say("escalation-raised-by", who=who))])
    if link:
        head.append(
            [{"type": "ActionSet", "actions": [{"type": "Action.OpenUrl", "title": say("escalation-back-link"), "url": link}]}]
        )
    ticket_only = reply.model_copy(update={"choices": [], "text": "", "title": reply.title or "Support ticket"})
    blocks = head + reply_blocks(ticket_only, support_url=support_url, index=1, actions=False)
    return [attachment(c) for c in pack(blocks, fallback=title, budget=budget)]


# ---- plain text ------------------------------------------------------------------------------------


def render_text(reply: Reply, *, support_url: str | None = None) -> str:
    """Plain text for channels that cannot show cards: numbered choices the admin can type back, and a
    ticket's fields before its text (a card would show them as facts)."""
    facts = None if reply.ticket is None else "\n".join(f"{f['title']}: {f['value']}" for f in ticket_facts(reply.ticket, markdown=False))
    return render_plain(reply, markup="strip", choices=True, support_url=support_url, ticket_head=facts, sep="\n\n")


def render_texts(replies: Iterable[Reply], *, support_url: str | None = None, budget: int = MAX_TEXT_BYTES) -> list[str]:
    """A turn as plain-text messages, each under the size budget."""
    out: list[str] = []
    current = ""
    for reply in replies:
        text = render_text(reply, support_url=support_url)
        for piece in _split_text(text, budget) if text_size(text) > budget else [text]:
            joined = f"{current}\n\n{piece}" if current else piece
            if text_size(joined) <= budget:
                current = joined
            else:
                out.append(current)
                current = piece
    if current:
        out.append(current)
    return out[:MAX_PARTS]
