"""The support ticket on an Adaptive Card: its facts, the steps and findings, the text to paste into the
support form, and the link to open a case. What the admin typed is shown as typed (`user_text`)."""

from __future__ import annotations

from bot.events import Ticket
from bot.render.card_text import Block, Element, text_block, user_text


def ticket_facts(ticket: Ticket, *, markdown: bool = True) -> list[dict[str, str]]:
    none = "—"
    show = user_text if markdown else str
    facts = [
        {"title": ticket.label("account"), "value": show(ticket.account) if ticket.account else none},
        {"title": ticket.label("idp"), "value": show(ticket.idp) if ticket.idp else none},
        {"title": ticket.label("upns"), "value": show(", ".join(ticket.upns)) if ticket.upns else none},
        {"title": ticket.label("groups"), "value": show(", ".join(ticket.groups)) if ticket.groups else none},
        {"title": ticket.label("topic" if ticket.topic else "symptom"), "value": ticket.symptom_title or ticket.symptom or none},
        {"title": ticket.label("cause", "Cause"), "value": ticket.cause_title or "not identified"},
    ]
    if ticket.why:
        facts.append({"title": ticket.label("why"), "value": ticket.why})
    return facts


def _ticket_section(title: str, items: list[str], numbered: bool = False) -> Block:
    """A heading and a list, as the ticket's Markdown has them, but rendered."""
    # Steps and findings carry what the admin typed: each item as text, never links or mentions; the list
    # markers stay markup, so the card shows a list (escaped, they ran into one line).
    lines = [f"{i}. {user_text(item)}" if numbered else f"- {user_text(item)}" for i, item in enumerate(items, 1)]
    return [
        text_block(title, weight="Bolder", spacing="Medium"),
        text_block("\n".join(lines), spacing="Small"),
    ]


def ticket_blocks(ticket: Ticket, support_url: str | None, link_label: str | None = None) -> list[Block]:
    blocks: list[Block] = [[{"type": "FactSet", "facts": ticket_facts(ticket), "spacing": "Medium"}]]
    if ticket.steps:
        blocks.append(_ticket_section(ticket.label("steps"), [f"{s.check}: {s.answer}" for s in ticket.steps], numbered=True))
    if ticket.ruled_out:
        blocks.append(_ticket_section(ticket.label("ruled_out"), ticket.ruled_out))
    if ticket.attachments:
        blocks.append(_ticket_section(ticket.label("attach"), ticket.attachments))
    if ticket.body:
        blocks.append([text_block("Ticket text — copy this into the support form:", weight="Bolder", spacing="Medium")])
        lines = [line for line in ticket.body.split("\n")]
        items: list[Element] = []
        gap = False
        for line in lines:
            if not line.strip():
                gap = True
                continue
            # The text to paste into the support form, as it will be pasted: it holds what the admin typed.
            el = text_block(user_text(line.rstrip()), fontType="Monospace", size="Small", spacing="Small" if gap else "None")
            items.append(el)
            gap = False
        blocks.append([{"type": "Container", "style": "emphasis", "spacing": "Small", "items": items}])
    if support_url:
        blocks.append(
            [
                {
                    "type": "ActionSet",
                    "spacing": "Medium",
                    "actions": [{"type": "Action.OpenUrl", "title": link_label or "Support portal", "url": support_url}],
                }
            ]
        )
    return blocks
