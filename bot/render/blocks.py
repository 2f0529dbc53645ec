"""Block Kit rendering for Slack: pure functions from the engine's `Reply` to blocks + fallback text.

Nothing here does I/O. `bot/channels/slack/` decides where a message goes; this module decides what it
looks like, and guarantees it fits Slack's Block Kit limits (docs.slack.dev/reference/block-kit):

- at most 50 blocks in a message, 100 in a modal;
- section text 3000 characters, section fields at most 10 × 2000, header text 150, context at most 10
  elements;
- actions blocks at most 25 elements; button text 75, value 2000, url 3000; action_id and block_id 255;
- modal title / submit / close 24, private_metadata 3000, plain-text input at most 3000 characters, input
  label 2000, placeholder 150.

Anything longer is cut at a line or word boundary and marked with "…"; texts longer than one section are
spread over several sections first. Text is escaped for mrkdwn (`&`, `<`, `>`), and the engine's
`**bold**` becomes Slack's `*bold*`.

User-provided values (an account name, UPNs, groups, the ticket text, anything an admin typed) must never
become links or mentions in a channel — least of all in the escalation post the helpdesk reads:
- `&`, `<`, `>` are escaped everywhere, the notification fallback `text` included, so no `<!channel>`,
  `<@U…>` or `<https://…|label>` can be written by a user;
- every mrkdwn text object is `verbatim`: Slack does not turn bare URLs, #channel names or @mentions
  into links (our own links and mentions are written explicitly, `<url|label>`, `<@U…>`, `<#C…>`);
- `user_text` also breaks a Markdown link's `](` and a URL's `://` with an invisible space, so no client
  renders one as a link.

Interactive elements carry what the adapter needs to route a click without trusting anything else:
- every engine choice is a button with `value` = the choice id and `action_id` = `scim:c:<reply>:<n>`
  (unique within the message, so `slack-action:{ts}:{action_id}` identifies one button);
- the actions block's `block_id` is `scim:<reply>:<n>|<conversation id>`, so clicks on ephemeral messages
  (which have no thread) still find their conversation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.events import Choice, Reply, Ticket
from bot.render.text import Say, render_plain

Block = dict[str, Any]

# ---- limits (Slack Block Kit reference) --------------------------------------------------------------
MAX_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 3000
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
ACTION_ID = 255
BLOCK_ID = 255
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
INPUT_MAX = 3000
INPUT_LABEL = 2000
PLACEHOLDER = 150
# The top-level `text` of a message is only the notification / accessibility fallback when blocks are
# present; Slack accepts far more, but nobody reads more than this in a notification.
FALLBACK_TEXT = 3000
# Keep a rendered reply's interactive part bounded: 4 actions blocks = 100 buttons.
MAX_ACTIONS_BLOCKS = 4

ELLIPSIS = "…"

# action_id prefixes the adapter listens for.
CHOICE_PREFIX = "scim:c:"
HANDOFF_PREFIX = "scim:handoff:"
LINK_PREFIX = "scim:link:"
ESCALATION_CALLBACK = "scim_escalation"

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
# What we write inside <…> ourselves: Slack user/channel ids and a permalink Slack gave us.
_SLACK_ID = re.compile(r"^[UWCDG][A-Z0-9]{1,30}$")
_PERMALINK = re.compile(r"^https://[^\s<>|]+$")
# An escaped entity (&amp; &lt; &gt;) cut short at the end of a string; matches "" when there is none.
_PARTIAL_ENTITY = re.compile(r"(?:&[a-z]{0,3})?\Z")


@dataclass
class Message:
    """One Slack message: blocks plus the plain `text` fallback used for notifications."""

    blocks: list[Block]
    text: str


# ---- text helpers ------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ZWSP = "\u200b"


def user_text(text: str) -> str:
    """A value a user typed, safe in mrkdwn and in a notification: escaped, and no Markdown link
    (`[label](url)`) or bare URL left for any client to render as a link."""
    return escape(text).replace("](", "]" + _ZWSP + "(").replace("://", ":" + _ZWSP + "//")


def mrkdwn_object(text: str) -> dict[str, Any]:
    """A mrkdwn text object that Slack renders as written: no automatic links, channel names or mentions."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def mrkdwn(text: str) -> str:
    """Engine text (`**bold**`, backticks, line breaks) as Slack mrkdwn."""
    return _BOLD.sub(lambda m: f"*{m.group(1).strip()}*", escape(text))


def plain(text: str) -> str:
    """Engine text without markup, for plain_text objects and the fallback `text`."""
    return _BOLD.sub(r"\1", text)


def clip(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, ending in "…"; prefers a line or word boundary and never
    leaves half an HTML entity (`&am…`) behind."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    cut = text[: limit - 1]
    boundary = max(cut.rfind("\n"), cut.rfind(" "))
    if boundary >= (limit - 1) * 0.8:
        cut = cut[:boundary]
    cut = _PARTIAL_ENTITY.sub("", cut).rstrip()
    return cut + ELLIPSIS


def split_text(text: str, limit: int) -> list[str]:
    """Split text into chunks of at most `limit` characters at line boundaries (long lines at words)."""
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            if cut < limit * 0.5:
                cut = limit - len(_PARTIAL_ENTITY.search(line[:limit]).group(0))  # type: ignore[union-attr]
            head, line = line[:cut], line[cut:].lstrip(" ")
            if current:
                chunks.append(current)
                current = ""
            chunks.append(head)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current)
    return chunks


# ---- block builders ----------------------------------------------------------------------------------


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn_object(clip(text, SECTION_TEXT) or ELLIPSIS)}


def sections(text: str, max_sections: int = 8) -> list[Block]:
    """Long mrkdwn text over several sections (each within the section limit), then cut."""
    chunks = split_text(text, SECTION_TEXT)
    if len(chunks) > max_sections:
        chunks = chunks[:max_sections]
        chunks[-1] = clip(chunks[-1] + " " + ELLIPSIS * 2, SECTION_TEXT)
    return [section(c) for c in chunks if c.strip()]


def context(*texts: str) -> Block:
    elements = [mrkdwn_object(clip(t, CONTEXT_TEXT)) for t in texts if t][:CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements or [mrkdwn_object(" ")]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(plain(text), HEADER_TEXT) or " ", "emoji": True}}


def code_blocks(text: str, max_sections: int = 6) -> list[Block]:
    """`text` as preformatted section(s). Fence lines inside the text would end Slack's code block early,
    so they are dropped (the lines between them stay)."""
    lines = [ln for ln in text.split("\n") if ln.strip() != "```" and not re.fullmatch(r"```[A-Za-z0-9_+-]*", ln.strip())]
    body = escape("\n".join(lines).replace("```", "ˋˋˋ"))
    fence = 8  # "```\n" + "\n```"
    chunks = split_text(body, SECTION_TEXT - fence)
    if len(chunks) > max_sections:
        chunks = chunks[:max_sections]
        chunks[-1] = clip(chunks[-1], SECTION_TEXT - fence - 2) + "\n" + ELLIPSIS
    return [section(f"```\n{c}\n```") for c in chunks if c.strip()]


def button(text: str, action_id: str, *, value: str | None = None, url: str | None = None, style: str | None = None) -> Block:
    b: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(plain(text), BUTTON_TEXT) or "…", "emoji": True},
        "action_id": action_id[:ACTION_ID],
    }
    if value is not None:
        b["value"] = value[:BUTTON_VALUE]
    if url is not None:
        b["url"] = url[:BUTTON_URL]
    if style in ("primary", "danger"):
        b["style"] = style
    return b


def block_id(key: str, conversation_id: str | None) -> str:
    """`key` alone, or `key|conversation` when the conversation fits in a block_id."""
    if conversation_id and len(key) + 1 + len(conversation_id) <= BLOCK_ID:
        return f"{key}|{conversation_id}"
    return key[:BLOCK_ID]


def conversation_from_block_id(value: str | None) -> str | None:
    if not value or "|" not in value:
        return None
    return value.split("|", 1)[1] or None


def choice_buttons(choices: Iterable[Choice], key: str, conversation_id: str | None) -> list[Block]:
    """Engine choices as buttons, 25 per actions block. A choice id that would not survive Slack's value
    limit intact is left out rather than cut (a cut id would be a different, wrong answer)."""
    buttons = [
        button(c.label, f"{CHOICE_PREFIX}{key}:{i}", value=c.id, style=c.style)
        for i, c in enumerate(choices)
        if c.id and len(c.id) <= BUTTON_VALUE
    ]
    out = []
    for n in range(0, min(len(buttons), ACTIONS_ELEMENTS * MAX_ACTIONS_BLOCKS), ACTIONS_ELEMENTS):
        out.append(
            {"type": "actions", "block_id": block_id(f"scim:{key}:{n // ACTIONS_ELEMENTS}", conversation_id), "elements": buttons[n : n + ACTIONS_ELEMENTS]}
        )
    return out


def path_context(path: str) -> Block:
    return context(f"*Path:* `{escape(path)}`")


def blockquote(text: str) -> str:
    return "\n".join("&gt; " + line if line.strip() else "&gt;" for line in escape(text).split("\n"))


def cap_blocks(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[Block]:
    """At most `limit` blocks; when cutting, the interactive tail (actions) is kept and a note marks the
    cut."""
    if len(blocks) <= limit:
        return blocks
    tail: list[Block] = []
    for b in reversed(blocks):
        if b.get("type") != "actions" or len(tail) >= limit - 2:
            break
        tail.insert(0, b)
    head = blocks[: len(blocks) - len(tail)]
    keep = limit - len(tail) - 1
    return head[:keep] + [context("_" + ELLIPSIS + " shortened: the rest did not fit in one Slack message._")] + tail


# ---- replies -----------------------------------------------------------------------------------------


def render_reply(
    reply: Reply,
    *,
    key: str = "0",
    conversation_id: str | None = None,
    support_url: str | None = None,
    portal_label: str = "Support portal",
    handoff: bool = False,
    handoff_label: str = "Review & send",
) -> list[Block]:
    """One engine reply as blocks (at most 50).

    `handoff` adds the "Review & send to helpdesk" button to a ticket; `support_url` adds a link button to
    the support portal. `key` makes action and block ids unique when several replies share a message.
    """
    blocks: list[Block] = []
    kind = reply.kind
    if kind == "ticket":
        blocks.append(header(reply.title or "Support ticket"))
        if reply.text:
            blocks += sections(mrkdwn(reply.text))
        if reply.ticket is not None:
            t = reply.ticket
            fields = ticket_fields(t)
            if fields:
                blocks.append({"type": "section", "fields": fields})
            # The ticket rendered (why, steps, what was ruled out, what to attach), then the text to copy.
            if t.why:
                blocks += sections(f"*{escape(t.label('why'))}:* {user_text(t.why)}")
            if t.steps:
                lines = [f"{i}. *{user_text(st.check)}:* {user_text(st.answer)}" for i, st in enumerate(t.steps, 1)]
                blocks += sections(f"*{escape(t.label('steps'))}*\n" + "\n".join(lines), max_sections=4)
            if t.ruled_out:
                blocks += sections(f"*{escape(t.label('ruled_out'))}*\n" + "\n".join(f"• {user_text(c)}" for c in t.ruled_out))
            if t.attachments:
                blocks += sections(f"*{escape(t.label('attach'))}*\n" + "\n".join(f"• {user_text(a)}" for a in t.attachments))
            if t.body:
                blocks += code_blocks(t.body)
    else:
        text = mrkdwn(reply.text)
        if reply.title and kind in ("question", "resolution"):
            text = f"*{escape(plain(reply.title))}*\n{text}"
        blocks += sections(text)
        if reply.path:
            blocks.append(path_context(reply.path))
        if reply.quote:
            blocks.append(section(blockquote(reply.quote)))
        if reply.steps:
            blocks += sections(steps_text(reply), max_sections=10)
        if reply.after:
            blocks += sections(mrkdwn(reply.after))

    interactive: list[Block] = []
    if kind == "ticket":
        extra: list[Block] = []
        if handoff:
            extra.append(button(handoff_label, f"{HANDOFF_PREFIX}{key}", value="handoff", style="primary"))
        if support_url:
            extra.append(button(portal_label, f"{LINK_PREFIX}{key}", url=support_url))
        if extra:
            interactive.append({"type": "actions", "block_id": block_id(f"scim:{key}:t", conversation_id), "elements": extra})
    interactive += choice_buttons(reply.choices, key, conversation_id)
    return cap_blocks(blocks + interactive)


def steps_text(reply: Reply) -> str:
    lines = []
    for i, step in enumerate(reply.steps, 1):
        line = f"{i}. {mrkdwn(step.text)}"
        if step.path:
            line += f"\n      _Path:_ `{escape(step.path)}`"
        lines.append(line)
    return "\n".join(lines)


def ticket_fields(ticket: Ticket) -> list[dict[str, Any]]:
    none = "_not provided_"
    pairs = [
        (ticket.label("account"), ticket.account or none),
        (ticket.label("idp"), ticket.idp or none),
        (ticket.label("upns"), ", ".join(ticket.upns) if ticket.upns else none),
        (ticket.label("groups"), ", ".join(ticket.groups) if ticket.groups else none),
    ]
    if ticket.symptom_title:
        pairs.append((ticket.label("topic" if ticket.topic else "symptom"), ticket.symptom_title))
    if ticket.cause_title:
        pairs.append((ticket.label("cause"), ticket.cause_title))
    return [field(label, value) for label, value in pairs][:MAX_FIELDS]


def field(label: str, value: str) -> dict[str, Any]:
    """A labelled section field; `value` is user-provided (or our "_not provided_")."""
    head = f"*{escape(label)}*\n"
    escaped = value if value == "_not provided_" else user_text(value)
    return mrkdwn_object(clip(head + escaped, FIELD_TEXT))


def fallback_text(reply: Reply) -> str:
    return fallback(render_plain(reply, markup="strip"))


def fallback(text: str) -> str:
    """The notification `text` of a message: Slack parses it too, so it is escaped like any user value."""
    return clip(user_text(text), FALLBACK_TEXT)


def render_replies(replies: list[Reply], **options: Any) -> list[Message]:
    """A turn's replies packed into as few messages as Slack allows (50 blocks each), in order. Keys are
    the reply's index in the turn, so action ids stay unique within every message."""
    messages: list[Message] = []
    blocks: list[Block] = []
    texts: list[str] = []
    for i, reply in enumerate(replies):
        rendered = render_reply(reply, key=str(i), **options)
        if blocks and len(blocks) + len(rendered) > MAX_BLOCKS:
            messages.append(Message(blocks, clip("\n\n".join(texts), FALLBACK_TEXT)))  # each already escaped
            blocks, texts = [], []
        blocks = blocks + rendered
        texts.append(fallback_text(reply))
    if blocks:
        messages.append(Message(blocks, clip("\n\n".join(texts), FALLBACK_TEXT)))
    return messages


def answered(blocks: list[Block], clicked_block_id: str, label: str, user_id: str | None) -> list[Block]:
    """The clicked message after a click: the clicked actions block becomes a note of the answer chosen,
    so the buttons are gone and cannot be clicked twice. Other blocks stay as they were."""
    who = mention(user_id) if user_id else "You"
    note = context(f":white_check_mark: {who} chose *{escape(plain(label))}*")
    out: list[Block] = []
    for b in blocks:
        if b.get("type") == "actions" and b.get("block_id") == clicked_block_id:
            out.append(note)
        else:
            out.append(b)
    return cap_blocks(out)


def button_label(blocks: list[Block], action_id: str) -> str | None:
    for b in blocks:
        if b.get("type") != "actions":
            continue
        for el in b.get("elements", []):
            if el.get("action_id") == action_id:
                return (el.get("text") or {}).get("text")
    return None


def notice(text: str) -> Message:
    """A short plain message (errors, hand-off confirmations): engine-style text, escaped."""
    return Message([section(mrkdwn(text))], fallback(plain(text)))


def mention(user_id: str | None) -> str:
    """`<@U…>` for a Slack user id, else a neutral word: the only way a mention gets into our text."""
    return f"<@{user_id}>" if user_id and _SLACK_ID.match(user_id) and user_id[0] in "UW" else "Someone"


def channel_link(channel_id: str | None) -> str:
    return f"<#{channel_id}>" if channel_id and _SLACK_ID.match(channel_id) and channel_id[0] in "CDG" else "our DM"


def notice_markup(text: str) -> Message:
    """A short message written in mrkdwn by us, with mentions and channel links made by `mention` and
    `channel_link` (anything user-provided in it must have gone through `user_text`)."""
    return Message([section(text)], clip(text, FALLBACK_TEXT))


# ---- escalation hand-off -----------------------------------------------------------------------------


def escalation_modal(ticket: Ticket, *, private_metadata: str, channel_label: str | None, say: Say) -> dict[str, Any]:
    """The "Review & send to helpdesk" modal, prefilled from the ticket draft. Input block ids are the
    field names; every input's action_id is "value"."""

    def text_input(block: str, label: str, initial: str, *, multiline: bool = False, optional: bool = False, max_length: int = INPUT_MAX, hint: str | None = None, placeholder: str | None = None) -> Block:
        element: Block = {"type": "plain_text_input", "action_id": "value", "multiline": multiline, "max_length": max_length}
        initial = clip(initial, max_length)
        if initial:
            element["initial_value"] = initial
        if placeholder:
            element["placeholder"] = {"type": "plain_text", "text": clip(placeholder, PLACEHOLDER)}
        b: Block = {"type": "input", "block_id": block, "optional": optional, "label": {"type": "plain_text", "text": clip(label, INPUT_LABEL)}, "element": element}
        if hint:
            b["hint"] = {"type": "plain_text", "text": clip(hint, INPUT_LABEL)}
        return b

    blocks: list[Block] = [
        section(say("handoff-intro", where=escape(f"to {channel_label}" if channel_label else "to the helpdesk"))),
        text_input("account", ticket.label("account"), ticket.account or "", max_length=120, placeholder=say("handoff-account-placeholder")),
        text_input("idp", ticket.label("idp"), ticket.idp or "", optional=True, max_length=120),
        text_input("upns", ticket.label("upns"), "\n".join(ticket.upns), multiline=True, optional=True, hint=say("handoff-upns-hint"), max_length=2000),
        text_input("groups", ticket.label("groups"), "\n".join(ticket.groups), multiline=True, optional=True, hint=say("handoff-groups-hint"), max_length=2000),
        text_input("body", say("handoff-body-label"), ticket.body, multiline=True, hint=say("handoff-body-hint")),
    ]
    return {
        "type": "modal",
        "callback_id": ESCALATION_CALLBACK,
        "title": {"type": "plain_text", "text": clip(say("handoff-title"), MODAL_TITLE)},
        "submit": {"type": "plain_text", "text": clip("Send", MODAL_BUTTON)},
        "close": {"type": "plain_text", "text": clip("Cancel", MODAL_BUTTON)},
        "private_metadata": private_metadata[:PRIVATE_METADATA],
        "blocks": blocks[:MAX_MODAL_BLOCKS],
    }


def escalation_post(
    *,
    user_id: str | None,
    account: str,
    idp: str,
    upns: list[str],
    groups: list[str],
    symptom: str | None,
    body: str,
    permalink: str | None,
    say: Say,
    labels: Mapping[str, str],
) -> Message:
    """The ticket as posted to the helpdesk escalation channel. Every value but the ids is the admin's own
    typing (the modal): escaped, never a link or a mention. `labels`: the ticket fields' labels."""
    who = mention(user_id) if user_id else say("ticket.not-provided")
    permalink = permalink if permalink and _PERMALINK.match(permalink) else None
    none = f"_{say('ticket.not-provided')}_"
    label = Ticket(labels=dict(labels)).label  # the pack's label, else the engine's default for the field
    fields = [
        field(label("account"), account or none),
        field(label("idp"), idp or none),
        field(label("upns"), ", ".join(upns) if upns else none),
        field(label("groups"), ", ".join(groups) if groups else none),
    ]
    if symptom:
        fields.append(field(say("ticket.symptom"), symptom))
    title = say("escalation-post-title")
    blocks = [
        header(title),
        section(say("escalation-raised-by", who=who) + (f" — <{permalink}|{escape(say('escalation-back-link'))}>" if permalink else "")),
        {"type": "section", "fields": fields[:MAX_FIELDS]},
        *code_blocks(body),
    ]
    return Message(cap_blocks(blocks), fallback(f"{title}: {account or none.strip('_')}"))


def handoff_confirmation(*, body: str, support_url: str | None, portal_label: str, channel_id: str | None, say: Say, guidance: str) -> Message:
    """What the admin gets after sending: where it went, the text to paste into the support form (the
    pack's `guidance`), the portal."""
    sent = say("handoff-sent", where=f"<#{channel_id}>") + " " if channel_id and _SLACK_ID.match(channel_id) else ""
    blocks: list[Block] = [
        section(f":incoming_envelope: {sent}{escape(guidance)}"),
        *code_blocks(body),
    ]
    if support_url:
        blocks.append({"type": "actions", "block_id": "scim:sent", "elements": [button(portal_label, f"{LINK_PREFIX}sent", url=support_url)]})
    return Message(cap_blocks(blocks), fallback(f"{say('handoff-body-label')}:\n{body}"))
