"""Issue #14's attacks on the Teams endpoint, each replayed against the real aiohttp server on loopback.

1. SSRF through `serviceUrl` (a backslash, userinfo, a host outside the allowed set).
2. Slow clients holding the Teams places; one unauthenticated client holding them all.
3. A forged token whose issuer's key host never answers, freezing the server.
10. Markdown links and mentions from users in the cards, the escalation card above all.
And: the k8s ConfigMap must not ship an unauthenticated Teams endpoint on 0.0.0.0.

Everything stays on 127.0.0.0/8; each test sends a bounded number of requests and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from pathlib import Path

import aiohttp
import jwt
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from markdown_it import MarkdownIt
from pydantic import SecretStr

from bot.channels import teams
from bot.events import Reply, Ticket
from bot.render import cards
from bot.server import build_app
from bot.settings import Settings
from tests.support.timing import eventually
from tests.support.words import say
from tests.test_teams import (  # noqa: F401 - fixtures
    APP_ID,
    BOT,
    ESCALATION,
    TENANT,
    USER,
    bot_framework_token,
    connector,
    last_with_buttons,
    make_teams,
    signing_keys,
    teams_activity,
)

ROOT = Path(__file__).resolve().parent.parent
TEAMS_SERVICE = "https://smba.trafficmanager.net/amer/"
EVIL = "[Click to re-verify your account](https://evil.example/login)"


class Blackhole:
    """A loopback listener that accepts connections, records them and never answers; `close_after` seconds
    after the first connection it hangs up on everyone (so a server blocked on it comes back and the test
    can fail, not hang). Counted from the first connection, not from its start: on a busy machine the
    server under test can take seconds to start, and a hole already closed accepts nothing."""

    def __init__(self, close_after: float = 6.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._close_after = close_after
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        deadline = float("inf")
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            if not self.accepted:
                deadline = time.monotonic() + self._close_after
            self.accepted += 1
            self.held.append(conn)
        self.close()

    def close(self) -> None:
        self._stop.set()
        for conn in self.held:
            conn.close()
        self.held.clear()
        self.sock.close()


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    hole.close()


async def _serve(make_runtime, **overrides) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(build_app(make_runtime(**overrides))))
    await client.start_server()
    return client


def _from(address: str) -> aiohttp.ClientSession:
    """A client connecting from another loopback address: another client to the per-client limits."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


# ---- 1. serviceUrl --------------------------------------------------------------------------------------


async def test_service_url_tricks_are_refused_and_nothing_is_contacted(make_runtime, blackhole):
    """Without an app id only loopback is allowed, decided on the parse the HTTP client uses: the host
    before a backslash, userinfo and names are never let through, and nothing connects anywhere."""
    client = await _serve(make_runtime)
    try:
        port = blackhole.port
        urls = [
            f"http://0.0.0.0:{port}\\@127.0.0.1:9",
            f"http://127.0.0.1:{port}\\@127.0.0.1:9",
            "http://nonexistent.invalid\\@127.0.0.1:9",
            f"http://user:secret@127.0.0.1:{port}/",
            f"http://127.0.0.1:{port}@evil.example/",
            f"http://evil.example#@127.0.0.1:{port}/",
            f"http://127.0.0.1:{port}/?next=http://evil.example/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1:8080/",
            f"http://127.0.0.1:{port}\t/",
        ]
        for i, url in enumerate(urls):
            body = teams_activity(url, id=f"ssrf-{i}", conversation={"id": f"a:ssrf-{i}", "conversationType": "personal"}, text="help")
            resp = await client.post("/api/messages", json=body)
            assert resp.status in (400, 403), (url, resp.status)
        await asyncio.sleep(0.3)
        assert blackhole.accepted == 0
        conversations = client.app[teams.TEAMS_ENDPOINT].bot.conversations
        for i in range(len(urls)):
            assert await conversations.state(f"teams:{TENANT}:a:ssrf-{i}") is None
    finally:
        await client.close()


async def test_with_an_app_id_the_service_url_must_be_the_tokens(make_teams, signing_keys, blackhole):  # noqa: F811 (pytest fixtures imported from tests.test_teams)
    _, published = signing_keys
    t = await make_teams(microsoft_app_id=APP_ID, microsoft_app_password=SecretStr("not-a-real-secret"))
    token = bot_framework_token(published, kid="published-key", service_url=TEAMS_SERVICE)
    headers = {"Authorization": f"Bearer {token}"}
    elsewhere = teams_activity(f"http://127.0.0.1:{blackhole.port}/", type="conversationUpdate", membersAdded=[USER])
    assert (await t.client.post("/api/messages", json=elsewhere, headers=headers)).status == 403
    # The token's own service URL (a member added: nothing to send) is accepted.
    same = teams_activity(TEAMS_SERVICE, type="conversationUpdate", membersAdded=[USER])
    assert (await t.client.post("/api/messages", json=same, headers=headers)).status == 201
    await asyncio.sleep(0.2)
    assert blackhole.accepted == 0


# ---- 2. slow clients and one client holding every place ---------------------------------------------------


async def test_slow_bodies_hold_no_teams_place_and_are_limited_per_client(make_teams, signing_keys):  # noqa: F811 (pytest fixtures imported from tests.test_teams)
    """16 sockets sending a 100 KB body one byte at a time (authentication on): the 9th and later are
    refused at once, none takes a Teams place, and a signed activity from elsewhere is answered at once."""
    _, published = signing_keys
    t = await make_teams(microsoft_app_id=APP_ID, microsoft_app_password=SecretStr("not-a-real-secret"))
    endpoint = t.client.server.app[teams.TEAMS_ENDPOINT]
    port = t.client.server.port
    slow = []
    head = b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    try:
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(head)
            slow.append(s)
        # Until the sockets turned away have their answer to read (the rest are still being read: no data).
        await eventually(lambda: len(select.select(slow, [], [], 0)[0]) >= 8, what="8 sockets answered")
        assert endpoint.admission.in_use == 0
        assert endpoint.reading.refused == 8  # per client: 8 being read, the rest turned away
        refused = []
        for s in slow:
            s.settimeout(0.01)
            try:
                refused.append(s.recv(100).startswith(b"HTTP/1.1 429"))
            except (TimeoutError, BlockingIOError):
                refused.append(False)
        assert sum(refused) == 8
        token = bot_framework_token(published, kid="published-key", service_url=TEAMS_SERVICE)
        body = teams_activity(TEAMS_SERVICE, type="conversationUpdate", membersAdded=[USER])
        async with _from("127.0.0.2") as other:
            started = time.monotonic()
            async with asyncio.timeout(3):
                resp = await other.post(f"http://127.0.0.1:{port}/api/messages", json=body, headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 201 and time.monotonic() - started < 1.0
    finally:
        for s in slow:
            s.close()


async def test_one_unauthenticated_client_cannot_hold_every_place(make_teams, blackhole):  # noqa: F811 (pytest fixtures imported from tests.test_teams)
    """Without an app id, 16 activities pointing at a loopback serviceUrl that never answers: they hold
    at most the per-client share, and another client is answered at once."""
    t = await make_teams()
    port = t.client.server.port
    hold = [
        asyncio.create_task(
            t.client.post("/api/messages", json=teams_activity(f"http://127.0.0.1:{blackhole.port}", conversation={"id": f"a:hold-{i}", "conversationType": "personal"}, text="help"))
        )
        for i in range(16)
    ]
    try:
        async with asyncio.timeout(5):
            while blackhole.accepted < 1:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        endpoint = t.client.server.app[teams.TEAMS_ENDPOINT]
        assert endpoint.admission.in_use <= 8
        async with _from("127.0.0.2") as other:
            async with asyncio.timeout(3):
                resp = await other.post(f"http://127.0.0.1:{port}/api/messages", json=teams_activity(t.connector.url, text="help"))
            assert resp.status == 201
        assert len(t.connector.outgoing()) == 1
    finally:
        blackhole.close()
        for task in hold:
            task.cancel()
        await asyncio.gather(*hold, return_exceptions=True)


# ---- 3. signing keys ----------------------------------------------------------------------------------------


async def test_forged_token_with_an_unreachable_key_host_costs_a_second_and_never_blocks(make_runtime, monkeypatch, blackhole):
    """A token claiming the Bot Framework issuer, signed by a key nobody published, while the key host
    accepts connections and never answers: each such request is refused within about a second, and
    /healthz answers at once all along."""
    monkeypatch.setattr(teams.auth, "OPENID_METADATA_URL", f"http://127.0.0.1:{blackhole.port}/openid")
    client = await _serve(make_runtime, microsoft_app_id=APP_ID, microsoft_app_password=SecretStr("not-a-real-secret"))
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        forged = jwt.encode(
            {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": TEAMS_SERVICE, "nbf": now, "exp": now + 600},
            key,
            algorithm="RS256",
            headers={"kid": "forged-key"},
        )
        body = teams_activity(TEAMS_SERVICE, text="help")

        async def forged_request() -> tuple[int, float]:
            started = time.monotonic()
            resp = await client.post("/api/messages", json=body, headers={"Authorization": f"Bearer {forged}"})
            return resp.status, time.monotonic() - started

        async def health() -> float:
            worst = 0.0
            for _ in range(15):
                started = time.monotonic()
                assert (await client.get("/healthz")).status == 200
                worst = max(worst, time.monotonic() - started)
                await asyncio.sleep(0.1)
            return worst

        async with asyncio.timeout(20):
            results, worst = await asyncio.gather(asyncio.gather(*(forged_request() for _ in range(5))), health())
            later = await forged_request()  # and again, while the key host still does not answer
        assert all(status == 401 for status, _ in [*results, later])
        # Refused after the 1 s wait for keys, not after the 5 s fetch (nor the hole's 6 s): the bound sits
        # between the two, so a busy machine (or four test workers on two cores) cannot fail it and a
        # request that waits for the fetch still does. Likewise /healthz: a loop blocked on the fetch
        # would keep it for seconds.
        assert max(elapsed for _, elapsed in [*results, later]) < (teams.auth.UNKNOWN_KEY_WAIT + teams.auth.FETCH_TIMEOUT) / 2
        assert worst < teams.auth.UNKNOWN_KEY_WAIT
        assert blackhole.accepted >= 1  # the keys were asked for, in the background
    finally:
        await client.close()


# ---- 10. user values in cards -----------------------------------------------------------------------------


def _rendered(card: dict) -> str:
    """Every TextBlock text and fact of the card through a CommonMark renderer, as HTML."""
    md = MarkdownIt("commonmark")
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                out.append(md.render(node["text"]))
            if node.get("type") == "FactSet":
                out.extend(md.render(f["title"]) + md.render(f["value"]) for f in node["facts"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    return "\n".join(out)


def test_user_values_render_as_text_in_the_escalation_card():
    ticket = Ticket(
        account=EVIL,
        idp="![pixel](https://evil.example/p.png)",
        upns=["<at>Everyone</at>", "x@contoso.com"],
        groups=["**urgent** <a href='https://evil.example'>x</a>"],
        symptom="cannot-enable",
        symptom_title="SCIM provisioning cannot be enabled",
        body=f"## SCIM provisioning issue\n- **Account:** {EVIL}\n- **UPNs:** <at>Everyone</at>",
    )
    reply = Reply(kind="ticket", title="Your Cato Support ticket", text="", ticket=ticket)
    posted = cards.render_escalation(reply, support_url="https://support.example.com/", raised_by=EVIL, where="the group chat “<at>IT</at> [x](https://evil.example)”", say=say)
    mine = cards.render_replies([reply], support_url="https://support.example.com/")
    for attachment in posted + mine:
        html = _rendered(attachment["content"])
        assert "<a " not in html and "<img" not in html and "<at>" not in html, html
        assert "Click to re-verify your account" in html  # shown, as text
    # The only links in the escalation card are ours: back to the conversation and the support portal.
    urls = [a["url"] for c in posted for el in c["content"]["body"] if el["type"] == "ActionSet" for a in el["actions"]]
    assert urls == ["https://support.example.com/"]


async def test_a_link_typed_as_the_account_is_not_a_link_in_the_support_channel(make_teams):  # noqa: F811 (pytest fixtures imported from tests.test_teams)
    t = await make_teams(teams_escalation_channel=ESCALATION)
    channel = {"id": ESCALATION, "conversationType": "channel", "tenantId": TENANT}
    await t.say(type="conversationUpdate", conversation=channel, channel=ESCALATION, membersAdded=[BOT])
    calls = await t.say(text="help")
    calls = await t.click(last_with_buttons(calls), "cannot-enable")
    calls = await t.click(last_with_buttons(calls), "enable-error:yes")
    calls = await t.say(text=EVIL)
    calls = await t.click(last_with_buttons(calls), "idp:entra")
    calls = await t.click(last_with_buttons(calls), "field:skip")
    await t.click(last_with_buttons(calls), "field:skip", expect_messages=2)
    posted = [c for c in t.connector.outgoing(ESCALATION)][1:]
    assert posted and "SCIM provisioning escalation" in posted[0].texts()
    for call in posted + t.connector.outgoing():
        for card in call.cards:
            assert "<a " not in _rendered(card)


# ---- the shipped Kubernetes configuration -------------------------------------------------------------------


async def test_the_k8s_configmap_serves_no_unauthenticated_teams_endpoint(make_runtime, monkeypatch):
    data = yaml.safe_load((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())["data"]
    settings = Settings(**{k: v for k, v in data.items() if v != ""})
    assert settings.host == "0.0.0.0" and not settings.microsoft_app_id
    assert not settings.teams_enabled
    overrides = {"host": settings.host, "microsoft_app_id": settings.microsoft_app_id}
    client = await _serve(make_runtime, **overrides)
    try:
        resp = await client.post("/api/messages", json=teams_activity("http://127.0.0.1:9", text="help"))
        assert resp.status == 404
    finally:
        await client.close()
    # With an app id the same configuration serves Teams, authenticated.
    assert Settings(**{k: v for k, v in data.items() if v != ""}, MicrosoftAppId=APP_ID, MicrosoftAppPassword="x").teams_enabled


def test_a_huge_sender_name_does_not_make_the_reply_too_big_to_send():
    from bot.channels.teams.connector import NAME_MAX, message

    incoming = {
        "from": {"id": "29:admin", "name": "n" * 30000},
        "recipient": {"id": "28:bot", "name": "b" * 30000},
        "conversation": {"id": "a:1"},
    }
    out = message(text="hello", incoming=incoming).model_dump(by_alias=True, exclude_none=True)
    assert len(json.dumps(out)) < 2000
    assert out["recipient"]["name"] == "n" * NAME_MAX and out["from"]["id"] == "28:bot"
