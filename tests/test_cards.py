"""Adaptive Card renderer (bot/render/cards.py): one card per Reply kind, valid 1.5 structure, the size limit."""

from __future__ import annotations

import json

import pytest

from bot.events import Choice, Reply, Step, Ticket, TicketStep
from bot.render import cards
from tests.support.words import say

SUPPORT = "https://support.example.com/new"

# Element and action types of Adaptive Cards 1.5 that Teams renders (the subset a card may use).
ELEMENTS = {"TextBlock", "RichTextBlock", "Image", "Container", "ColumnSet", "Column", "FactSet", "ActionSet", "Table"}
ACTIONS = {"Action.Submit", "Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"}
SPACING = {"None", "Small", "Default", "Medium", "Large", "ExtraLarge", "Padding"}


def shown(text: str) -> str:
    """A TextBlock's text as a CommonMark renderer shows it when it holds only escaped punctuation."""
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def validate(card: dict) -> None:
    """Structural checks of an Adaptive Card 1.5 as Teams expects it."""
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.5"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert isinstance(card["body"], list) and card["body"]
    ids: list[str] = []

    def action(a: dict) -> None:
        assert a["type"] in ACTIONS, a
        if a["type"] == "Action.Submit":
            assert isinstance(a["title"], str) and a["title"]
            assert isinstance(a["data"], dict) and cards.choice_from_value(a["data"])
        if a["type"] == "Action.OpenUrl":
            assert a["url"].startswith("https://")
        if "style" in a:
            assert a["style"] in ("default", "positive", "destructive")

    def element(el: dict) -> None:
        assert el["type"] in ELEMENTS, el
        if "id" in el:
            ids.append(el["id"])
        if "spacing" in el:
            assert el["spacing"] in SPACING
        if el["type"] == "TextBlock":
            assert isinstance(el["text"], str) and el["text"].strip()
            assert el.get("fontType", "Default") in ("Default", "Monospace")
        elif el["type"] == "Container":
            assert isinstance(el["items"], list) and el["items"]
            for item in el["items"]:
                element(item)
            if "selectAction" in el:
                action(el["selectAction"])
        elif el["type"] == "ColumnSet":
            for col in el["columns"]:
                assert col["type"] == "Column"
                for item in col["items"]:
                    element(item)
        elif el["type"] == "FactSet":
            for fact in el["facts"]:
                assert isinstance(fact["title"], str) and isinstance(fact["value"], str) and fact["value"]
        elif el["type"] == "ActionSet":
            assert el["actions"]
            for a in el["actions"]:
                action(a)

    for el in card["body"]:
        element(el)
    for a in card.get("actions", []):
        action(a)
    assert len(ids) == len(set(ids)), "element ids must be unique"
    json.dumps(card)  # serialisable


def submits(card: dict | list) -> dict[str, str]:
    """choice id -> button title for every Action.Submit in a card (or a list of cards)."""
    out: dict[str, str] = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "Action.Submit":
                out[node["data"][cards.CHOICE_KEY]] = node["title"]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(card)
    return out


def texts(card: dict) -> list[str]:
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(card["body"])
    return out


def only_card(reply: Reply, **kw) -> dict:
    attachments = cards.render_reply(reply, **kw)
    assert len(attachments) == 1
    att = attachments[0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    validate(att["content"])
    return att["content"]


SYMPTOMS = [
    Choice(id="cannot-enable", label="SCIM provisioning cannot be enabled"),
    Choice(id="initial-provisioning-fails", label="No users can be added to CMA via SCIM provisioning"),
]


def make_ticket() -> Ticket:
    return Ticket(
        account="Contoso 1234",
        idp="Microsoft Entra ID",
        upns=["jane.doe@contoso.com", "li.wei@contoso.com"],
        groups=["SCIM-Users", "Sales"],
        symptom="cannot-enable",
        symptom_title="SCIM provisioning cannot be enabled",
        cause="account-requirements",
        cause_title="The account does not meet the requirements",
        steps=[TicketStep(check="Error shown when enabling SCIM", answer="Yes")],
        body="## SCIM provisioning issue\n\n- **Account name / number:** Contoso 1234\n- **Identity provider:** Microsoft Entra ID",
    )


# ---- one card per reply kind ------------------------------------------------------------------------


def test_greeting_has_symptom_picker_routing_back_to_the_engine():
    card = only_card(Reply(kind="greeting", text="I help you troubleshoot SCIM.\nSay **start over** at any point.", choices=SYMPTOMS))
    assert submits(card) == {c.id: c.label for c in SYMPTOMS}
    assert "Say **start over** at any point." in texts(card)  # one TextBlock per line, bold kept


def test_clarify_lists_candidate_symptoms():
    card = only_card(Reply(kind="clarify", text="Which of these is closest?", choices=SYMPTOMS))
    assert set(submits(card)) == {"cannot-enable", "initial-provisioning-fails"}


def test_question_shows_title_path_quote_and_answers():
    reply = Reply(
        kind="question",
        title="Test Connection",
        text="Run `Test Connection` in the provisioning app.",
        path="Enterprise applications > Cato Provisioning > Provisioning",
        quote="HTTP 401 Unauthorized",
        choices=[Choice(id="test-connection:fails", label="It shows an error"), Choice(id="test-connection:succeeds", label="It succeeds", style="primary")],
    )
    card = only_card(reply)
    body = card["body"]
    assert body[0]["text"] == "Test Connection" and body[0]["weight"] == "Bolder"
    assert "Run **Test Connection** in the provisioning app." in texts(card)
    path = next(el for el in body if el.get("fontType") == "Monospace")
    assert path["text"] == "Enterprise applications › Cato Provisioning › Provisioning"
    quote = next(el for el in body if el["type"] == "Container" and el.get("style") == "emphasis")
    assert quote["items"][0]["text"] == "HTTP 401 Unauthorized" and quote["items"][0]["fontType"] == "Monospace"
    buttons = next(el for el in body if el["type"] == "ActionSet")
    assert [a["data"] for a in buttons["actions"]] == [{"scim_help_choice": "test-connection:fails"}, {"scim_help_choice": "test-connection:succeeds"}]
    assert buttons["actions"][1]["style"] == "positive"


def test_long_labels_become_full_width_rows_not_truncated_buttons():
    card = only_card(Reply(kind="greeting", text="Pick one", choices=SYMPTOMS))
    group = next(el for el in card["body"] if str(el.get("id", "")).startswith(cards.GROUP_PREFIX))
    assert group["type"] == "Container"
    assert all(row["selectAction"]["type"] == "Action.Submit" for row in group["items"])
    assert any(SYMPTOMS[1].label in t for t in texts(card))


def test_resolution_steps_are_a_numbered_list_with_console_paths():
    reply = Reply(
        kind="resolution",
        title="Credentials mismatch",
        text="**Cause found:** credentials mismatch.\n\n**How to verify:** Test Connection succeeds.",
        steps=[Step(text="Copy the SCIM URL and token from the CMA.", path="Access > Directory Services > SCIM"), Step(text="Paste them into the IdP.")],
    )
    card = only_card(reply)
    rows = [el for el in card["body"] if el["type"] == "ColumnSet"]
    assert [r["columns"][0]["items"][0]["text"] for r in rows] == ["**1.**", "**2.**"]
    first = rows[0]["columns"][1]["items"]
    assert first[0]["text"] == "Copy the SCIM URL and token from the CMA."
    assert first[1]["fontType"] == "Monospace" and first[1]["text"] == "Access › Directory Services › SCIM"
    assert len(rows[1]["columns"][1]["items"]) == 1


def test_ticket_card_has_facts_copyable_body_and_portal_link():
    reply = Reply(
        kind="ticket",
        title="Your Cato Support ticket",
        text="Submit a support ticket and paste the text below.",
        link=SUPPORT,
        link_label="Open a Cato Support case",
        ticket=make_ticket(),
        choices=[Choice(id="cmd:restart", label="Start over")],
    )
    card = only_card(reply, support_url=SUPPORT)
    facts = {f["title"]: shown(f["value"]) for el in card["body"] if el["type"] == "FactSet" for f in el["facts"]}
    assert facts == {
        "Account": "Contoso 1234",
        "Identity provider": "Microsoft Entra ID",
        "Affected UPNs": "jane.doe@contoso.com, li.wei@contoso.com",
        "IdP groups": "SCIM-Users, Sales",
        "Symptom": "SCIM provisioning cannot be enabled",
        "Cause": "The account does not meet the requirements",
    }
    body = next(el for el in card["body"] if el["type"] == "Container" and el.get("style") == "emphasis")
    lines = [shown(i["text"]) for i in body["items"]]
    assert lines[0] == "## SCIM provisioning issue" and all(i["fontType"] == "Monospace" for i in body["items"])
    assert "- **Identity provider:** Microsoft Entra ID" in lines
    urls = [a for el in card["body"] if el["type"] == "ActionSet" for a in el["actions"] if a["type"] == "Action.OpenUrl"]
    assert [a["url"] for a in urls] == [SUPPORT]
    assert SUPPORT not in " ".join(texts(card))  # the link is a button, never a bare URL
    assert submits(card) == {"cmd:restart": "Start over"}


def test_ticket_card_without_cause_or_fields():
    card = only_card(Reply(kind="ticket", text="Draft", ticket=Ticket(body="x")))
    facts = {f["title"]: f["value"] for el in card["body"] if el["type"] == "FactSet" for f in el["facts"]}
    assert facts["Account"] == "—" and facts["Cause"] == "not identified"


@pytest.mark.parametrize("kind", ["info", "off-topic", "closing"])
def test_simple_kinds(kind):
    reply = Reply(kind=kind, text="Thanks!", choices=[Choice(id="helpful:yes", label="Yes, helpful", style="primary")] if kind == "closing" else [])
    card = only_card(reply)
    assert texts(card)[0] == "Thanks!"
    assert bool(submits(card)) == (kind == "closing")


def test_a_turn_packs_into_one_card_with_separators():
    replies = [
        Reply(kind="info", text="Got it — **No users**."),
        Reply(kind="question", title="Identity provider", text="Which IdP?", choices=[Choice(id="idp:entra", label="Microsoft Entra ID"), Choice(id="idp:okta", label="Okta")]),
    ]
    [att] = cards.render_replies(replies)
    card = att["content"]
    validate(card)
    title = next(el for el in card["body"] if el.get("text") == "Identity provider")
    assert title["separator"] is True
    assert card["fallbackText"] == "Identity provider"
    assert set(submits(card)) == {"idp:entra", "idp:okta"}


# ---- clicks -----------------------------------------------------------------------------------------


def test_choice_from_value():
    assert cards.choice_from_value({"scim_help_choice": "fixed:yes"}) == "fixed:yes"
    assert cards.choice_from_value({"scim_help_choice": "  fixed:no "}) == "fixed:no"
    for value in (None, {}, {"other": "x"}, {"scim_help_choice": ""}, {"scim_help_choice": 3}, "fixed:yes", ["x"]):
        assert cards.choice_from_value(value) is None


def test_mark_answered_replaces_only_the_clicked_group():
    replies = [
        Reply(kind="ticket", text="t", ticket=make_ticket(), choices=[Choice(id="cmd:restart", label="Start over")]),
        Reply(kind="closing", text="Was this helpful?", choices=[Choice(id="helpful:yes", label="Yes"), Choice(id="helpful:no", label="No")]),
    ]
    [att] = cards.render_replies(replies)
    card = att["content"]
    updated = cards.mark_answered(card, "helpful:no")
    assert updated is not None
    validate(updated)
    assert set(submits(updated)) == {"cmd:restart"}
    assert "✅ **No**" in texts(updated)
    assert set(submits(card)) == {"cmd:restart", "helpful:yes", "helpful:no"}  # input untouched
    assert cards.mark_answered(card, "fixed:yes") is None
    rows = cards.render_reply(Reply(kind="greeting", text="Pick", choices=SYMPTOMS))[0]["content"]
    done = cards.mark_answered(rows, "cannot-enable")
    assert done is not None
    assert not cards.has_choices(done) and f"✅ **{SYMPTOMS[0].label}**" in texts(done)


# ---- size -------------------------------------------------------------------------------------------------


def test_huge_text_is_split_over_cards_under_the_limit():
    text = "\n".join(f"line {i}: " + "provisioning " * 12 for i in range(900))  # ~150 KB
    reply = Reply(kind="question", text=text, choices=[Choice(id="fixed:yes", label="Yes"), Choice(id="fixed:no", label="No")])
    attachments = cards.render_reply(reply)
    assert 1 < len(attachments) <= cards.MAX_PARTS
    for att in attachments:
        validate(att["content"])
        assert cards.card_size(att["content"]) <= cards.MAX_CARD_BYTES
    # Buttons stay on the last card, with the question, and exactly once.
    assert [bool(submits(a["content"])) for a in attachments] == [False] * (len(attachments) - 1) + [True]
    assert "(continued — part 2 of" in texts(attachments[1]["content"])[0]
    # The content that fits arrives in order; what does not is cut with a visible note.
    everything = "\n".join(t for a in attachments for t in texts(a["content"]))
    assert everything.index("line 0:") < everything.index("line 100:")
    assert "truncated" in everything


def test_moderately_large_content_is_split_without_loss():
    text = "\n".join(f"row {i} " + "x" * 180 for i in range(120))  # ~22 K characters: two or three cards
    attachments = cards.render_reply(Reply(kind="info", text=text))
    assert len(attachments) >= 2
    seen = [t for a in attachments for t in texts(a["content"]) if t.startswith("row ")]
    assert seen == text.split("\n")
    assert all(cards.card_size(a["content"]) <= cards.MAX_CARD_BYTES for a in attachments)


def test_one_enormous_line_and_non_ascii_stay_within_the_limit():
    for text in ("é" * 60000, "word " * 40000, "\u2014" * 30000):
        attachments = cards.render_reply(Reply(kind="info", text=text))
        for att in attachments:
            validate(att["content"])
            assert cards.card_size(att["content"]) <= cards.MAX_CARD_BYTES


def test_huge_ticket_splits_body_and_keeps_facts():
    ticket = make_ticket().model_copy(
        update={
            "upns": [f"user.number{i}.with.a.long.name@subsidiary{i}.contoso.example.com" for i in range(50)],
            "body": "\n".join(f"- line {i} " + "detail " * 20 for i in range(300)),
        }
    )
    attachments = cards.render_reply(Reply(kind="ticket", text="Submit this.", ticket=ticket), support_url=SUPPORT)
    assert len(attachments) >= 2
    for att in attachments:
        validate(att["content"])
        assert cards.card_size(att["content"]) <= cards.MAX_CARD_BYTES
    all_facts = [f for a in attachments for el in a["content"]["body"] if el["type"] == "FactSet" for f in el["facts"]]
    assert {f["title"] for f in all_facts} >= {"Account", "Affected UPNs", "Cause"}


# ---- text, escalation, plain fallback ----------------------------------------------------------------------


def test_markdown_conversion():
    assert cards.card_markdown("set `userName` now") == "set **userName** now"
    assert cards.card_markdown("**bold `code` here**") == "**bold code here**"
    assert cards.plain("**Cause found:** the `email` field") == "Cause found: the 'email' field"


def test_escalation_card_links_back_and_has_no_engine_buttons():
    reply = Reply(kind="ticket", title="Your Cato Support ticket", text="x", ticket=make_ticket(), choices=[Choice(id="cmd:restart", label="Start over")])
    [att] = cards.render_escalation(reply, support_url=SUPPORT, raised_by="Ada Admin", where="IT › Helpdesk", link="https://teams.microsoft.com/l/message/x/1", say=say)
    card = att["content"]
    validate(card)
    assert not submits(card)
    assert "Raised by **Ada Admin** · IT › Helpdesk" in texts(card)
    assert "🆘 SCIM provisioning escalation" in texts(card)  # the pack's title, not the code's
    urls = [a["url"] for el in card["body"] if el["type"] == "ActionSet" for a in el["actions"]]
    assert urls == ["https://teams.microsoft.com/l/message/x/1", SUPPORT]


def test_plain_text_fallback():
    reply = Reply(
        kind="question",
        title="Test Connection",
        text="Run **Test Connection**.",
        path="A > B",
        quote="HTTP 401",
        steps=[Step(text="Do `this`", path="C > D")],
        choices=[Choice(id="t:a", label="It fails"), Choice(id="t:b", label="It works")],
    )
    text = cards.render_text(reply)
    assert "**" not in text
    assert "Where to look: A › B" in text and 'Look for: "HTTP 401"' in text
    assert "1. Do 'this'\n   (C › D)" in text
    assert "Reply with one of: 1) It fails; 2) It works" in text
    ticket = cards.render_text(Reply(kind="ticket", title="Ticket", text="Paste it.", ticket=make_ticket()), support_url=SUPPORT)
    assert "Account: Contoso 1234" in ticket and "## SCIM provisioning issue" in ticket and SUPPORT in ticket
    big = cards.render_texts([Reply(kind="info", text="word " * 30000)])
    assert len(big) > 1 and all(cards.text_size(t) <= cards.MAX_TEXT_BYTES for t in big)
