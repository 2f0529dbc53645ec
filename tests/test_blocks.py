"""Block Kit rendering (bot/render/blocks.py): every Reply kind, and Slack's limits on hostile input.

Every rendered payload is also run through the same Block Kit limit checks the fake Slack API applies
(tests/fakes/slack_api.py), so "fits Slack" is checked in one place.
"""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import Choice, Reply, Step, Ticket, TicketStep
from bot.render import blocks as bk
from tests.fakes.slack_api import validate_blocks, validate_view
from tests.support.words import labels, say

CONV = "slack:T1:C1:1700000000.000100"


def texts(blocks: list[dict]) -> list[str]:
    out = []
    for b in blocks:
        if "text" in b and isinstance(b["text"], dict):
            out.append(b["text"]["text"])
        for f in b.get("fields", []):
            out.append(f["text"])
        for el in b.get("elements", []):
            if el.get("type") in ("mrkdwn", "plain_text"):
                out.append(el["text"])
    return out


def buttons(blocks: list[dict]) -> list[dict]:
    return [el for b in blocks if b["type"] == "actions" for el in b["elements"]]


def ok(blocks: list[dict]) -> list[dict]:
    problems = validate_blocks(blocks)
    assert problems == [], problems
    return blocks


# ---- each kind -----------------------------------------------------------------------------------------


def test_greeting_with_symptom_picker():
    reply = Reply(
        kind="greeting",
        text="I help with **SCIM provisioning**.\nSay **start over** any time.",
        choices=[Choice(id="cannot-enable", label="SCIM can't be enabled"), Choice(id="users-not-working", label="Users don't work")],
    )
    blocks = ok(bk.render_reply(reply, conversation_id=CONV))
    assert blocks[0] == {"type": "section", "text": {"type": "mrkdwn", "text": "I help with *SCIM provisioning*.\nSay *start over* any time.", "verbatim": True}}
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == 1 and actions[0]["block_id"].endswith("|" + CONV)
    assert bk.conversation_from_block_id(actions[0]["block_id"]) == CONV
    btns = buttons(blocks)
    assert [b["value"] for b in btns] == ["cannot-enable", "users-not-working"]
    assert [b["text"]["text"] for b in btns] == ["SCIM can't be enabled", "Users don't work"]
    assert len({b["action_id"] for b in btns}) == 2 and all(b["action_id"].startswith(bk.CHOICE_PREFIX) for b in btns)


def test_question_with_path_quote_and_answers():
    reply = Reply(
        kind="question",
        title="Error shown when enabling SCIM",
        text="Try to enable SCIM once more. Is it this message?",
        path="Access > Directory Services > SCIM",
        quote="Can't enable SCIM provisioning.\nPlease contact Support",
        choices=[Choice(id="enable-error:yes", label="Yes, that one", style="primary"), Choice(id="enable-error:unsure", label="Not sure")],
    )
    blocks = ok(bk.render_reply(reply, conversation_id=CONV))
    assert blocks[0]["text"]["text"].startswith("*Error shown when enabling SCIM*\nTry to enable")
    assert blocks[1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "*Path:* `Access &gt; Directory Services &gt; SCIM`", "verbatim": True}]}
    assert blocks[2]["text"]["text"] == "&gt; Can't enable SCIM provisioning.\n&gt; Please contact Support"
    btns = buttons(blocks)
    assert btns[0]["style"] == "primary" and "style" not in btns[1]
    assert [b["value"] for b in btns] == ["enable-error:yes", "enable-error:unsure"]


def test_resolution_steps_are_a_numbered_list_with_paths():
    reply = Reply(
        kind="resolution",
        title="Users are not assigned",
        text="**Most likely cause:** users are not assigned.",
        steps=[Step(text="Open the **Cato** app", path="Entra ID > Enterprise applications"), Step(text="Assign the group")],
    )
    blocks = ok(bk.render_reply(reply))
    joined = "\n".join(texts(blocks))
    assert "*Most likely cause:* users are not assigned." in joined
    assert "1. Open the *Cato* app\n      _Path:_ `Entra ID &gt; Enterprise applications`\n2. Assign the group" in joined
    assert not buttons(blocks)


def _ticket(**kw) -> Ticket:
    base = dict(
        account="Contoso 12345",
        idp="Microsoft Entra ID",
        upns=["jane.doe@contoso.com"],
        groups=["Cato-Users"],
        symptom_title="New users never show up",
        cause_title="Users not assigned",
        steps=[TicketStep(check="Assigned?", answer="No")],
        body="## SCIM provisioning issue\n- **Account:** Contoso 12345\n```\nadmin: help\n```",
    )
    base.update(kw)
    return Ticket(**base)


def test_ticket_fields_code_block_and_buttons():
    reply = Reply(kind="ticket", title="Your Cato Support ticket", text="Paste the text below.", ticket=_ticket(), choices=[Choice(id="cmd:restart", label="Start over")])
    blocks = ok(bk.render_reply(reply, conversation_id=CONV, support_url="https://support.example.com/new", portal_label="Open a case", handoff=True, handoff_label=say("handoff-button")))
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Your Cato Support ticket", "emoji": True}}
    fields = next(b["fields"] for b in blocks if "fields" in b)
    assert fields[0]["text"] == "*Account*\nContoso 12345"
    assert any("jane.doe@contoso.com" in f["text"] for f in fields)
    code = [t for t in texts(blocks) if t.startswith("```")]
    assert len(code) == 1
    # the body's own fence lines would close Slack's code block early: they are dropped, the lines stay
    assert code[0] == "```\n## SCIM provisioning issue\n- **Account:** Contoso 12345\nadmin: help\n```"
    btns = buttons(blocks)
    handoff, portal, restart = btns
    assert handoff["action_id"].startswith(bk.HANDOFF_PREFIX) and handoff["text"]["text"] == "Review & send to helpdesk"
    assert portal["url"] == "https://support.example.com/new" and portal["action_id"].startswith(bk.LINK_PREFIX)
    assert restart["value"] == "cmd:restart"
    # without hand-off or portal only the engine's choices remain
    plain = ok(bk.render_reply(reply))
    assert [b.get("value") for b in buttons(plain)] == ["cmd:restart"]


def test_info_off_topic_closing_and_clarify():
    for kind in ("info", "off-topic", "closing", "clarify"):
        reply = Reply(kind=kind, text=f"A **{kind}** reply", choices=[Choice(id="helpful:yes", label="Yes")] if kind != "info" else [])
        blocks = ok(bk.render_reply(reply))
        assert blocks[0]["text"]["text"] == f"A *{kind}* reply"
        assert len(buttons(blocks)) == (0 if kind == "info" else 1)
        assert bk.fallback_text(reply) == f"A {kind} reply"


def test_user_text_cannot_inject_mentions_or_links():
    reply = Reply(kind="info", text="you said: <!channel> <@U123> <https://evil|click> & more")
    blocks = ok(bk.render_reply(reply))
    assert blocks[0]["text"]["text"] == "you said: &lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|click&gt; &amp; more"


def test_fallback_text_is_plain():
    reply = Reply(kind="question", title="Check", text="Is **it** on?", path="A > B", quote="err", steps=[Step(text="do **x**")])
    # Plain words, escaped: Slack parses a message's `text` as mrkdwn too (and shows &gt; as >).
    assert bk.fallback_text(reply) == 'Check\nIs it on?\nWhere to look: A › B\nLook for: "err"\n1. do x'


def test_every_plain_surface_says_a_reply_the_same_way():
    """Slack's notification text, Teams' no-card message and the terminal were three renderings that
    drifted ("Path:", "Where to look:", "Where:"); now one, differing only in markup, choices and spacing."""
    from bot.render import cards
    from bot.render.text import render_plain

    reply = Reply(kind="question", title="Check", text="Is **it** `on`?", path="A > B", quote="err", steps=[Step(text="do **x**", path="C > D")], after="Then **say**.")
    terminal = render_plain(reply)
    assert terminal == 'Check\nIs **it** `on`?\nWhere to look: A › B\nLook for: "err"\n1. do **x**\n   (C › D)\nThen **say**.'
    stripped = render_plain(reply, markup="strip")
    assert bk.fallback_text(reply) == bk.fallback(stripped)
    assert cards.render_text(reply) == stripped.replace("\n", "\n\n").replace("\n\n   (", "\n   (")


# ---- limits -----------------------------------------------------------------------------------------------


def test_huge_text_is_spread_then_cut_within_limits():
    huge = ("A line about provisioning & SCIM <tokens>. " * 40 + "\n") * 400  # ~700k characters
    blocks = ok(bk.render_reply(Reply(kind="info", text=huge, choices=[Choice(id="x", label="X")])))
    assert len(blocks) <= bk.MAX_BLOCKS
    assert all(len(t) <= bk.SECTION_TEXT for t in texts(blocks))
    assert any("…" in t for t in texts(blocks))
    assert blocks[-1]["type"] == "actions"  # the buttons survive the cut
    for t in texts(blocks):
        assert not re.search(r"&[a-z]{0,3}…", t)  # no half-escaped entity at a cut


def test_one_giant_line_is_cut_without_breaking_entities():
    blocks = ok(bk.render_reply(Reply(kind="info", text="<>&" * 20000)))
    for t in texts(blocks):
        assert len(t) <= bk.SECTION_TEXT
        assert re.fullmatch(r"(?:&lt;|&gt;|&amp;)*…?", t.replace("…", "")) or t.endswith("…")


def test_many_and_long_choices():
    choices = [Choice(id=f"c{i}", label="A very long button label that goes on and on and on, far past what fits " * 2) for i in range(200)]
    choices.append(Choice(id="x" * 2001, label="too long an id"))
    blocks = ok(bk.render_reply(Reply(kind="clarify", text="pick", choices=choices)))
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == bk.MAX_ACTIONS_BLOCKS
    assert all(len(a["elements"]) <= bk.ACTIONS_ELEMENTS for a in actions)
    btns = buttons(blocks)
    assert all(len(b["text"]["text"]) <= bk.BUTTON_TEXT and b["text"]["text"].endswith("…") for b in btns)
    # a value that would have to be cut is left out instead (a cut id is a different answer)
    assert all(len(b["value"]) <= bk.BUTTON_VALUE for b in btns) and "x" * 2001 not in [b["value"] for b in btns]
    assert len({b["action_id"] for b in btns}) == len(btns)


def test_huge_title_path_quote_and_steps():
    reply = Reply(
        kind="resolution",
        title="T" * 500,
        text="short",
        path=" > ".join(["Level"] * 2000),
        quote="q" * 10000,
        steps=[Step(text="step " * 200, path="A > B" * 100) for _ in range(300)],
    )
    blocks = ok(bk.render_reply(reply))
    assert len(blocks) <= bk.MAX_BLOCKS
    ticket = Reply(kind="ticket", title="T" * 500, text="t", ticket=_ticket(upns=[f"user{i}@contoso.com" for i in range(1000)], groups=["g" * 300] * 100, body="line\n" * 20000))
    blocks = ok(bk.render_reply(ticket, support_url="https://x.example/" + "p" * 5000, handoff=True))
    header = blocks[0]["text"]["text"]
    assert len(header) == bk.HEADER_TEXT and header.endswith("…")
    assert all(len(f["text"]) <= bk.FIELD_TEXT for b in blocks for f in b.get("fields", []))
    assert len(buttons(blocks)[1]["url"]) <= bk.BUTTON_URL


def test_replies_are_packed_into_messages_of_at_most_50_blocks():
    big = Reply(kind="info", text=("x" * 2900 + "\n") * 30)  # spread over several sections, then cut
    assert len(bk.render_reply(big)) > 5
    question = Reply(kind="question", title="Q", text="?", choices=[Choice(id="a:b", label="B")])
    messages = bk.render_replies([big] * 8 + [question, question], conversation_id=CONV)
    assert len(messages) >= 2
    for m in messages:
        ok(m.blocks)
        assert 0 < len(m.text) <= bk.FALLBACK_TEXT
    # the two questions share a message; their ids stay unique
    last = messages[-1]
    ids = [b["action_id"] for b in buttons(last.blocks)]
    assert len(ids) == 2 and len(set(ids)) == 2


def test_answered_replaces_only_the_clicked_buttons():
    reply_a = Reply(kind="question", title="Q", text="?", choices=[Choice(id="q:yes", label="Yes <b>"), Choice(id="q:no", label="No")])
    reply_b = Reply(kind="closing", text="Helpful?", choices=[Choice(id="helpful:yes", label="Yes")])
    (message,) = bk.render_replies([reply_a, reply_b], conversation_id=CONV)
    clicked = [b for b in message.blocks if b["type"] == "actions"][0]
    after = ok(bk.answered(message.blocks, clicked["block_id"], "Yes <b>", "U1"))
    assert clicked not in after
    assert [el["value"] for el in buttons(after)] == ["helpful:yes"]
    assert "<@U1> chose *Yes &lt;b&gt;*" in json.dumps(after)
    assert bk.button_label(message.blocks, clicked["elements"][1]["action_id"]) == "No"


def test_escalation_modal_and_posts_fit_on_huge_tickets():
    ticket = _ticket(account="A" * 500, idp="I" * 500, upns=[f"u{i}@x.com" for i in range(500)], groups=["g" * 200] * 50, body="b" * 50000)
    view = bk.escalation_modal(ticket, private_metadata="m" * 5000, channel_label="#helpdesk", say=say)
    assert validate_view(view) == []
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert set(inputs) == {"account", "idp", "upns", "groups", "body"}
    assert len(inputs["body"]["initial_value"]) == bk.INPUT_MAX
    post = bk.escalation_post(user_id="U1", account="A", idp="", upns=["a@b.co"] * 1000, groups=[], symptom="S", body="x\n" * 20000, permalink="https://fake.slack.com/archives/C1/p1", say=say, labels=labels())
    ok(post.blocks)
    assert "https://fake.slack.com/archives/C1/p1" in json.dumps(post.blocks)
    confirm = bk.handoff_confirmation(body="y" * 20000, support_url="https://support.example.com", portal_label="Open a case", channel_id="C9", say=say, guidance="Paste it.")
    ok(confirm.blocks)
    assert "<#C9>" in json.dumps(confirm.blocks)


# ---- properties ----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>&\n*`")), max_size=400), st.integers(min_value=1, max_value=120))
def test_clip_and_split_respect_limits(text, limit):
    escaped = bk.escape(text)
    clipped = bk.clip(escaped, limit)
    assert len(clipped) <= limit
    assert clipped == escaped or clipped.endswith("…")
    assert not re.search(r"&[a-z]{0,3}…$", clipped) or re.search(r"&(?:amp|lt|gt);…$", clipped) is None
    if limit >= 8:
        chunks = bk.split_text(escaped, limit)
        assert all(len(c) <= limit for c in chunks)
        # nothing but whitespace at the seams is lost, and no entity is split across chunks
        assert "".join(chunks).replace("\n", "").replace(" ", "") == escaped.replace("\n", "").replace(" ", "")
        for c in chunks:
            assert not re.search(r"&[a-z]{0,3}$", c)


# ---- issue #14, break 10: user-provided values never become links or mentions -------------------------------

HOSTILE = {
    "account": "[Click to re-verify your account](https://evil.example/login) <!channel> <@U0BOSS> <https://evil.example|Cato Support>",
    "idp": "@channel see https://evil.example #general",
    "upn": "<mailto:x@evil.example|jane@contoso.com>",
    "group": "*Admins* <!here> [group](https://evil.example)",
}


def _mrkdwn_objects(blocks: list[dict]) -> list[dict]:
    found = []
    for b in blocks:
        for obj in [b.get("text"), *b.get("fields", []), *b.get("elements", [])]:
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                found.append(obj)
    return found


def _assert_inert(blocks: list[dict], text: str) -> None:
    for obj in _mrkdwn_objects(blocks):
        assert obj.get("verbatim") is True, obj  # Slack does not auto-link URLs, #channels, @mentions
        _assert_no_injected_markup(obj["text"], quoted=obj["text"].startswith("```"))
    _assert_no_injected_markup(text, quoted=False)


def _assert_no_injected_markup(t: str, quoted: bool) -> None:
    assert "<!" not in t and "<https://evil" not in t and "<mailto" not in t and "<@U0BOSS" not in t, t
    if not quoted:  # a code block (the ticket to paste) shows the text as typed, in monospace, never a link
        assert "](https://evil" not in t and "https://evil" not in t, t  # not even a URL a client could link


def test_escalation_post_keeps_user_values_inert():
    """Break 10: an account of `[Click to re-verify…](https://evil.example/login)` appeared as a link in
    the escalation post support staff read, and `<!channel>` in its notification text pinged a channel."""
    post = bk.escalation_post(
        user_id="U0ADMIN",
        account=HOSTILE["account"],
        idp=HOSTILE["idp"],
        upns=[HOSTILE["upn"]],
        groups=[HOSTILE["group"]],
        symptom="SCIM can't be enabled",
        body="Ticket: " + HOSTILE["account"],
        permalink="https://fake.slack.com/archives/C1/p1700000000000100",
        say=say,
        labels=labels(),
    )
    ok(post.blocks)
    _assert_inert(post.blocks, post.text)
    dumped = json.dumps(post.blocks)
    assert "<@U0ADMIN>" in dumped and "<https://fake.slack.com/archives/C1/p1700000000000100|" in dumped  # ours stay
    forged = bk.escalation_post(user_id="U0X> <!channel", account="a", idp="", upns=[], groups=[], symptom=None, body="b", permalink="https://x|<!channel>", say=say, labels=labels())
    assert "<!channel" not in json.dumps(forged.blocks)


def test_ticket_reply_and_confirmation_keep_user_values_inert():
    ticket = Ticket(account=HOSTILE["account"], idp=HOSTILE["idp"], upns=[HOSTILE["upn"]], groups=[HOSTILE["group"]], body="# Ticket\n" + HOSTILE["account"])
    reply = Reply(kind="ticket", title="Your ticket", text="Here it is.", ticket=ticket)
    (message,) = bk.render_replies([reply], conversation_id=CONV, support_url="https://support.example.com", handoff=True)
    ok(message.blocks)
    _assert_inert(message.blocks, message.text)
    confirmation = bk.handoff_confirmation(body=ticket.body, support_url="https://support.example.com", portal_label="Open", channel_id="C0ESC", say=say, guidance="Paste it.")
    _assert_inert(confirmation.blocks, confirmation.text)
    assert "<#C0ESC>" in json.dumps(confirmation.blocks)
