"""Microsoft Teams channel (bot/channels/teams/), on the real stack.

- HTTP: real Activity JSON posted to `/api/messages` on the aiohttp app, with `serviceUrl` pointing at
  tests/fakes/bot_connector.py, a local Bot Connector that records what the bot sends (through the Teams
  SDK's client).
- Authentication: with MicrosoftAppId/Password configured, tokens are signed here with a local key that
  the fake connector publishes as the OpenID metadata's JWKS; missing, garbage and wrongly signed tokens
  get 401 and nothing reaches the connector.
- The attacks of issue #14 (serviceUrl tricks, slow bodies, unreachable key host) each have a test here;
  tests/test_teams_attacks.py holds the ones that need raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr

from bot.channels import teams
from bot.channels.teams import channel, clean_text, conversation_id, conversation_link, escalation_channel_id
from bot.render import cards
from bot.service import Conversations, attach
from tests.fakes.bot_connector import Call, FakeBotConnector
from tests.test_cards import submits

TENANT = "72f988bf-0000-0000-0000-tenant000001"
BOT = {"id": "28:scim-help-bot", "name": "SCIM Help"}
USER = {"id": "29:ada", "name": "Ada Admin", "aadObjectId": "aad-ada"}
PERSONAL = {"id": "a:1personal-chat", "conversationType": "personal", "tenantId": TENANT}
TEAM = {"id": "19:general@thread.tacv2", "name": "IT", "aadGroupId": "0b7e5a2c-aaaa-bbbb-cccc-000000000001"}
HELPDESK = "19:helpdesk@thread.tacv2"
ESCALATION = "19:escalations@thread.tacv2"
APP_ID = "6f1d8c3e-1234-4abc-9def-00000000b07a"


# ---- activities as Teams sends them -------------------------------------------------------------------


def teams_activity(service_url: str, *, conversation: dict = PERSONAL, channel: str | None = None, **fields) -> dict:
    body: dict[str, Any] = {
        "type": "message",
        "id": fields.pop("id", None) or f"1700{uuid.uuid4().int % 10**9:09d}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": USER,
        "recipient": BOT,
        "conversation": conversation,
        "locale": "en-US",
        "channelData": {"tenant": {"id": TENANT}},
    }
    if channel:
        body["channelData"].update({"team": TEAM, "channel": {"id": channel, "name": "Helpdesk" if channel == HELPDESK else "Escalations"}})
    body.update(fields)
    return body


def mention(text: str) -> dict:
    return {
        "text": f"<at>{BOT['name']}</at> {text}",
        "entities": [{"type": "mention", "mentioned": BOT, "text": f"<at>{BOT['name']}</at>"}],
    }


def channel_thread(channel: str, message_id: str) -> dict:
    return {"id": f"{channel};messageid={message_id}", "conversationType": "channel", "isGroup": True, "tenantId": TENANT}


def submit_data(call: Call) -> dict[str, str]:
    """choice id -> button title, for every Action.Submit in the cards of one outgoing message."""
    return submits(call.cards)


def fact_values(calls: list[Call]) -> dict[str, str]:
    return {
        f["title"]: f["value"]
        for c in calls
        for card in c.cards
        for el in card["body"]
        if el["type"] == "FactSet"
        for f in el["facts"]
    }


# ---- HTTP harness -----------------------------------------------------------------------------------------


@pytest.fixture
def connector():
    fake = FakeBotConnector().start()
    yield fake
    fake.stop()


class Teams:
    """The aiohttp app with the Teams route mounted, a test client, and the fake connector."""

    def __init__(self, client: TestClient, connector: FakeBotConnector, runtime):
        self.client = client
        self.connector = connector
        self.runtime = runtime

    async def post(self, body, headers: dict | None = None, expect: int = 201):
        resp = await self.client.post("/api/messages", json=body, headers=headers or {})
        assert resp.status == expect, (resp.status, await resp.text())
        return resp

    async def say(self, expect_messages: int = 1, conversation: dict = PERSONAL, **fields) -> list[Call]:
        """Post an activity and wait until the bot has sent `expect_messages` new messages."""
        before = len(self.connector.outgoing())
        await self.post(teams_activity(self.connector.url, conversation=conversation, **fields))
        calls = await self.connector.wait_for(lambda calls: len([c for c in calls if c.kind in ("send", "reply", "create")]) >= before + expect_messages)
        return [c for c in calls if c.kind in ("send", "reply", "create")][before:]

    async def click(self, card_message: Call, choice: str, conversation: dict = PERSONAL, **fields) -> list[Call]:
        """Click a button of a card the bot sent: a message with empty text and the button's data as value."""
        assert choice in submit_data(card_message), f"{choice} not offered; buttons: {submit_data(card_message)}"
        return await self.say(
            conversation=conversation, text="", value={cards.CHOICE_KEY: choice}, replyToId=card_message.response_id, **fields
        )


@pytest.fixture
async def make_teams(make_runtime, connector):
    opened: list[TestClient] = []

    async def factory(**overrides) -> Teams:
        runtime = make_runtime(**overrides)
        app = web.Application()
        attach(app, channel(Conversations(runtime)))
        client = TestClient(TestServer(app))
        await client.start_server()
        opened.append(client)
        return Teams(client, connector, runtime)

    yield factory
    for client in opened:
        await client.close()


def last_with_buttons(calls: list[Call]) -> Call:
    return next(c for c in reversed(calls) if submit_data(c))


# ---- conversations ----------------------------------------------------------------------------------------


def only_card(call: Call) -> dict:
    [card] = call.cards
    assert card["version"] == "1.5"
    return card


async def test_welcome_on_install_shows_the_symptom_picker_once(make_teams):
    t = await make_teams()
    [greeting] = await t.say(type="conversationUpdate", membersAdded=[BOT, USER])
    assert "troubleshoot SCIM provisioning" in json.dumps(only_card(greeting))
    assert {"cannot-enable", "initial-provisioning-fails"} <= set(submit_data(greeting))
    # Teams sends installationUpdate too: one greeting is enough.
    await t.post(teams_activity(t.connector.url, type="installationUpdate", action="add"))
    await t.say(text="help")  # the next message is answered, and nothing came in between
    assert len(t.connector.outgoing()) == 2


async def test_user_added_alone_gets_no_greeting(make_teams):
    t = await make_teams()
    await t.post(teams_activity(t.connector.url, type="conversationUpdate", membersAdded=[USER]))
    await t.say(text="help")
    assert len(t.connector.outgoing()) == 1


async def test_full_path_to_a_resolution_by_clicking(make_teams):
    """Button clicks arrive as messages with empty text and `value` set: symptom -> IdP -> check -> fix."""
    t = await make_teams()
    calls = await t.say(text="help")
    assert "initial-provisioning-fails" in submit_data(calls[-1])
    calls = await t.click(calls[-1], "initial-provisioning-fails")
    assert {"idp:entra", "idp:okta"} <= set(submit_data(calls[-1])) and "No users can be added" in calls[-1].texts()
    calls = await t.click(calls[-1], "idp:entra")
    # Entra's first look for "no users at all" is the job's Current Status; its quarantine reason names the credentials.
    assert {"provisioning-current-status:quarantine-credentials", "provisioning-current-status:off"} <= set(submit_data(calls[-1]))
    calls = await t.click(calls[-1], "provisioning-current-status:quarantine-credentials")
    card = only_card(calls[-1])
    assert "credentials mismatch" in json.dumps(card, ensure_ascii=False).lower()
    steps = [el for el in card["body"] if el["type"] == "ColumnSet"]
    assert steps and steps[0]["columns"][0]["items"][0]["text"] == "**1.**"
    calls = await t.click(calls[-1], "fixed:yes")
    assert {"helpful:yes", "helpful:no"} <= set(submit_data(calls[-1])) and "glad it" in calls[-1].texts()
    calls = await t.click(calls[-1], "helpful:yes")
    assert "Thanks for the feedback" in calls[-1].texts()
    # Every clicked card was updated in place to show the answer instead of its buttons.
    updates = [c for c in t.connector.snapshot() if c.kind == "update"]
    assert len(updates) == 5 and all(not submit_data(u) and "✅" in u.texts() for u in updates)


@pytest.mark.parametrize("scope", ["channel", "groupChat"])
async def test_mentions_are_stripped_and_required_in_channels_and_group_chats(make_teams, scope):
    t = await make_teams()
    if scope == "channel":
        conv, extra = channel_thread(HELPDESK, "1700000000100"), {"channel": HELPDESK}
    else:
        conv, extra = {"id": "19:group-chat@thread.v2", "conversationType": "groupChat", "isGroup": True, "tenantId": TENANT}, {}
    # Not addressed to the bot: silence (Teams only delivers these to RSC bots, but be sure).
    await t.post(teams_activity(t.connector.url, conversation=conv, text="help", **extra))
    # "@SCIM Help help" is the help command once the mention is gone (otherwise it would be off-topic).
    calls = await t.say(conversation=conv, **mention("help"), **extra)
    assert len(t.connector.outgoing()) == 1
    assert "cannot-enable" in submit_data(calls[-1]) and "I help you" in calls[-1].texts()
    # Card clicks carry no mention and are still answered.
    calls = await t.click(calls[-1], "cannot-enable", conversation=conv, **extra)
    assert "enable-error:yes" in submit_data(last_with_buttons(calls))


async def test_unknown_channels_get_plain_text(make_teams):
    t = await make_teams()
    [reply] = await t.say(text="help", channelId="test")
    assert not reply.attachments and reply.body.get("textFormat") == "plain"
    text = reply.body["text"]
    assert "I help you troubleshoot" in text and "**" not in text
    assert "Reply with one of: 1) SCIM provisioning cannot be enabled" in text


def test_clean_text():
    def act(text, **extra):
        return {"type": "message", "text": text, "recipient": BOT, **extra}

    assert clean_text(act(**mention("new users never show up"))) == "new users never show up"
    assert clean_text(act("scim-help reset")) == "reset"
    assert clean_text(act("SCIM help: users missing")) == "users missing"
    assert clean_text(act(**mention("scim-help ticket"))) == "ticket"
    assert clean_text(act("<p>Users&nbsp;missing &amp; <b>no</b> error</p>")) == "Users missing & no error"
    other = {"type": "mention", "mentioned": {"id": "29:jane", "name": "Jane Doe"}, "text": "<at>Jane Doe</at>"}
    both = mention("<at>Jane Doe</at> can't sign in")
    both["entities"].append(other)
    assert clean_text(act(**both)) == "Jane Doe  can't sign in"
    # A display name with regex characters must not break (botbuilder's own remover uses it as a pattern).
    odd = {"id": BOT["id"], "name": "SCIM Help (beta) [x]"}
    weird = act("<at>SCIM Help (beta) [x]</at> help", recipient=odd, entities=[{"type": "mention", "mentioned": odd, "text": "<at>SCIM Help (beta) [x]</at>"}])
    assert clean_text(weird) == "help"


def test_conversation_ids_and_links():
    personal = (teams_activity("https://x", conversation=PERSONAL))
    assert conversation_id(personal) == f"teams:{TENANT}:a:1personal-chat"
    t1 = (teams_activity("https://x", conversation=channel_thread(HELPDESK, "111"), channel=HELPDESK))
    t2 = (teams_activity("https://x", conversation=channel_thread(HELPDESK, "222"), channel=HELPDESK))
    assert conversation_id(t1) == f"teams:{TENANT}:{HELPDESK};messageid=111" != conversation_id(t2)
    where, link = conversation_link(t1)
    assert where == "IT › Helpdesk"
    assert link is not None, "a channel thread has a deep link"
    assert link.startswith("https://teams.microsoft.com/l/message/19%3Ahelpdesk%40thread.tacv2/111?")
    assert f"tenantId={TENANT}" in link and "parentMessageId=111" in link and f"groupId={TEAM['aadGroupId']}" in link
    where, link = conversation_link(personal)
    assert where.startswith("a personal chat") and link is None
    group = (teams_activity("https://x", conversation={"id": "19:abc@thread.v2", "conversationType": "groupChat", "name": "Identity team"}))
    where, link = conversation_link(group)
    assert where == "the group chat “Identity team”" and link.startswith("https://teams.microsoft.com/l/chat/19%3Aabc%40thread.v2/")
    assert escalation_channel_id(ESCALATION) == ESCALATION
    assert escalation_channel_id("https://teams.microsoft.com/l/channel/19%3aescalations%40thread.tacv2/Escalations?groupId=x&tenantId=y") == ESCALATION
    assert escalation_channel_id("  ") is None


# ---- HTTP: the endpoint without credentials (Emulator mode) ---------------------------------------------------


async def test_mount_warns_when_unauthenticated(make_runtime, caplog):
    caplog.set_level(logging.WARNING, logger="scim_help.teams")
    channel(Conversations(make_runtime())).mount(web.Application())
    assert any(r.levelno == logging.WARNING and "WITHOUT authentication" in r.getMessage() for r in caplog.records)


async def test_full_conversation_to_a_ticket_with_escalation(make_teams, caplog):
    caplog.set_level(logging.DEBUG)
    t = await make_teams(teams_escalation_channel=ESCALATION)
    # The bot is added to the support team: it greets in the channel and remembers the reference.
    welcome = await t.say(type="conversationUpdate", conversation={"id": ESCALATION, "conversationType": "channel", "tenantId": TENANT}, channel=ESCALATION, membersAdded=[BOT])
    assert welcome[0].conversation_id == ESCALATION
    assert await t.runtime.store.get_record("teams-ref", ESCALATION)

    calls = await t.say(type="conversationUpdate", membersAdded=[BOT, USER])
    calls = await t.click(calls[-1], "cannot-enable")
    calls = await t.click(last_with_buttons(calls), "enable-error:yes")
    assert "Account name / number" in calls[-1].texts()
    calls = await t.say(text="Contoso (1234)")
    calls = await t.click(last_with_buttons(calls), "idp:entra")
    calls = await t.click(last_with_buttons(calls), "field:skip")  # UPNs
    calls = await t.click(last_with_buttons(calls), "field:skip", expect_messages=2)  # groups -> ticket + escalation post

    posted = [c for c in t.connector.outgoing(ESCALATION) if c is not welcome[0]]
    mine = [c for c in calls if c.conversation_id == PERSONAL["id"]]
    assert len(posted) == 1 and posted[0].kind == "send"
    assert "SCIM provisioning escalation" in posted[0].texts() and "Ada Admin" in posted[0].texts()
    assert fact_values(posted)["Account name / number"] == "Contoso (1234)"
    assert not submit_data(posted[0])  # no engine buttons in the support channel
    assert fact_values(mine)["Account name / number"] == "Contoso (1234)"
    assert fact_values(mine)["Symptom"] == "SCIM provisioning cannot be enabled"
    assert "I've also posted this ticket to the support team's channel" in mine[-1].texts()
    urls = [a["url"] for card in mine[-1].cards for el in card["body"] if el["type"] == "ActionSet" for a in el["actions"] if a["type"] == "Action.OpenUrl"]
    assert urls == [t.runtime.engine.support_url]
    # Clicked cards were updated to show the answer instead of their buttons.
    updates = [c for c in t.connector.snapshot() if c.kind == "update"]
    assert len(updates) >= 4 and all(not submit_data(u) for u in updates[:1])
    assert any("✅" in u.texts() for u in updates)
    # "show ticket" afterwards does not post to the support channel again.
    await t.say(text="ticket")
    assert len([c for c in t.connector.outgoing(ESCALATION) if c is not welcome[0]]) == 1
    # Logs carry no message text, names or UPNs.
    logged = "\n".join(r.getMessage() + json.dumps(getattr(r, "__dict__", {}), default=str) for r in caplog.records if r.name.startswith("scim_help"))
    assert "Contoso (1234)" not in logged and "Ada Admin" not in logged


async def test_escalation_without_a_stored_reference_tells_the_admin(make_teams, caplog):
    caplog.set_level(logging.WARNING, logger="scim_help.teams")
    t = await make_teams(teams_escalation_channel=ESCALATION)
    calls = await t.say(text="help")
    calls = await t.click(last_with_buttons(calls), "cannot-enable")
    calls = await t.click(last_with_buttons(calls), "enable-error:yes")
    await t.say(text="Contoso (1234)")
    await t.say(text="okta")
    calls = await t.say(text="skip")
    calls = await t.say(text="none")
    assert "haven't been added to that channel" in calls[-1].texts()
    assert not t.connector.outgoing(ESCALATION)
    assert any("no conversation reference stored" in r.getMessage() for r in caplog.records)


async def test_duplicate_activity_is_answered_once(make_teams):
    t = await make_teams()
    body = teams_activity(t.connector.url, id="1700000000555", text="help")
    await t.post(body)
    await t.connector.wait_for(lambda calls: len(calls) == 1)
    await t.post(body)  # Bot Framework redelivery: same activity id
    await t.say(text="help")  # a later, different message is answered
    assert len(t.connector.outgoing()) == 2


async def test_a_redelivery_of_a_message_whose_turn_failed_is_answered(make_teams, monkeypatch):
    """The activity id is claimed with the turn (as if the worker died mid-turn, nothing is written): Bot
    Framework's redelivery is answered, not dropped as already handled; once answered, it is dropped."""
    from bot.store.base import StoreUnavailable

    t = await make_teams()
    real = t.runtime.engine._turn
    failed: list[str] = []  # the conversations whose turn met the outage

    async def fail_once(state, msg):
        if not failed:
            failed.append(msg.conversation_id)
            raise StoreUnavailable("redis: connection lost")
        return await real(state, msg)

    monkeypatch.setattr(t.runtime.engine, "_turn", fail_once)
    body = teams_activity(t.connector.url, id="1700000000777", text="help")
    await t.post(body)
    calls = await t.connector.wait_for(lambda calls: len(calls) == 1)
    assert failed and "can't reach my conversation storage" in calls[0].texts()
    await t.post(body)  # Bot Framework delivers it again
    calls = await t.connector.wait_for(lambda calls: len(calls) == 2)
    assert "can't reach" not in calls[1].texts()
    await t.post(body)  # answered now: a further redelivery is dropped
    await t.say(text="help")  # a later message is answered, and nothing came in between
    assert len(t.connector.outgoing()) == 3


async def test_double_click_is_answered_once(make_teams):
    t = await make_teams()
    calls = await t.say(text="help")
    card = last_with_buttons(calls)
    await t.click(card, "cannot-enable")
    before = len(t.connector.outgoing())
    await t.post(teams_activity(t.connector.url, text="", value={cards.CHOICE_KEY: "cannot-enable"}, replyToId=card.response_id))
    await t.say(text="help")
    assert len(t.connector.outgoing()) == before + 1


async def test_channel_threads_are_separate_conversations_and_need_a_mention(make_teams):
    t = await make_teams()
    a = channel_thread(HELPDESK, "1700000000001")
    b = channel_thread(HELPDESK, "1700000000002")
    calls_a = await t.say(conversation=a, channel=HELPDESK, **mention("help"))
    calls_a = await t.click(last_with_buttons(calls_a), "cannot-enable", conversation=a, channel=HELPDESK)
    assert "enable-error:yes" in submit_data(last_with_buttons(calls_a))
    assert calls_a[0].conversation_id == a["id"]  # replies stay in the thread
    # Another thread starts fresh: the same click there is a new conversation, not a stale answer.
    calls_b = await t.say(conversation=b, channel=HELPDESK, **mention("help"))
    calls_b = await t.click(last_with_buttons(calls_b), "cannot-enable", conversation=b, channel=HELPDESK)
    assert "already answered" not in calls_b[0].texts()
    # Without a mention the bot stays quiet in the channel.
    before = len(t.connector.outgoing())
    await t.post(teams_activity(t.connector.url, conversation=a, channel=HELPDESK, text="thanks all"))
    await t.say(conversation=a, channel=HELPDESK, **mention("help"))
    assert len(t.connector.outgoing()) == before + 1


async def test_conversation_resumes_after_a_restart(make_teams):
    t1 = await make_teams()
    calls = await t1.say(text="help")
    calls = await t1.click(last_with_buttons(calls), "cannot-enable")
    card = last_with_buttons(calls)
    # A new process: new runtime and app on the same SQLite store.
    t2 = await make_teams()
    calls = await t2.click(card, "enable-error:yes")
    assert "already answered" not in calls[0].texts()
    assert "Account name / number" in calls[-1].texts()


async def test_oversized_ticket_is_split_under_the_teams_limit(make_teams):
    t = await make_teams(teams_escalation_channel=ESCALATION)
    await t.say(type="conversationUpdate", conversation={"id": ESCALATION, "conversationType": "channel", "tenantId": TENANT}, channel=ESCALATION, membersAdded=[BOT])
    calls = await t.say(text="help")
    calls = await t.click(last_with_buttons(calls), "cannot-enable")
    calls = await t.click(last_with_buttons(calls), "enable-error:yes")
    await t.say(text="Contoso International Holdings " + "9" * 60)
    await t.say(text="okta")
    upns = " ".join(f"user.number{i:02d}.with.a.long.name@subsidiary{i:02d}.contoso.example.com" for i in range(50))
    await t.say(text=upns)
    groups = ", ".join(f"SCIM-Provisioning-Group-{i:02d}-" + "Department-of-Very-Long-Names-" * 3 for i in range(30))
    before = len(t.connector.outgoing(PERSONAL["id"]))
    await t.post(teams_activity(t.connector.url, text=groups))
    await t.connector.wait_for(lambda _: any("Was this conversation helpful?" in c.texts() for c in t.connector.outgoing(PERSONAL["id"])[before:]))
    answer = t.connector.outgoing(PERSONAL["id"])[before:]
    ticket_parts = [c for c in answer if "Ticket text" in c.texts() or "continued — part" in c.texts()]
    assert len(ticket_parts) >= 2, "the ticket should have been split over several messages"
    for c in t.connector.outgoing():
        size = len(json.dumps(c.body, ensure_ascii=False).encode("utf-16-le"))
        assert size <= 40 * 1024  # the fake refuses bigger ones with 413 anyway
        for card in c.cards:
            assert cards.card_size(card) <= cards.MAX_CARD_BYTES
    facts = fact_values(t.connector.outgoing(PERSONAL["id"]))
    assert facts["Affected user UPNs"].count("@") == 50  # the pack's label for the field
    # The escalation post (after the channel's welcome) went through within the limit as well.
    posted = t.connector.outgoing(ESCALATION)
    assert len(posted) >= 2 and "SCIM provisioning escalation" in posted[1].texts()


# ---- HTTP: request validation --------------------------------------------------------------------------------


async def test_bad_requests_are_4xx_not_500(make_teams):
    t = await make_teams()
    resp = await t.client.post("/api/messages", data="hello", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await t.client.post("/api/messages", data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    resp = await t.client.post("/api/messages", data=b"", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    for body in ([1, 2], "x", {"text": "no type"}, {"type": "message", "conversation": {"id": "c"}}, {"type": "message", "conversation": "x", "serviceUrl": 3}):
        resp = await t.client.post("/api/messages", json=body)
        assert resp.status == 400, body
    resp = await t.client.post("/api/messages", json={"type": "message", "serviceUrl": "ftp://x", "conversation": {"id": "c"}})
    assert resp.status == 400
    assert t.connector.snapshot() == []


# ---- HTTP: with credentials configured --------------------------------------------------------------------------


@pytest.fixture
def signing_keys(connector, monkeypatch):
    """A JWKS served by the fake connector as the channel's OpenID metadata, and a different private key."""
    published = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unknown = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(published.public_key()))
    jwk.update({"kid": "published-key", "use": "sig", "endorsements": ["msteams"]})
    connector.jwks.append(jwk)
    monkeypatch.setattr(teams.auth, "OPENID_METADATA_URL", f"{connector.url}/openid")
    return unknown, published


def bot_framework_token(key, *, kid: str, service_url: str, **claims) -> str:
    now = int(time.time())
    claims = {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": service_url, "nbf": now - 10, "exp": now + 3600, **claims}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_requests_without_a_valid_token_get_401(make_teams, signing_keys, caplog):
    signing_keys, _ = signing_keys
    caplog.set_level(logging.INFO)
    t = await make_teams(microsoft_app_id=APP_ID, microsoft_app_password=SecretStr("not-a-real-secret"))
    body = teams_activity(t.connector.url, text="help")
    headers = [
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer " + "a" * 40 + "." + "b" * 40 + "." + "c" * 40},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + bot_framework_token(signing_keys, kid="published-key", service_url=t.connector.url)},
        {"Authorization": "Bearer " + bot_framework_token(signing_keys, kid="no-such-key", service_url=t.connector.url)},
        {"Authorization": "Bearer " + jwt.encode({"iss": "https://evil.example", "aud": APP_ID}, signing_keys, algorithm="RS256")},
    ]
    for h in headers:
        resp = await t.client.post("/api/messages", json=body, headers=h)
        assert resp.status == 401, (h, resp.status, await resp.text())
    assert t.connector.snapshot() == []
    # Well-formed but unsigned-by-Microsoft tokens are refused without leaking the token into the logs.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "garbage" not in logged and "dXNlcjpwYXNz" not in logged
    # The token signed by a key Microsoft never published got as far as the signature check.
    assert "(InvalidSignatureError)" in logged


# ---- the app package ------------------------------------------------------------------------------------------


def test_teams_package(tmp_path: Path):
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("build_package", root / "deploy" / "teams" / "build_package.py")
    assert spec is not None and spec.loader is not None, "deploy/teams/build_package.py is a Python file"
    build_package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_package)

    out = build_package.build(APP_ID, tmp_path / "pkg.zip")
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(z.read("manifest.json"))
        assert build_package.png_size(z.read("color.png")) == (192, 192)
        assert build_package.png_size(z.read("outline.png")) == (32, 32)
    assert manifest["manifestVersion"] == "1.17" and "v1.17" in manifest["$schema"]
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert "${{" not in json.dumps(manifest)
    assert set(manifest["bots"][0]["scopes"]) == {"personal", "team", "groupChat"}
    titles = [c["title"] for cl in manifest["bots"][0]["commandLists"] for c in cl["commands"]]
    assert titles == ["scim-help", "help", "ticket", "reset"]
    with pytest.raises(ValueError):
        build_package.build("not-a-guid", tmp_path / "bad.zip")
    assert build_package.main(["--app-id", APP_ID, "--out", str(tmp_path / "cli.zip")]) == 0


def test_only_the_teams_channel_imports_the_teams_sdk_and_botbuilder_is_gone():
    """The Teams SDK stays behind bot/channels/teams/; botbuilder (archived) and msrest are not used at all."""
    import ast

    root = Path(__file__).resolve().parent.parent
    package = root / "bot" / "channels" / "teams"
    offenders = []
    for path in sorted((root / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for top in {n.split(".")[0] for n in names}:
                if top in ("botbuilder", "botframework", "msrest") or (top == "microsoft_teams" and package not in path.parents):
                    offenders.append(f"{path.relative_to(root)}: {top}")
    assert offenders == []
    import tomllib

    deps = " ".join(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "botbuilder" not in deps and "msrest" not in deps and "microsoft-teams-apps" in deps


async def test_unauthenticated_mode_refuses_a_non_local_service_url(make_runtime):
    """Without MicrosoftAppId anyone could post an activity: the bot must not relay to a URL they name."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from bot.channels import teams

    runtime = make_runtime()
    app = web.Application()
    attach(app, teams.channel(Conversations(runtime)))
    async with TestClient(TestServer(app)) as client:
        activity = {
            "type": "message",
            "id": "a1",
            "text": "new hires never show up in Cato",
            "channelId": "emulator",
            "serviceUrl": "https://attacker.example/",
            "from": {"id": "u1"},
            "recipient": {"id": "bot"},
            "conversation": {"id": "c1"},
        }
        resp = await client.post("/api/messages", json=activity)
        assert resp.status == 403
        assert await runtime.store.load("teams::c1") is None
        assert await runtime.engine.state("teams::c1") is None


async def test_a_burst_waits_unparsed_beyond_the_admission_bound_and_is_all_answered(make_teams, monkeypatch):
    """Above capacity, activities queue before the bot sees them (their memory is a coroutine, not a
    half-processed turn); none is lost and no more than the bound is ever in progress."""
    from bot.channels.teams import bot as bot_mod
    from bot.channels.teams import endpoint as teams_mod

    monkeypatch.setattr(teams_mod, "MAX_ACTIVITIES_IN_PROGRESS", 2)
    t = await make_teams()
    endpoint_handle = bot_mod.TeamsBot.on_activity
    in_progress = peak = 0

    async def counting(self, delivery):
        nonlocal in_progress, peak
        in_progress += 1
        peak = max(peak, in_progress)
        try:
            return await endpoint_handle(self, delivery)
        finally:
            in_progress -= 1

    monkeypatch.setattr(bot_mod.TeamsBot, "on_activity", counting)
    conversations = [{"id": f"a:burst-{i}", "conversationType": "personal"} for i in range(10)]
    await asyncio.gather(*(t.post(teams_activity(t.connector.url, conversation=c, text="help")) for c in conversations))
    assert peak == 2
    answered = {c.conversation_id for c in t.connector.outgoing()}
    assert answered == {c["id"] for c in conversations}


async def test_beyond_the_waiting_bound_activities_are_refused_for_redelivery_and_answered_once(make_teams, monkeypatch):
    """Waiting requests still cost memory, so only so many may wait; the rest get a 503, which Teams answers
    by delivering the activity again. Every activity is answered exactly once in the end."""
    from bot.channels.teams import bot as bot_mod
    from bot.channels.teams import endpoint as teams_mod

    monkeypatch.setattr(teams_mod, "MAX_ACTIVITIES_IN_PROGRESS", 1)
    monkeypatch.setattr(teams_mod, "MAX_ACTIVITIES_WAITING", 2)
    t = await make_teams()
    endpoint = t.client.server.app[teams_mod.TEAMS_ENDPOINT]
    endpoint_handle = bot_mod.TeamsBot.on_activity
    slow = asyncio.Event()

    async def held_up(self, delivery):
        await slow.wait()  # the first activity in progress takes its time
        return await endpoint_handle(self, delivery)

    monkeypatch.setattr(bot_mod.TeamsBot, "on_activity", held_up)
    activities = [teams_activity(t.connector.url, conversation={"id": f"a:full-{i}", "conversationType": "personal"}, text="help") for i in range(5)]
    sends = [asyncio.create_task(t.client.post("/api/messages", json=a)) for a in activities]
    async with asyncio.timeout(10):
        while endpoint.admission.refused < 2:
            await asyncio.sleep(0.01)
    assert endpoint.admission.in_use == 1 and endpoint.admission.waiting == 2
    slow.set()
    statuses = sorted([(await s).status for s in sends])
    assert statuses == [201, 201, 201, 503, 503]
    # Teams delivers the refused ones again, and also repeats one that was answered: answered once each.
    for a in activities:
        await t.post(a, expect=201)
    await t.connector.wait_for(lambda calls: len({c.conversation_id for c in calls if c.kind in ("send", "reply")}) >= 5)
    await asyncio.sleep(0.2)
    answered = [c.conversation_id for c in t.connector.outgoing() if c.kind in ("send", "reply")]
    assert sorted(answered) == sorted(a["conversation"]["id"] for a in activities)
    assert endpoint.admission.in_use == 0 and endpoint.admission.waiting == 0


async def test_ids_with_lone_surrogates_are_answered_without_errors(make_teams, caplog):
    """Activity ids are JSON strings and may carry "\\ud800"; they become store keys. Answered once, and
    the redelivery (same id) not at all."""
    import logging

    t = await make_teams()
    activity = teams_activity(t.connector.url, text="new hires never show up in Cato", id="1\ud800")
    await t.post(activity)
    answer = len(t.connector.outgoing())
    assert answer >= 1  # the turn's cards are sent before the request is answered
    await t.post(activity)  # a redelivery: dropped by its id
    await t.say(text="help")  # a later message is answered, and nothing came in between
    assert len(t.connector.outgoing()) == answer + 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
