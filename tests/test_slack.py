"""The Slack channel end to end: the real aiohttp app with bolt mounted, correctly signed Slack requests,
the real engine and store, and a fake Slack Web API (tests/fakes/slack_api.py) that records every call.

Replies are posted after Slack is acknowledged, so tests wait for the fake's recorded calls (polling with
a timeout) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from bot.channels import slack as slack_channel
from bot.service import Conversations, attach
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, Call, FakeSlackAPI
from tests.support.words import say

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
HELPDESK = "C0HELPDESK"
OTHER = "C0GENERAL"
ESCALATION = "C0ESCALATE"
ADMIN = "U0ADMIN"
SUPPORT = "https://support.example.com/new-case"
# A helpdesk-channel message the engine is confident about (ambient answers need a clear SCIM problem), and
# about which symptom: "new hires never show up" alone could also be read as no users at all.
SCIM_PROBLEM = "SCIM provisioning from Entra to Cato: new hires never show up in the CMA users directory, the rest synced fine"
# The admin's own words when addressing the bot directly (slash command): no confidence bar.
NEW_HIRES = "new hires never show up in Cato since we set up scim"

_ids = itertools.count(1)


def _ts() -> str:
    return f"{int(time.time())}.{next(_ids):06d}"


# ---- harness ---------------------------------------------------------------------------------------


class Slack:
    """Plays Slack: signs and sends events, commands, clicks and modal submissions to our server."""

    def __init__(self, client: TestClient[web.Request, web.Application], fake: FakeSlackAPI, runtime: Any) -> None:
        self.client = client
        self.fake = fake
        self.runtime = runtime
        self.verifier = SignatureVerifier(SECRET)

    def headers(self, body: str, content_type: str, *, timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        verifier = self.verifier if secret is None else SignatureVerifier(secret)
        signature = verifier.generate_signature(timestamp=ts, body=body)
        assert signature is not None, "slack_sdk returns None only without a timestamp"
        return {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }

    async def send(self, body: str, content_type: str, *, headers: dict[str, str] | None = None, **sign: Any):
        h = headers if headers is not None else self.headers(body, content_type, **sign)
        return await self.client.post("/slack/events", data=body.encode(), headers=h)

    # events
    def envelope(self, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": "legacy",
            "team_id": TEAM_ID,
            "api_app_id": "A0APP",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }

    async def event(self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None, expect: int = 200):
        body = json.dumps(self.envelope(event, event_id))
        headers = self.headers(body, "application/json")
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        resp = await self.send(body, "application/json", headers=headers)
        assert resp.status == expect, await resp.text()
        return resp

    async def message(self, text: str, *, channel: str = HELPDESK, user: str | None = ADMIN, thread_ts: str | None = None, channel_type: str = "channel", **extra: Any) -> str:
        ts = _ts()
        event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts, "channel_type": channel_type, "team": TEAM_ID, **extra}
        if thread_ts:
            event["thread_ts"] = thread_ts
        await self.event(event)
        return ts

    async def mention(self, text: str, *, channel: str = OTHER, user: str = ADMIN, thread_ts: str | None = None) -> str:
        ts = _ts()
        event = {"type": "app_mention", "channel": channel, "user": user, "text": f"<@{BOT_USER_ID}> {text}", "ts": ts, "team": TEAM_ID}
        if thread_ts:
            event["thread_ts"] = thread_ts
        await self.event(event)
        return ts

    # slash command
    async def command(self, text: str = "", *, channel: str = OTHER, user: str = ADMIN) -> str:
        response_url = self.fake.response_url()
        body = urlencode(
            {
                "token": "legacy",
                "team_id": TEAM_ID,
                "team_domain": "fake",
                "channel_id": channel,
                "channel_name": "directmessage" if channel.startswith("D") else "general",
                "user_id": user,
                "user_name": "admin",
                "command": "/scim-help",
                "text": text,
                "api_app_id": "A0APP",
                "response_url": response_url,
                "trigger_id": f"{next(_ids)}.{next(_ids)}.trigger",
            }
        )
        resp = await self.send(body, "application/x-www-form-urlencoded")
        assert resp.status == 200, await resp.text()
        assert (await resp.text()) == ""  # acknowledged empty: the answer comes via response_url
        return response_url

    # interactivity
    async def interact(self, payload: dict[str, Any], expect: int = 200):
        body = urlencode({"payload": json.dumps(payload)})
        resp = await self.send(body, "application/x-www-form-urlencoded")
        assert resp.status == expect, await resp.text()
        return resp

    def click_payload(self, message: dict[str, Any], channel: str, button: dict[str, Any], block_id: str, *, user: str = ADMIN, ephemeral: bool = False) -> dict[str, Any]:
        container = {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": ephemeral}
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "fake"},
            "user": {"id": user, "username": "admin", "team_id": TEAM_ID},
            "api_app_id": "A0APP",
            "token": "legacy",
            "trigger_id": f"{next(_ids)}.{next(_ids)}.trigger",
            "container": container,
            "channel": {"id": channel, "name": "x"},
            "response_url": self.fake.response_url(),
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "block_id": block_id,
                    "text": button["text"],
                    "value": button.get("value"),
                    "action_ts": _ts(),
                }
            ],
        }
        if not ephemeral:
            payload["message"] = {k: v for k, v in message.items()}
        return payload

    async def click(self, where: Call | tuple[str, str], value: str | Callable[[str], bool], *, user: str = ADMIN) -> dict[str, Any]:
        """Click the button with this value (or the first whose value matches) on a message the bot posted
        (a chat.postMessage call) or sent ephemerally (a response_url call)."""
        message, channel, ephemeral = self._message(where)
        button, block_id = find_button(message["blocks"], value)
        payload = self.click_payload(message, channel, button, block_id, user=user, ephemeral=ephemeral)
        await self.interact(payload)
        return payload

    def _message(self, where: Call | tuple[str, str]) -> tuple[dict[str, Any], str, bool]:
        if isinstance(where, tuple):
            return self.fake.messages[where], where[0], False
        if where.method == "response_url":
            return {"ts": _ts(), "blocks": where["blocks"], "text": where.get("text", "")}, OTHER, True
        key = self.key_of(where)
        return self.fake.messages[key], key[0], False  # the latest version (it may have been updated)

    @staticmethod
    def key_of(call: Call) -> tuple[str, str]:
        return call.response["channel"], call.response["ts"]

    def posts(self, **match: Any) -> list[Call]:
        return self.fake.calls_to("chat.postMessage", **match)

    async def next_posts(self, before: int, count: int = 1, **match: Any) -> list[Call]:
        """Wait for `count` more chat.postMessage calls (matching `match`) than `before`."""
        calls = await self.fake.wait_calls("chat.postMessage", before + count, **match)
        return calls[before:]


def find_button(blocks: list[dict[str, Any]], value: str | Callable[[str], bool]) -> tuple[dict[str, Any], str]:
    for b in blocks:
        if b.get("type") != "actions":
            continue
        for el in b["elements"]:
            v = el.get("value")
            if v is None:
                continue
            if (callable(value) and value(v)) or v == value:
                return el, b["block_id"]
    raise AssertionError(f"no button {value!r} in {[el.get('value') for b in blocks if b.get('type') == 'actions' for el in b['elements']]}")


def button_values(blocks: list[dict[str, Any]]) -> list[str]:
    return [el["value"] for b in blocks if b.get("type") == "actions" for el in b["elements"] if "value" in el]


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks)


@pytest.fixture
async def fake():
    async with FakeSlackAPI() as f:
        yield f
    # Everything the bot sent was valid Block Kit (the fake checks the limits like Slack does).
    assert f.invalid == []


def _build(runtime) -> web.Application:
    try:
        from bot.server import build_app
    except ImportError:
        app = web.Application()
        attach(app, slack_channel.channel(Conversations(runtime)))
        return app
    return build_app(runtime)


@pytest.fixture
def slack_runtime(make_runtime, fake):
    return make_runtime(
        slack_bot_token=SecretStr("xoxb-test-token"),
        slack_signing_secret=SecretStr(SECRET),
        slack_api_url=fake.api_url,
        slack_channels=f"{HELPDESK}, C0OTHERHELP",
        escalation_channel=ESCALATION,
        support_url=SUPPORT,
        web_chat=False,
    )


@pytest.fixture
async def slack(slack_runtime, fake):
    app = _build(slack_runtime)
    assert "POST" in {r.method for r in app.router.routes() if r.resource and r.resource.canonical == "/slack/events"}
    async with TestClient(TestServer(app)) as client:
        yield Slack(client, fake, slack_runtime)
    await slack_runtime.close()


# ---- request verification ------------------------------------------------------------------------------


async def test_unsigned_forged_and_stale_requests_are_refused(slack: Slack):
    event = {"type": "message", "channel": HELPDESK, "user": ADMIN, "text": SCIM_PROBLEM, "ts": _ts(), "channel_type": "channel"}
    body = json.dumps(slack.envelope(event))
    ct = "application/json"
    forged = await slack.send(body, ct, secret="not-the-secret")
    stale = await slack.send(body, ct, timestamp=int(time.time()) - 6 * 60)
    missing = await slack.send(body, ct, headers={"Content-Type": ct})
    tampered_headers = slack.headers(body, ct)
    tampered = await slack.send(body.replace("new hires", "old hires"), ct, headers=tampered_headers)
    for resp in (forged, stale, missing, tampered):
        assert resp.status in (401, 403)
    # Slash commands and clicks go through the same check.
    cmd = urlencode({"command": "/scim-help", "text": "", "user_id": ADMIN, "channel_id": OTHER, "team_id": TEAM_ID, "response_url": slack.fake.response_url()})
    assert (await slack.send(cmd, "application/x-www-form-urlencoded", secret="wrong")).status in (401, 403)
    await slack.fake.settle()
    assert slack.fake.calls == []  # nothing was processed, not even auth.test
    assert await slack.runtime.engine.state(f"slack:{TEAM_ID}:{HELPDESK}:{event['ts']}") is None


async def test_without_a_signing_secret_nothing_is_accepted_over_http(slack_runtime, fake):
    """bolt's own verification is off (dispatch checks signatures once, with slack_sdk's verifier), so a
    SlackBot built without a secret must refuse everything rather than trust it."""
    bot = slack_channel.SlackBot(Conversations(slack_runtime))
    bot._verifier = None  # as if no signing secret had been configured
    app = web.Application()
    app.router.add_post("/slack/events", bot.dispatch)
    event = {"type": "message", "channel": HELPDESK, "user": ADMIN, "text": SCIM_PROBLEM, "ts": _ts(), "channel_type": "channel"}
    async with TestClient(TestServer(app)) as client:
        body = json.dumps({"type": "event_callback", "team_id": TEAM_ID, "event_id": "Ev-nosecret", "event": event})
        resp = await client.post("/slack/events", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 401
    await fake.settle()
    assert fake.calls == []


async def test_signed_but_malformed_payloads_get_a_4xx_and_do_nothing(slack: Slack, caplog):
    import logging

    caplog.set_level(logging.WARNING)
    good_event = {"type": "message", "channel": "D0ADMIN", "user": ADMIN, "text": "hi", "ts": _ts(), "channel_type": "im"}
    cases: list[tuple[str, str, set[int]]] = [
        ("null", "application/json", {400}),
        ("[1, 2]", "application/json", {400}),
        ("{not json", "application/json", {400}),
        (json.dumps({"event": None}), "application/json", {400}),
        (json.dumps(slack.envelope({**good_event, "ts": 1.5})), "application/json", {400}),
        (json.dumps(slack.envelope({**good_event, "user": ["U1"]})), "application/json", {400}),
        (json.dumps({**slack.envelope(good_event), "authorizations": [[]]}), "application/json", {400}),
        (json.dumps({**slack.envelope(good_event), "team": []}), "application/json", {400}),
        (json.dumps(slack.envelope({"type": "reaction_added", "user": ADMIN, "item": {}})), "application/json", {200}),
        (urlencode({"payload": json.dumps({"type": "block_actions", "user": {"id": ADMIN}, "actions": "x"})}), "application/x-www-form-urlencoded", {400}),
        (urlencode({"payload": json.dumps({"type": "view_submission", "user": {"id": ADMIN}, "view": {"state": {"values": []}}})}), "application/x-www-form-urlencoded", {400}),
        (urlencode({"command": "/scim-help", "text": "help"}), "application/x-www-form-urlencoded", {400}),
    ]
    for body, ctype, statuses in cases:
        resp = await slack.send(body, ctype)
        assert resp.status in statuses, (body[:80], resp.status)
    resp = await slack.client.post("/slack/events", data=b"\xff\xfe\x00", headers=slack.headers("x", "application/json"))
    assert resp.status in (400, 401)
    await slack.fake.settle()
    assert slack.fake.api_calls() == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_url_verification_challenge(slack: Slack):
    body = json.dumps({"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"})
    resp = await slack.send(body, "application/json")
    assert resp.status == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in await resp.text()


# ---- helpdesk channel, mentions, DMs ------------------------------------------------------------------


async def test_helpdesk_channel_ignores_off_topic(slack: Slack):
    ts = await slack.message("printer on floor 3 is jammed")
    await slack.fake.settle()
    assert slack.fake.api_calls() == []
    assert await slack.runtime.engine.state(f"slack:{TEAM_ID}:{HELPDESK}:{ts}") is None


async def test_helpdesk_channel_answers_scim_problem_in_a_thread(slack: Slack):
    ts = await slack.message(SCIM_PROBLEM)
    post = await slack.fake.wait_for("chat.postMessage")
    assert post["channel"] == HELPDESK and post["thread_ts"] == ts
    assert post["text"]  # fallback text for notifications
    assert button_values(post["blocks"])  # the first check, with answer buttons
    state = await slack.runtime.engine.state(f"slack:{TEAM_ID}:{HELPDESK}:{ts}")
    assert state is not None and state.symptom == "additional-users-missing"

    # A reply inside the thread the bot owns continues the conversation, no mention needed.
    before = len(slack.posts())
    await slack.message("not sure", thread_ts=ts)
    (reply,) = await slack.next_posts(before)
    assert reply["thread_ts"] == ts
    # Somebody else's thread in the same channel is left alone.
    await slack.message(SCIM_PROBLEM, thread_ts=_ts())
    # Messages outside the helpdesk channels are not ambient candidates.
    await slack.message(SCIM_PROBLEM, channel=OTHER)
    await slack.fake.settle()
    assert len(slack.posts()) == before + 1


async def test_bots_edits_and_self_are_ignored(slack: Slack):
    text = SCIM_PROBLEM
    await slack.message(text, bot_id="B0OTHER")
    await slack.message(text, subtype="bot_message", user=None)
    await slack.message(text, user=BOT_USER_ID)
    await slack.message(text, subtype="message_changed")
    await slack.message(text, subtype="message_deleted")
    await slack.message(text, subtype="channel_join")
    await slack.fake.settle()
    assert slack.fake.api_calls() == []


async def test_mention_is_answered_in_a_thread_once(slack: Slack):
    ts = _ts()
    text = f"<@{BOT_USER_ID}> SCIM provisioning from Okta can't be enabled in the CMA, it shows an error"
    # Slack delivers a mention in a channel the bot is in twice: as app_mention and as message.
    await slack.event({"type": "app_mention", "channel": HELPDESK, "user": ADMIN, "text": text, "ts": ts, "team": TEAM_ID})
    await slack.event({"type": "message", "channel": HELPDESK, "user": ADMIN, "text": text, "ts": ts, "channel_type": "channel"})
    post = await slack.fake.wait_for("chat.postMessage")
    await slack.fake.settle()
    assert len(slack.posts()) == 1
    assert post["thread_ts"] == ts
    state = await slack.runtime.engine.state(f"slack:{TEAM_ID}:{HELPDESK}:{ts}")
    assert state is not None and state.transcript[0].text.startswith("SCIM provisioning")  # mention stripped


async def test_a_mention_or_helpdesk_message_without_a_timestamp_starts_no_conversation(slack: Slack):
    """Found by mypy: an event without ts made the conversation id end in ':None'."""
    text = f"<@{BOT_USER_ID}> SCIM provisioning from Okta can't be enabled in the CMA"
    await slack.event({"type": "app_mention", "channel": OTHER, "user": ADMIN, "text": text, "team": TEAM_ID})
    await slack.event({"type": "message", "channel": HELPDESK, "user": ADMIN, "text": "new hires never show up in Cato via SCIM", "channel_type": "channel"})
    await slack.fake.settle()
    assert slack.posts() == []
    for channel in (OTHER, HELPDESK):
        assert await slack.runtime.engine.state(f"slack:{TEAM_ID}:{channel}:None") is None


async def test_direct_message_is_always_answered(slack: Slack):
    dm = "D0ADMIN"
    await slack.message("hi", channel=dm, channel_type="im")
    post = await slack.fake.wait_for("chat.postMessage", channel=dm)
    assert "thread_ts" not in post.body  # DMs are answered in the DM itself
    state = await slack.runtime.engine.state(f"slack:{TEAM_ID}:{dm}:dm")
    assert state is not None
    # Still one conversation when the admin answers in a thread inside the DM; the reply follows them.
    before = len(slack.posts())
    await slack.message("new users never appear in Cato", channel=dm, channel_type="im", thread_ts=post.response["ts"])
    (reply,) = await slack.next_posts(before)
    assert reply["channel"] == dm and reply.get("thread_ts")
    assert (await slack.runtime.engine.state(f"slack:{TEAM_ID}:{dm}:dm")).turns == 2


async def test_retried_event_is_answered_exactly_once(slack: Slack):
    ts = _ts()
    event = {"type": "message", "channel": HELPDESK, "user": ADMIN, "text": SCIM_PROBLEM, "ts": ts, "channel_type": "channel"}
    await slack.event(event, event_id="Ev0RETRY01")
    await slack.event(event, event_id="Ev0RETRY01", retry=1)
    await slack.event(event, event_id="Ev0RETRY01", retry=2)
    await slack.fake.wait_for("chat.postMessage")
    await slack.fake.settle()
    assert len(slack.posts()) == 1
    assert (await slack.runtime.engine.state(f"slack:{TEAM_ID}:{HELPDESK}:{ts}")).turns == 1


async def test_a_user_id_with_a_lone_surrogate_is_answered_and_its_records_stored(slack: Slack, caplog):
    """JSON may carry "\\ud800"; the store keys built from the event must use the cleaned id, or the
    turn's write (state and the channel's "latest conversation" record together) fails."""
    ts = _ts()
    user = "U0\ud800ODD"
    text = f"<@{BOT_USER_ID}> SCIM provisioning from Okta can't be enabled in the CMA, it shows an error"
    await slack.event({"type": "app_mention", "channel": HELPDESK, "user": user, "text": text, "ts": ts, "team": TEAM_ID})
    await slack.fake.wait_for("chat.postMessage", thread_ts=ts)
    assert await slack.runtime.engine.state(f"slack:{TEAM_ID}:{HELPDESK}:{ts}") is not None
    assert await slack.runtime.store.get_record(slack_channel.LAST_RECORD, f"{TEAM_ID}:{HELPDESK}:U0\ufffdODD") == f"slack:{TEAM_ID}:{HELPDESK}:{ts}"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The same for the delivery keys, which carry the event id.
    ts = _ts()
    event = {"type": "app_mention", "channel": HELPDESK, "user": ADMIN, "text": text, "ts": ts, "team": TEAM_ID}
    await slack.event(event, event_id="Ev0\udfffODD")
    await slack.event(event, event_id="Ev0\udfffODD", retry=1)
    await slack.fake.wait_for("chat.postMessage", thread_ts=ts)
    await slack.fake.settle()
    assert len(slack.posts(thread_ts=ts)) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _bot(slack: Slack) -> slack_channel.SlackBot:
    return slack.client.app[slack_channel.SlackBotKey]


async def _warm_up(slack: Slack) -> None:
    # bolt asks auth.test who it is on its first request; get that done while the fake still answers.
    await slack.message("hi", channel="D0WARM", channel_type="im")
    await slack.fake.wait_for("chat.postMessage", channel="D0WARM")


async def test_above_the_backlog_bound_requests_wait_for_room_and_all_are_answered(slack: Slack):
    bot = _bot(slack)
    bot.backlog.limit, bot.backlog.wait = 2, 5.0  # before its first request, which sizes it
    await _warm_up(slack)
    before = len(slack.posts())
    slack.fake.open.clear()  # Slack stops answering: acknowledged turns pile up
    sends = [asyncio.create_task(slack.message("new users never appear in Cato", channel=f"D0BURST{i}", channel_type="im")) for i in range(6)]
    await slack.fake.wait_calls("chat.postMessage", before + 2)
    await asyncio.sleep(0.3)
    # Two are acknowledged and waiting on Slack; the other four wait for room before their ack.
    assert sum(t.done() for t in sends) == 2
    assert bot.backlog.in_use == 2
    slack.fake.open.set()
    await asyncio.gather(*sends)
    for i in range(6):
        await slack.fake.wait_for("chat.postMessage", channel=f"D0BURST{i}")
    await slack.fake.settle()
    assert len(slack.posts()) == before + 6
    assert bot.backlog.in_use == 0  # each slot came back when its listener finished
    assert bot.backlog.refused == 0


async def test_without_room_in_time_an_event_is_refused_for_redelivery_but_never_the_last_retry(slack: Slack, caplog):
    bot = _bot(slack)
    bot.backlog.limit, bot.backlog.wait = 1, 0.1
    await _warm_up(slack)
    slack.fake.open.clear()
    await slack.message("new users never appear in Cato", channel="D0FIRST", channel_type="im")
    await slack.fake.wait_for("chat.postMessage", channel="D0FIRST")  # holds the only slot
    event = {"type": "message", "channel": "D0SECOND", "user": ADMIN, "text": "new users never appear in Cato", "ts": _ts(), "channel_type": "im"}
    conv = f"slack:{TEAM_ID}:D0SECOND:dm"
    await slack.event(event, event_id="Ev0BUSY01", expect=503)
    assert await slack.runtime.engine.state(conv) is None  # refused means not processed at all
    assert "over capacity" in caplog.text
    # Slack retries a failed delivery three times; the last one is taken even when there is no room.
    await slack.event(event, event_id="Ev0BUSY01", retry=3)
    slack.fake.open.set()
    await slack.fake.wait_for("chat.postMessage", channel="D0SECOND")
    # An earlier retry that arrives late is a repeat: acknowledged, not answered again. It comes once the
    # first event has let go of the slot (its entry is removed in a batch, up to DONE_LINGER later): a
    # repeat is told apart only after admission.
    for _ in range(200):
        if bot.backlog.in_use == 0:
            break
        await asyncio.sleep(0.01)
    await slack.event(event, event_id="Ev0BUSY01", retry=1)
    await slack.fake.settle()
    assert len(slack.posts(channel="D0SECOND")) == 1
    assert (await slack.runtime.engine.state(conv)).turns == 1
    assert bot.backlog.refused == 1 and bot.backlog.in_use == 0
    metrics = await (await slack.client.get("/metrics")).text()
    assert 'scim_help_admission_refused_total{gate="slack"} 1.0' in metrics


# ---- slash command --------------------------------------------------------------------------------------


async def test_slash_command_without_text_shows_an_ephemeral_picker(slack: Slack):
    url = await slack.command("")
    resp = await slack.fake.wait_for("response_url", where=lambda c: c.path.endswith(url.rsplit("/", 1)[1]))
    assert resp["response_type"] == "ephemeral"
    symptoms = [s.id for s in slack.runtime.bundle.pack.symptoms]
    assert button_values(resp["blocks"]) == symptoms
    assert slack.posts() == []

    # Picking a symptom starts a real conversation in a new thread of that channel.
    await slack.click(resp, symptoms[0])
    root = await slack.fake.wait_for("chat.postMessage", channel=OTHER)
    assert "thread_ts" not in root.body and f"<@{ADMIN}>" in root["text"]
    first = await slack.fake.wait_for("chat.postMessage", 2, channel=OTHER)
    root_ts = slack.key_of(root)[1]
    assert first["thread_ts"] == root_ts
    state = await slack.runtime.engine.state(f"slack:{TEAM_ID}:{OTHER}:{root_ts}")
    assert state is not None and state.symptom == symptoms[0]
    # the picker was replaced (its buttons are gone)
    replaced = await slack.fake.wait_for("response_url", where=lambda c: c.get("replace_original") is True)
    assert button_values(replaced["blocks"]) == []


async def test_slash_command_with_text_then_help_ticket_reset(slack: Slack):
    await slack.command(NEW_HIRES, channel=OTHER)
    root, first = await slack.fake.wait_calls("chat.postMessage", 2)
    root_ts = slack.key_of(root)[1]
    assert first["thread_ts"] == root_ts
    conv = f"slack:{TEAM_ID}:{OTHER}:{root_ts}"
    assert (await slack.runtime.engine.state(conv)).symptom == "additional-users-missing"

    url = await slack.command("help")
    helped = await slack.fake.wait_for("response_url", where=lambda c: url.endswith(c.path.rsplit("/", 1)[1]))
    assert helped["response_type"] == "ephemeral"
    assert "start over" in all_text(helped["blocks"]).lower()
    # help repeats the pending question; its buttons still route to the thread's conversation
    assert any(b.get("block_id", "").endswith("|" + conv) for b in helped["blocks"] if b["type"] == "actions")

    url = await slack.command("ticket")
    shown = await slack.fake.wait_for("response_url", where=lambda c: url.endswith(c.path.rsplit("/", 1)[1]))
    assert shown["blocks"][0]["type"] == "header"
    assert "```" in all_text(shown["blocks"])

    url = await slack.command("reset")
    reset = await slack.fake.wait_for("response_url", where=lambda c: url.endswith(c.path.rsplit("/", 1)[1]))
    assert "Starting over" in all_text(reset["blocks"])
    state = await slack.runtime.engine.state(conv)
    assert state.episode == 2 and state.symptom is None
    # a symptom picked from the ephemeral reset message continues in the thread
    before = len(slack.posts())
    await slack.click(reset, "cannot-enable")
    (post,) = await slack.next_posts(before)
    assert post["channel"] == OTHER and post["thread_ts"] == root_ts
    assert (await slack.runtime.engine.state(conv)).symptom == "cannot-enable"


async def test_slash_ticket_without_conversation(slack: Slack):
    url = await slack.command("ticket", channel="C0NEWCHAN")
    resp = await slack.fake.wait_for("response_url", where=lambda c: url.endswith(c.path.rsplit("/", 1)[1]))
    assert "no conversation" in all_text(resp["blocks"]).lower()


async def test_slash_command_where_the_bot_cannot_post_moves_to_dm(slack: Slack):
    slack.fake.fail("chat.postMessage", error="not_in_channel")
    await slack.command(NEW_HIRES, channel="C0PRIVATE")
    opened = await slack.fake.wait_for("conversations.open")
    assert opened["users"] == ADMIN
    post = await slack.fake.wait_for("chat.postMessage", channel="D0ADMIN")
    assert "thread_ts" not in post.body
    note = await slack.fake.wait_for("response_url")
    assert "DM" in all_text(note["blocks"])


# ---- buttons, the full conversation, the hand-off ------------------------------------------------------


def _pick(values: list[str]) -> str:
    for preferred in ("fixed:no", "field:skip"):
        if preferred in values:
            return preferred
    unsure = [v for v in values if v.endswith(":unsure")]
    if unsure:
        return unsure[0]
    return values[0]


async def test_full_conversation_through_buttons_ends_in_ticket_and_handoff(slack: Slack, monkeypatch):
    channel = OTHER
    ts = await slack.mention("", channel=channel)  # an empty mention: greeting + symptom picker
    conv = f"slack:{TEAM_ID}:{channel}:{ts}"
    post = await slack.fake.wait_for("chat.postMessage")
    assert post["thread_ts"] == ts
    seen = 1
    ticket_post = None
    for _ in range(30):
        latest = slack.posts()[-1]
        values = button_values(latest["blocks"])
        state = await slack.runtime.engine.state(conv)
        if state.pending and state.pending.kind == "field" and state.pending.id == "account":
            await slack.message("Contoso 12345", channel=channel, thread_ts=ts)
        else:
            assert values, f"stuck without buttons: {latest['text']}"
            choice = _pick(values)
            updates = len(slack.fake.calls_to("chat.update"))
            await slack.click(latest, choice)
            # the clicked message is updated at once: the answer is shown, its buttons are gone
            upd = await slack.fake.wait_for("chat.update", updates + 1)
            assert upd["ts"] == slack.key_of(latest)[1]
            assert choice not in button_values(upd["blocks"])
            assert f"<@{ADMIN}> chose" in all_text(upd["blocks"])
        (latest,) = (await slack.next_posts(seen))[:1]
        await slack.fake.settle(quiet=0.1)
        seen = len(slack.posts())
        if any(b["type"] == "header" for b in slack.posts()[-1]["blocks"]):
            ticket_post = slack.posts()[-1]
            break
    assert ticket_post is not None, "the conversation never reached the ticket"
    state = await slack.runtime.engine.state(conv)
    assert state.phase == "closed" and state.outcome == "escalated" and state.account == "Contoso (12345)"
    blocks = ticket_post["blocks"]
    assert all(p["thread_ts"] == ts for p in slack.posts())
    # the ticket: fields, the body as a code block, the portal link and the hand-off button
    assert any("fields" in b for b in blocks)
    assert "```" in all_text(blocks) and "Contoso (12345)" in all_text(blocks)
    # rendered, not only pasted: the steps taken and what to attach, under the pack's headings
    assert "Troubleshooting steps taken" in all_text(blocks) and "Please attach" in all_text(blocks)
    urls = [el.get("url") for b in blocks if b["type"] == "actions" for el in b["elements"]]
    assert SUPPORT in urls
    handoff_button, handoff_block = find_button(blocks, "handoff")
    assert handoff_button["text"]["text"] == "Review & send to helpdesk"

    # Review & send: the modal opens with the trigger id of the click, prefilled.
    message, ch, _ = slack._message(ticket_post)
    click = slack.click_payload(message, ch, handoff_button, handoff_block)
    await slack.interact(click)
    opened = await slack.fake.wait_for("views.open")
    assert opened["trigger_id"] == click["trigger_id"]
    view = opened["view"]
    assert view["type"] == "modal" and len(view["title"]["text"]) <= 24
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs["account"]["initial_value"] == "Contoso (12345)"
    assert "SCIM provisioning issue" in inputs["body"]["initial_value"]

    def submission(values: dict[str, str]) -> dict[str, Any]:
        state_values = {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in values.items()}
        return {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "fake"},
            "user": {"id": ADMIN, "team_id": TEAM_ID},
            "api_app_id": "A0APP",
            "token": "legacy",
            "trigger_id": "1.2.trigger",
            "view": {**view, "id": "V0MODAL1", "state": {"values": state_values}},
        }

    good = {
        "account": "Contoso 12345",
        "idp": inputs["idp"].get("initial_value", ""),
        "upns": "jane.doe@contoso.com\nbob@contoso.com",
        "groups": "Cato-Users",
        "body": inputs["body"]["initial_value"],
    }
    # Invalid input is refused in the modal, field by field, and nothing is posted.
    resp = await slack.interact(submission({**good, "account": "  ", "upns": "jane.doe@contoso.com\nnot-an-email"}))
    errors = await resp.json()
    assert errors["response_action"] == "errors"
    assert set(errors["errors"]) == {"account", "upns"}
    await slack.fake.settle(quiet=0.2)
    assert slack.posts(channel=ESCALATION) == []

    # The store is out when the submission is first processed: it is not marked handled, and the inbox's
    # retry posts it (Slack never sends a submission again).
    from bot.store.base import StoreUnavailable

    engine, real_state = slack.runtime.engine, slack.runtime.engine.state
    outages: list[str] = []  # the conversation ids whose state read met the outage

    async def state_with_one_outage(cid):
        if not outages:
            outages.append(cid)
            raise StoreUnavailable("redis: connection refused")
        return await real_state(cid)

    monkeypatch.setattr(engine, "state", state_with_one_outage)
    resp = await slack.interact(submission(good))
    assert (await resp.text()) == ""  # closes the modal
    esc = await slack.fake.wait_for("chat.postMessage", channel=ESCALATION, timeout=15)
    assert outages
    permalink = await slack.fake.wait_for("chat.getPermalink")
    assert permalink["channel"] == channel and permalink["message_ts"] == ts
    text = all_text(esc["blocks"])
    assert f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}" in text
    assert "jane.doe@contoso.com" in text and "Contoso 12345" in text
    # the body was not edited, so it was rebuilt with the edited UPNs
    assert "jane.doe@contoso.com" in "".join(b["text"]["text"] for b in esc["blocks"] if b["type"] == "section" and "text" in b and "```" in b["text"]["text"])
    # and the admin gets the text to paste plus the portal button, in the thread
    confirm = await slack.fake.wait_for("chat.postMessage", where=lambda c: c.get("thread_ts") == ts and f"<#{ESCALATION}>" in all_text(c["blocks"]))
    assert SUPPORT in [el.get("url") for b in confirm["blocks"] if b["type"] == "actions" for el in b["elements"]]
    # a second submission of the same view is not posted twice
    await slack.interact(submission(good))
    await slack.fake.settle(quiet=0.2)
    assert len(slack.posts(channel=ESCALATION)) == 1


async def test_double_click_produces_one_turn(slack: Slack):
    ts = await slack.mention("", channel=OTHER)
    picker = await slack.fake.wait_for("chat.postMessage")
    conv = f"slack:{TEAM_ID}:{OTHER}:{ts}"
    turns = (await slack.runtime.engine.state(conv)).turns
    message, ch, _ = slack._message(picker)
    symptom = button_values(picker["blocks"])[0]
    button, block = find_button(message["blocks"], symptom)
    payload = slack.click_payload(dict(message), ch, button, block)

    other_button, _ = find_button(message["blocks"], button_values(picker["blocks"])[1])
    other = slack.click_payload(dict(message), ch, other_button, block)
    # a double click, a triple click, and a quick click on a second answer of the same question
    await asyncio.gather(slack.interact(payload), slack.interact(payload), slack.interact(payload), slack.interact(other))
    await slack.fake.wait_for("chat.postMessage", 2)
    await slack.fake.settle()
    assert len(slack.posts()) == 2
    assert len(slack.fake.calls_to("chat.update")) == 1
    assert (await slack.runtime.engine.state(conv)).turns == turns + 1


async def test_a_click_whose_turn_met_a_store_outage_is_answered_when_retried(slack: Slack, monkeypatch):
    """The click's keys are claimed with its turn: a turn that failed leaves them free, so the retry of the
    inbox entry answers the click instead of dropping it as already handled."""
    from bot.store.base import StoreUnavailable

    ts = await slack.mention("", channel=OTHER)
    picker = await slack.fake.wait_for("chat.postMessage")
    conv = f"slack:{TEAM_ID}:{OTHER}:{ts}"
    turns = (await slack.runtime.engine.state(conv)).turns
    real = slack.runtime.handle
    failed: list[str] = []  # the choices whose turn met the outage

    async def outage_once(msg):
        if msg.choice and not failed:
            failed.append(msg.choice)
            raise StoreUnavailable("redis: connection refused")
        return await real(msg)

    monkeypatch.setattr(slack.runtime, "handle", outage_once)
    await slack.click(picker, button_values(picker["blocks"])[0])
    await slack.fake.wait_for("chat.postMessage", 2, timeout=15)  # after the inbox's retry (1 s)
    await slack.fake.settle()
    assert failed and (await slack.runtime.engine.state(conv)).turns == turns + 1
    assert len(slack.posts()) == 2 and len(slack.fake.calls_to("chat.update")) == 1


# ---- rate limits and failures ---------------------------------------------------------------------------


async def test_rate_limited_post_is_retried(slack: Slack):
    slack.fake.fail("chat.postMessage", status=429, retry_after=0)
    ts = await slack.message("hello", channel="D0ADMIN", channel_type="im")
    calls = await slack.fake.wait_calls("chat.postMessage", 2)
    await slack.fake.settle()
    assert len(calls) == 2 and calls[0].body == calls[1].body  # the same message, sent again
    assert slack.fake.calls_to("chat.postEphemeral") == []
    assert ts


async def test_server_errors_are_retried(slack: Slack):
    slack.fake.fail("chat.postMessage", status=503, times=1)
    await slack.message("hello", channel="D0ADMIN", channel_type="im")
    await slack.fake.wait_calls("chat.postMessage", 2)
    await slack.fake.settle()
    assert slack.fake.calls_to("chat.postEphemeral") == []


async def test_web_api_failure_tells_the_user_and_keeps_the_conversation(slack: Slack):
    slack.fake.fail("chat.postMessage", error="internal_error")
    ts = await slack.message(SCIM_PROBLEM)
    conv = f"slack:{TEAM_ID}:{HELPDESK}:{ts}"
    note = await slack.fake.wait_for("chat.postEphemeral")
    assert note["user"] == ADMIN and note["channel"] == HELPDESK and note["thread_ts"] == ts
    assert "internal_error" in note["text"] and "saved" in note["text"]
    state = await slack.runtime.engine.state(conv)
    assert state is not None and state.symptom == "additional-users-missing" and state.pending is not None
    # The admin carries on in the thread; the conversation is where it was.
    before = len(slack.posts())
    await slack.message("help", thread_ts=ts)
    (post,) = await slack.next_posts(before)
    assert post["thread_ts"] == ts
    state2 = await slack.runtime.engine.state(conv)
    assert state2.symptom == state.symptom and state2.pending == state.pending


async def test_conversation_resumes_after_restart(slack_runtime, fake, make_runtime):
    """State is in the store: a new process (new runtime, new app) continues the thread."""
    app = _build(slack_runtime)
    async with TestClient(TestServer(app)) as client:
        s = Slack(client, fake, slack_runtime)
        ts = await s.message(SCIM_PROBLEM)
        first = await fake.wait_for("chat.postMessage")
    await slack_runtime.close()
    runtime2 = make_runtime(**{k: getattr(slack_runtime.settings, k) for k in ("slack_bot_token", "slack_signing_secret", "slack_api_url", "slack_channels", "escalation_channel", "support_url", "web_chat")})
    async with TestClient(TestServer(_build(runtime2))) as client:
        s = Slack(client, fake, runtime2)
        await s.click(first, _pick(button_values(first["blocks"])))
        (post,) = await s.next_posts(1)
        assert post["thread_ts"] == ts
        assert (await runtime2.engine.state(f"slack:{TEAM_ID}:{HELPDESK}:{ts}")).turns == 2
    await runtime2.close()


# ---- manifest ---------------------------------------------------------------------------------------


def test_manifest_matches_the_app():
    from pathlib import Path

    manifest = yaml.safe_load((Path(__file__).parent.parent / "deploy" / "slack" / "manifest.yml").read_text())
    assert manifest["_metadata"]["major_version"] == 1
    assert manifest["display_information"]["name"]
    features = manifest["features"]
    assert features["bot_user"]["display_name"]
    (cmd,) = features["slash_commands"]
    assert cmd["command"] == slack_channel.COMMAND and cmd["url"].endswith(slack_channel.EVENTS_PATH)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "commands", "im:history", "channels:history", "groups:history", "im:write"} <= scopes
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"].endswith(slack_channel.EVENTS_PATH)
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im", "message.channels", "message.groups"}
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith(slack_channel.EVENTS_PATH)
    assert settings["socket_mode_enabled"] is False


# ---- Socket Mode -------------------------------------------------------------------------------------


async def test_socket_mode_answers_and_deduplicates_retries(make_runtime, fake):
    runtime = make_runtime(
        slack_bot_token=SecretStr("xoxb-test-token"),
        slack_app_token=SecretStr("xapp-1-test"),
        slack_mode="socket",
        slack_api_url=fake.api_url,
        slack_channels=HELPDESK,
        support_url=SUPPORT,
    )
    handler = await slack_channel.start_socket_mode(Conversations(runtime))
    try:
        opened = await fake.wait_for("apps.connections.open")
        assert opened.headers["Authorization"] == "Bearer xapp-1-test"
        event = {"type": "message", "channel": "D0ADMIN", "user": ADMIN, "text": "hi", "ts": _ts(), "channel_type": "im"}
        envelope = Slack(None, fake, runtime).envelope(event, "Ev0SOCKET1")  # type: ignore[arg-type]
        first = await fake.socket_send("events_api", envelope)
        ack = await fake.wait_for("socket.ack")
        assert ack["envelope_id"] == first
        post = await fake.wait_for("chat.postMessage", channel="D0ADMIN")
        assert button_values(post["blocks"])
        # Slack redelivers the same event (retry_attempt 1): acknowledged, not answered again.
        second = await fake.socket_send("events_api", envelope, retry_attempt=1)
        assert (await fake.wait_for("socket.ack", 2))["envelope_id"] == second
        await fake.settle()
        assert len(fake.calls_to("chat.postMessage")) == 1

        # The slash command over the socket: acknowledged on the socket, answered via response_url.
        command = {
            "team_id": TEAM_ID, "channel_id": OTHER, "user_id": ADMIN, "command": "/scim-help", "text": "",
            "response_url": fake.response_url(), "trigger_id": "1.2.trigger",
        }
        await fake.socket_send("slash_commands", command)
        await fake.wait_for("socket.ack", 3)
        picker = await fake.wait_for("response_url")
        assert button_values(picker["blocks"])
    finally:
        await handler.close_async()
        await runtime.close()


async def test_the_settings_choose_events_over_http_or_a_socket_run_in_the_background(make_runtime, fake):
    """HTTP mode mounts /slack/events; Socket Mode mounts nothing, connects once started (without holding
    up the server's start-up) and disconnects when closed."""
    common = {"slack_bot_token": SecretStr("xoxb-test-token"), "slack_api_url": fake.api_url}
    events = slack_channel.channel(Conversations(make_runtime(slack_signing_secret=SecretStr(SECRET), slack_mode="http", **common)))
    assert isinstance(events, slack_channel.SlackEvents) and events.name == "slack"
    app = web.Application()
    events.mount(app)
    assert {r.resource.canonical for r in app.router.routes() if r.resource} == {slack_channel.EVENTS_PATH}

    socket = slack_channel.channel(Conversations(make_runtime(slack_app_token=SecretStr("xapp-1-test"), slack_mode="socket", **common)))
    assert isinstance(socket, slack_channel.SlackSocket) and socket.name == "slack-socket"
    app = web.Application()
    socket.mount(app)
    assert list(app.router.routes()) == []
    await socket.start()
    await fake.wait_for("apps.connections.open")
    task = socket._task
    assert task is not None
    for _ in range(100):
        if task.done():
            break
        await asyncio.sleep(0.05)
    handler = task.result()
    await socket.close()
    assert handler.client.closed and socket._task is None


async def test_logs_carry_no_message_text_emails_or_tokens(slack: Slack, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    secret_text = "jane.secret@contoso.com can't sign in, SCIM provisioning from Entra to Cato: new hires never show up in the CMA users directory"
    body = json.dumps(slack.envelope({"type": "message", "channel": HELPDESK, "user": ADMIN, "text": secret_text, "ts": _ts(), "channel_type": "channel"}))
    assert (await slack.send(body, "application/json", secret="forged")).status == 401
    await slack.message(secret_text, channel="D0ADMIN", channel_type="im")
    await slack.fake.wait_for("chat.postMessage")
    await slack.command("jane.secret@contoso.com")  # a new thread: root message + first reply
    await slack.fake.wait_calls("chat.postMessage", 3)
    await slack.fake.settle()
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "jane.secret" not in logged and "never show up" not in logged
    assert "xoxb-test-token" not in logged and SECRET not in logged


# ---- issue #14: replays and the durable inbox ----------------------------------------------------------


async def test_a_replayed_slash_command_is_answered_once(slack: Slack):
    """Break 9: a signed slash command replayed inside the 5-minute window opened a thread per copy. The
    same timestamp and signature are the same request: recorded once, answered once."""
    body = urlencode(
        {
            "token": "legacy", "team_id": TEAM_ID, "team_domain": "fake", "channel_id": OTHER, "channel_name": "general",
            "user_id": ADMIN, "user_name": "admin", "command": "/scim-help", "text": NEW_HIRES, "api_app_id": "A0APP",
            "response_url": slack.fake.response_url(), "trigger_id": "1.2.trigger",
        }
    )
    headers = slack.headers(body, "application/x-www-form-urlencoded")
    for _ in range(3):
        resp = await slack.send(body, "application/x-www-form-urlencoded", headers=headers)
        assert resp.status == 200
    root, first = await slack.fake.wait_calls("chat.postMessage", 2)
    await slack.fake.settle()
    assert len(slack.posts()) == 2  # one root message and its first reply: one thread, not three
    assert first["thread_ts"] == slack.key_of(root)[1]
    # A new invocation (a new timestamp, so a new signature) is a new request.
    await slack.send(body, "application/x-www-form-urlencoded", timestamp=int(headers["X-Slack-Request-Timestamp"]) + 1)
    await slack.fake.wait_calls("chat.postMessage", 4)


async def _left_by_a_killed_process(slack: Slack, channel: str, *, posted: bool) -> str:
    """An entry as a SIGKILLed process leaves it: recorded, its turn and outbox committed, held under a
    lease naming a process that no longer exists; its message posted to Slack or not."""
    import subprocess
    import sys

    from bot.channels.slack.core import OUTBOX
    from bot.channels.slack.ids import Place
    from bot.channels.slack.posting import REPLY_EVENT, Outbox
    from bot.store.sqlite import _HOST

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    store = slack.runtime.store
    inbox = store.inbox("slack")
    inner = getattr(inbox, "file", None)  # the SQLite inbox's own database file
    event = {"type": "message", "channel": channel, "user": ADMIN, "text": "hi", "ts": _ts(), "channel_type": "im"}
    entry = await inbox.put(f"event:Ev{uuid.uuid4().hex[:8]}", json.dumps({"mode": "http", "ct": "application/json", "body": json.dumps(slack.envelope(event))}), seen_ttl=60)
    assert entry is not None and inner is not None
    await inner.run(lambda c: c.execute("UPDATE inbox SET owner=? WHERE id=?", (f"{_HOST}:{child.pid}:dead", int(entry.id))))
    from bot.render import blocks as bk

    outbox = Outbox(Place(channel), [bk.notice("the answer the killed process had committed")], ADMIN)
    await store.put_record(OUTBOX, entry.id, outbox.dump())
    if posted:
        await _bot(slack).client.chat_postMessage(
            channel=channel, text="the answer", blocks=outbox.messages[0].blocks,
            metadata={"event_type": REPLY_EVENT, "event_payload": {"entry": entry.id, "part": "0"}},
        )
    return entry.id


@pytest.mark.parametrize("posted", [False, True])
async def test_an_entry_left_by_a_killed_process_is_answered_once_from_its_outbox(slack: Slack, posted: bool):
    """The windows a SIGKILL can hit after the turn was committed: before its message reached Slack (the
    outbox is posted by whoever takes the entry over) and after (Slack has it: not posted again)."""
    channel = f"D0KILLED{int(posted)}"
    entry_id = await _left_by_a_killed_process(slack, channel, posted=posted)
    before = len(slack.posts(channel=channel))
    taken = await _bot(slack).inbox.sweep()
    assert taken == 1
    await slack.fake.settle()
    for _ in range(100):
        if not await slack.runtime.store.get_record("slack-outbox", entry_id):
            break
        await asyncio.sleep(0.05)
    posts = slack.posts(channel=channel)
    assert len(posts) == 1, [p.body.get("text") for p in posts]
    assert len(posts) - before == (0 if posted else 1)
    assert await slack.runtime.store.get_record("slack-outbox", entry_id) is None  # done: dropped with the entry
    assert await _bot(slack).inbox.sweep() == 0


async def test_escalation_post_never_carries_links_or_mentions_the_admin_typed(slack: Slack):
    """Break 10, end to end: what an admin types into the hand-off modal reaches the helpdesk channel as
    text — no Markdown or Slack link, no <!channel> or <@…> mention, in the blocks or the notification."""
    from bot.events import Ticket
    from bot.render import blocks as bk

    thread = _ts()
    meta = {"c": f"slack:{TEAM_ID}:{OTHER}:{thread}", "ch": OTHER, "ts": None, "th": thread, "d": "-"}
    view = bk.escalation_modal(Ticket(), private_metadata=json.dumps(meta), channel_label="the helpdesk channel", say=say)
    hostile = {
        "account": "[Click to re-verify](https://evil.example/login) <!channel>",
        "idp": "<https://evil.example|Entra> @here #general",
        "upns": "jane.doe@contoso.com",
        "groups": "<!subteam^S0ADMINS> [Admins](https://evil.example)",
        "body": "Please <!channel> visit <https://evil.example|the portal> or [this](https://evil.example)",
    }
    values = {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in hostile.items()}
    payload = {
        "type": "view_submission", "team": {"id": TEAM_ID, "domain": "fake"}, "user": {"id": ADMIN, "team_id": TEAM_ID},
        "api_app_id": "A0APP", "token": "legacy", "trigger_id": "1.2.trigger",
        "view": {**view, "id": "V0HOSTILE", "state": {"values": values}},
    }
    resp = await slack.interact(payload)
    assert (await resp.text()) == ""
    post = await slack.fake.wait_for("chat.postMessage", channel=ESCALATION)
    objects = [o for b in post["blocks"] for o in [b.get("text"), *b.get("fields", []), *b.get("elements", [])] if isinstance(o, dict) and o.get("type") == "mrkdwn"]
    assert objects and all(o.get("verbatim") is True for o in objects)
    for text in [o["text"] for o in objects] + [post["text"]]:
        assert "<!" not in text and "<https://evil" not in text, text
        if not text.startswith("```"):
            assert "https://evil" not in text and "](" not in text, text
    assert f"<@{ADMIN}>" in all_text(post["blocks"])  # the mention we write ourselves stays


async def test_a_reply_in_a_thread_whose_conversation_was_lost_is_told_so(slack: Slack):
    """Break 13 in Slack: after the store lost a conversation (Redis restarted without persistence), a
    "yes" in the bot's thread was ignored as somebody else's thread, and an old card's button answered as
    a new off-topic message. The thread's root is the bot's own message, so it is ours: say it was lost."""
    from bot.continuity import LOST

    await slack.command(NEW_HIRES, channel=OTHER)
    root, first = await slack.fake.wait_calls("chat.postMessage", 2)
    root_ts = slack.key_of(root)[1]
    conv = f"slack:{TEAM_ID}:{OTHER}:{root_ts}"
    await slack.runtime.store.delete(conv)  # the store lost it
    before = len(slack.posts())
    await slack.message("yes", channel=OTHER, thread_ts=root_ts, parent_user_id=BOT_USER_ID)
    (post,) = await slack.next_posts(before)
    assert post["thread_ts"] == root_ts and LOST[:40] in all_text(post["blocks"])
    # An old card's button in that thread: the same answer, not an off-topic pointer.
    await slack.runtime.store.delete(conv)
    before = len(slack.posts())
    await slack.click(first, lambda v: ":" in v and not v.startswith("cmd:"))
    (post,) = await slack.next_posts(before)
    assert LOST[:40] in all_text(post["blocks"])
