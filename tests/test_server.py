"""The one server: web chat API, health/readiness, metrics, error handling, channel mounting, graceful
shutdown and the `serve` command. Real aiohttp app, real SQLite (tmp data dir), real Redis where needed.

`converse()` below walks a whole conversation through the web API the way an admin clicking buttons
would; test_logs.py and test_stats.py reuse it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.channels.web import WebChatKey
from bot.server import STATE, build_app
from bot.store.redis import RedisStore
from bot.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent

ACCOUNT = "Contoso Pharma (acct 41872)"
UPNS = "amelia.ross@contosopharma.com, dev.kapoor@contosopharma.com"
GROUPS = "Cato-Remote-Users"


# ---- helpers shared with test_logs.py / test_stats.py -------------------------------------------------


def next_action(data: dict, symptom: str, *, fix: bool, helpful: bool | None, texts: dict[str, str]) -> dict | None:
    """What an admin would do next, given the bot's last answer."""
    ids = [c["id"] for r in data["replies"] for c in r["choices"]]
    if "helpful:yes" in ids:
        if helpful is None:
            return None
        return {"choice": "helpful:yes" if helpful else "helpful:no"}
    if data["phase"] == "closed":
        return None
    if symptom in ids:
        return {"choice": symptom}
    if "idp:entra" in ids:
        return {"choice": "idp:entra"}
    if "fixed:yes" in ids:
        return {"choice": "fixed:yes" if fix else "fixed:no"}
    if data.get("asking") in texts:
        return {"text": texts[data["asking"]]}
    if ids:
        return {"choice": ids[0]}
    return {"text": "talk to a human"}


async def converse(
    client: TestClient,
    symptom: str = "cannot-enable",
    *,
    report: str | None = None,
    fix: bool = False,
    helpful: bool | None = True,
    texts: dict[str, str] | None = None,
    max_turns: int = 30,
) -> tuple[str, list[dict]]:
    """One conversation from greeting to the end; returns (conversation id, every response body)."""
    texts = texts or {"account": ACCOUNT, "upns": UPNS, "groups": GROUPS}
    payloads: list[dict] = []
    conversation: str | None = None

    async def post(**body: Any) -> dict:
        resp = await client.post("/api/chat", json={"conversation": conversation, **body})
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        payloads.append(data)
        return data

    data = await post()  # greeting
    conversation = data["conversation"]
    if report:
        data = await post(text=report)
    for _ in range(max_turns):
        action = next_action(data, symptom, fix=fix, helpful=helpful, texts=texts)
        if action is None:
            return conversation, payloads
        data = await post(**action)
    raise AssertionError(f"conversation did not end in {max_turns} turns: {payloads[-1]}")


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def client(serve_app):
    return await serve_app()


# ---- health, readiness, metrics -----------------------------------------------------------------------


async def test_health_ready_metrics(client):
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"

    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "ready" and body["store"] == "sqlite" and body["knowledge"]["symptoms"] > 0

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert metric(text, "scim_help_store_up") == 1.0
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_readyz_and_chat_when_redis_is_down(serve_app):
    store = RedisStore(f"redis://127.0.0.1:{closed_port()}/0")
    client = await serve_app(store=store)

    assert (await client.get("/healthz")).status == 200  # alive: restarting would not help
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert body["status"] == "not ready"
    assert any("store (redis)" in r for r in body["reasons"])

    resp = await client.post("/api/chat", json={"text": "SCIM provisioning won't enable"})
    body = await resp.json()
    assert resp.status == 503
    assert body["error"] == "unavailable" and "try again" in body["message"]
    assert "Traceback" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)
    assert resp.headers.get("Retry-After")

    token = client.server.app[WebChatKey].ids.issue(None)[0]  # an id the server issued before Redis went
    resp = await client.get("/api/chat", headers={"X-Conversation": token})
    assert resp.status == 503

    text = await (await client.get("/metrics")).text()
    assert metric(text, "scim_help_store_up") == 0.0
    assert metric(text, "scim_help_errors_total", kind="store_unavailable") == 2.0
    assert metric(text, "scim_help_messages_total", channel="web") == 1.0


async def test_busy_conversation_lock_is_a_polite_503(serve_app, settings):
    """A turn that cannot get the conversation lock (another process holds it) answers 503, not 500."""

    # The turn's hold gives up after 0.2 s instead of the 10 s a real turn waits (that wait is the store's,
    # held by the contract suite; this test is about the answer).
    class ImpatientSQLite(SQLiteStore):
        def lock(self, key, timeout=10.0):
            return super().lock(key, timeout=0.2)

        def hold(self, key, timeout=10.0, **kwargs):
            return super().hold(key, timeout=0.2, **kwargs)

    store = ImpatientSQLite(settings.sqlite_path)
    client = await serve_app(store=store)
    conversation, key = client.server.app[WebChatKey].ids.issue(None)
    other_process = SQLiteStore(settings.sqlite_path)  # a second owner of the same database file
    try:
        async with other_process.lock(key):
            resp = await client.post("/api/chat", json={"conversation": conversation, "text": "hello"})
            body = await resp.json()
    finally:
        await other_process.close()
    assert resp.status == 503 and body["error"] == "unavailable"
    text = await (await client.get("/metrics")).text()
    assert metric(text, "scim_help_errors_total", kind="lock_timeout") == 1.0
    # The lock is free again: the same conversation works.
    resp = await client.post("/api/chat", json={"conversation": conversation, "text": "hello"})
    assert resp.status == 200


async def test_unexpected_errors_are_500_json_without_details(serve_app, make_runtime, shared_pack):
    rt = make_runtime()

    async def broken(msg):
        raise RuntimeError("internal detail amelia.ross@contosopharma.com")

    rt.engine.handle = broken
    app = build_app(rt)

    async def boom(request):
        raise KeyError("another internal detail")

    app.router.add_get("/boom", boom)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.post("/api/chat", json={"text": "hi"})
        body = await resp.text()
        assert resp.status == 500
        assert json.loads(body)["error"] == "internal"
        assert "internal detail" not in body and "amelia" not in body and "Traceback" not in body

        resp = await client.get("/boom")
        body = await resp.text()
        assert resp.status == 500 and json.loads(body)["error"] == "internal"
        assert "another internal detail" not in body

        text = await (await client.get("/metrics")).text()
        assert metric(text, "scim_help_errors_total", kind="engine") == 1.0  # counted once, by the turn
        assert metric(text, "scim_help_errors_total", kind="unhandled") == 1.0  # the /boom request
    finally:
        await client.close()
        await rt.close()


async def test_several_apps_in_one_process_have_their_own_registry(serve_app):
    a = await serve_app()
    b = await serve_app()
    await converse(a, "cannot-enable")
    text_a = await (await a.get("/metrics")).text()
    text_b = await (await b.get("/metrics")).text()
    assert metric(text_a, "scim_help_messages_total") > 0
    assert metric(text_b, "scim_help_messages_total") == 0


# ---- web chat API ----------------------------------------------------------------------------------------


async def test_page_and_static_assets(client):
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert '<script src="/static/app.js"' in html and 'role="log"' in html and 'aria-live="polite"' in html
    assert "http://" not in html.replace("http://127.0.0.1", "") and "https://" not in html  # no CDN

    js = await client.get("/static/app.js")
    assert js.status == 200 and js.content_type == "application/javascript"
    assert ".innerHTML" not in await js.text()
    css = await client.get("/static/style.css")
    assert css.status == 200 and css.content_type == "text/css"
    assert (await client.get("/static/secrets.txt")).status == 404
    assert (await client.get("/static/../settings.py")).status == 404


async def test_whole_conversation_to_ticket_and_restore(client):
    token = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    conversation, payloads = await converse(
        client,
        "cannot-enable",
        report=f"SCIM won't enable in the CMA, we use Entra ID. Our SCIM token is {token}",
    )
    assert conversation.startswith("web:") and len(conversation) >= 20
    tickets = [r["ticket"] for p in payloads for r in p["replies"] if r.get("ticket")]
    assert tickets, "the conversation never produced a ticket"
    ticket = tickets[-1]
    assert ticket["symptom"] == "cannot-enable"
    assert "amelia.ross@contosopharma.com" in ticket["body"]
    assert ticket["files"]["markdown"].endswith(".md") and ticket["files"]["json"].endswith(".json")
    assert "body" not in ticket["document"] and ticket["document"]["account"] == "Contoso Pharma (41872)"  # normalised
    assert payloads[-1]["phase"] == "closed"

    resp = await client.get("/api/chat", headers={"X-Conversation": conversation})
    assert resp.status == 200
    restored = await resp.json()
    assert restored["conversation"] == conversation and restored["phase"] == "closed"
    entries = restored["entries"]
    bot_replies = [e["reply"] for e in entries if e["who"] == "bot"]
    assert len(bot_replies) == sum(len(p["replies"]) for p in payloads)
    assert any(r.get("ticket") for r in bot_replies)
    admin = [e for e in entries if e["who"] == "admin"]
    assert admin[0]["text"].startswith("SCIM won't enable")
    assert "eyJhbGci" not in json.dumps(entries)  # the pasted token was scrubbed from the transcript
    clicked = [e for e in admin if e.get("choice")]
    assert clicked and all(e["text"] != e["choice"] for e in clicked)  # the button label, not its id

    assert (await client.get("/api/chat", headers={"X-Conversation": "web:" + "z" * 24})).status == 404


async def test_start_over_keeps_the_conversation_and_greets(client):
    resp = await client.post("/api/chat", json={})
    conversation = (await resp.json())["conversation"]
    await client.post("/api/chat", json={"conversation": conversation, "choice": "cannot-enable"})
    resp = await client.post("/api/chat", json={"conversation": conversation, "choice": "cmd:restart"})
    data = await resp.json()
    assert data["conversation"] == conversation and data["started"] is True
    assert [c["id"] for c in data["replies"][-1]["choices"]][:1] == ["cannot-enable"]
    entries = (await (await client.get("/api/chat", headers={"X-Conversation": conversation})).json())["entries"]
    assert entries[-2] == {"who": "admin", "text": "Start over", "choice": "cmd:restart"}


@pytest.mark.parametrize(
    "body, headers, status, code",
    [
        ("{}", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("text=hi", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ("{not json", {}, 400, "invalid_json"),
        ('["a list"]', {}, 400, "invalid_request"),
        ('{"text": "hi", "choice": "x"}', {}, 400, "invalid_request"),
        ('{"text": "hi", "admin": true}', {}, 400, "invalid_request"),
        ('{"text": 42}', {}, 400, "invalid_request"),
        ('{"conversation": "slack:T1:C1", "text": "hi"}', {}, 400, "invalid_request"),
        (json.dumps({"text": "x" * 4001}), {}, 400, "invalid_request"),
        (json.dumps({"text": "x" * 17000}), {}, 413, "too_large"),
        ('{"text": "hi"}', {"Origin": "https://evil.example"}, 403, "forbidden_origin"),
        ('{"text": "hi"}', {"Origin": "null"}, 403, "forbidden_origin"),
        ('{"text": "hi"}', {"Sec-Fetch-Site": "cross-site"}, 403, "forbidden_origin"),
    ],
)
async def test_api_rejects_bad_requests_with_clear_json(client, body, headers, status, code):
    headers = {"Content-Type": "application/json", **headers}
    resp = await client.post("/api/chat", data=body.encode(), headers=headers)
    data = await resp.json()
    assert resp.status == status, data
    assert data["error"] == code and data["message"]


async def test_body_limit_applies_without_content_length(client):
    async def chunks():
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * 1024
        yield b'"}'

    resp = await client.post("/api/chat", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413

    async def small_chunks():  # a valid body in many small pieces is read whole
        body = json.dumps({"text": "SCIM provisioning won't enable " + "y" * 3000}).encode()
        for i in range(0, len(body), 100):
            yield body[i : i + 100]
            await asyncio.sleep(0)

    resp = await client.post("/api/chat", data=small_chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()


async def test_origin_rules(serve_app):
    client = await serve_app(allowed_origins="https://intranet.example.com")
    own = f"http://{client.host}:{client.port}"
    for origin, expected in [(own, 200), ("https://intranet.example.com", 200), ("https://intranet.example.com.evil.io", 403)]:
        resp = await client.post("/api/chat", json={}, headers={"Origin": origin})
        assert resp.status == expected, origin
    resp = await client.post("/api/chat", json={}, headers={"Origin": "https://proxy.example", "X-Forwarded-Host": "proxy.example"})
    assert resp.status == 200


async def test_restore_rejects_bad_ids(client):
    resp = await client.get("/api/chat", headers={"X-Conversation": "not-a-web-id"})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_conversation"
    resp = await client.get("/api/chat")
    assert resp.status == 400 and "error" in await resp.json()
    resp = await client.get("/api/chat/web:" + "a" * 24)  # ids never travel in URLs
    assert resp.status == 404 and "error" in await resp.json()


async def test_web_chat_can_be_switched_off(serve_app):
    client = await serve_app(web_chat=False)
    resp = await client.get("/")
    assert resp.status == 200 and "disabled" in await resp.text()
    assert (await client.post("/api/chat", json={})).status == 404
    assert (await client.get("/healthz")).status == 200


# ---- metrics from real conversations ----------------------------------------------------------------------


async def test_metrics_count_messages_conversations_outcomes(client):
    _, escalated = await converse(client, "cannot-enable", helpful=True)
    _, resolved = await converse(client, "initial-provisioning-fails", fix=True, helpful=False)
    posts = len(escalated) + len(resolved)
    text = await (await client.get("/metrics")).text()

    assert metric(text, "scim_help_messages_total", channel="web") == posts
    assert metric(text, "scim_help_turn_seconds_count", channel="web") == posts
    assert metric(text, "scim_help_conversations_started_total", channel="web") == 2
    assert metric(text, "scim_help_conversations_ended_total", symptom="cannot-enable", cause="account-requirements", outcome="escalated") == 1
    assert metric(text, "scim_help_conversations_ended_total", symptom="initial-provisioning-fails", outcome="resolved") == 1
    # The feedback answer rewrites the same outcome record: still one ended conversation each.
    assert metric(text, "scim_help_conversations_ended_total") == 2
    assert metric(text, "scim_help_escalations_total", symptom="cannot-enable") == 1
    assert metric(text, "scim_help_feedback_total", symptom="cannot-enable", helpful="yes") == 1
    assert metric(text, "scim_help_feedback_total", symptom="initial-provisioning-fails", helpful="no") == 1
    assert metric(text, "scim_help_errors_total") == 0
    assert metric(text, "scim_help_turns_in_flight") == 0
    buckets = {
        s.labels["le"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "scim_help_turn_seconds_bucket"
    }
    assert {"0.001", "0.005", "0.01", "0.05", "0.1"} <= buckets


# ---- replicas sharing Redis ----------------------------------------------------------------------------


async def test_two_replicas_share_a_conversation_through_redis(serve_app, redis_url):
    prefix = f"scim-help-test:{uuid.uuid4().hex}:"
    a = await serve_app(store=RedisStore(redis_url, prefix=prefix))
    b = await serve_app(store=RedisStore(redis_url, prefix=prefix))
    assert (await a.get("/readyz")).status == 200
    resp = await a.post("/api/chat", json={})
    conversation = (await resp.json())["conversation"]
    resp = await b.post("/api/chat", json={"conversation": conversation, "choice": "cannot-enable"})
    data = await resp.json()
    assert data["symptom"] == "cannot-enable" and data["phase"] == "checking"
    restored = await (await a.get("/api/chat", headers={"X-Conversation": conversation})).json()
    assert [e["who"] for e in restored["entries"]] == ["bot", "admin", "bot", "bot"]


# ---- channels ---------------------------------------------------------------------------------------------


def _fake_slack(monkeypatch) -> types.SimpleNamespace:
    """A Slack channel module that records what the server asks of it."""
    seen = types.SimpleNamespace(conversations=None, calls=[])

    class FakeChannel:
        name = "slack-fake"

        def mount(self, app):
            seen.calls.append("mount")

            async def events(request):
                return web.json_response({"ok": True})

            app.router.add_post("/slack/events", events)

        async def start(self):
            seen.calls.append("start")

        async def stop(self):
            seen.calls.append("stop")

        async def close(self):
            seen.calls.append("close")

    def channel(conversations):
        seen.conversations = conversations
        return FakeChannel()

    module = types.ModuleType("bot.channels.slack")
    module.channel = channel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.channels.slack", module)
    return seen


async def test_a_channel_is_loaded_by_name_and_run_through_the_channel_protocol(serve_app, monkeypatch):
    from bot.service import Conversations

    seen = _fake_slack(monkeypatch)
    client = await serve_app(slack_bot_token="xoxb-test", slack_signing_secret="s3cret", slack_mode="http")
    # Handed the narrow door, not the runtime.
    assert isinstance(seen.conversations, Conversations)
    assert seen.conversations.settings.slack_mode == "http"
    assert "slack-fake" in client.server.app[STATE]["channels"]
    assert (await client.post("/slack/events", json={})).status == 200
    assert seen.calls == ["mount", "start"]
    await client.close()
    assert seen.calls == ["mount", "start", "stop", "close"]


async def test_a_channel_that_is_off_is_not_loaded(serve_app, monkeypatch):
    seen = _fake_slack(monkeypatch)
    client = await serve_app()
    assert seen.conversations is None and seen.calls == []
    assert (await client.post("/slack/events", json={})).status in (404, 405)


async def test_slack_off_without_token_and_teams_mounted(client):
    routes = {r.resource.canonical for r in client.app.router.routes() if r.resource is not None}
    assert "/slack/events" not in routes
    try:
        import bot.channels.teams  # noqa: F401
    except ModuleNotFoundError:
        assert "/api/messages" not in routes
    else:
        assert "/api/messages" in routes


async def test_missing_channel_module_is_logged_and_skipped(serve_app, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "bot.channels.teams", None)  # import raises ModuleNotFoundError
    with caplog.at_level("WARNING", logger="scim_help.server"):
        client = await serve_app()
    routes = {r.resource.canonical for r in client.app.router.routes() if r.resource is not None}
    assert "/api/messages" not in routes
    assert any(getattr(r, "channel", None) == "teams" for r in caplog.records)
    assert (await client.get("/healthz")).status == 200


# ---- graceful shutdown -------------------------------------------------------------------------------------


async def test_shutdown_finishes_turns_in_flight(make_runtime, shared_pack):
    rt = make_runtime()
    entered, release = asyncio.Event(), asyncio.Event()
    engine_handle = rt.engine.handle

    async def slow(msg):
        entered.set()
        await release.wait()
        return await engine_handle(msg)

    rt.engine.handle = slow
    app = build_app(rt)
    runner = web.AppRunner(app, shutdown_timeout=30)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site.port}/api/chat"
    try:
        async with aiohttp.ClientSession() as session:

            async def chat() -> tuple[int, dict]:
                async with session.post(url, json={"text": "scim won't enable"}) as resp:
                    return resp.status, await resp.json()

            request = asyncio.create_task(chat())
            await asyncio.wait_for(entered.wait(), 10)
            shutdown = asyncio.create_task(runner.cleanup())
            for _ in range(1000):  # until on_shutdown is running (bounded, not timed)
                if app[STATE].get("shutting_down"):
                    break
                await asyncio.sleep(0.005)
            assert app[STATE]["shutting_down"]
            assert not shutdown.done() and not request.done()
            release.set()
            status, body = await asyncio.wait_for(request, 10)
            assert status == 200 and body["replies"]
            await asyncio.wait_for(shutdown, 10)
    finally:
        release.set()
        await rt.close()


# ---- the serve command ---------------------------------------------------------------------------------------


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft")) and k != "PORT"}
    env.update({"SCIM_HELP_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1", **extra})
    return env


def _first_line(proc: subprocess.Popen[str], limit: float = 60.0) -> str:
    """The first stdout line, or '' if the process printed nothing within `limit` seconds (a hang)."""
    import selectors

    assert proc.stdout is not None, "the process is started with stdout=subprocess.PIPE"
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(limit):
            return ""
    return proc.stdout.readline()


def test_serve_prints_the_url_and_stops_cleanly_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(proc)
        assert line.startswith("scim-help is running: open http://127.0.0.1:"), line + proc.stderr.read()
        assert line.rstrip().endswith("/ in your browser")
        url = line.split("open ", 1)[1].split(" ", 1)[0]
        import urllib.request

        with urllib.request.urlopen(url + "healthz", timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert b'id="log"' in resp.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def own_logging():
    """Remove the handler bot.logs installs on the root logger (it would outlive capsys)."""
    import logging

    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_scim_help_handler", False):
            root.removeHandler(handler)


@pytest.mark.parametrize(
    "env, args, named",
    [
        ({"PORT": "eighty"}, [], "PORT"),
        ({"SCIM_HELP_STORE": "mongodb"}, [], "SCIM_HELP_STORE"),
        ({"SCIM_HELP_REDIS_URL": "http://redis"}, [], "SCIM_HELP_REDIS_URL"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, [], "SLACK_SIGNING_SECRET"),
        ({"SCIM_HELP_LOG_FORMAT": "xml"}, [], "SCIM_HELP_LOG_FORMAT"),
        ({"SCIM_HELP_SHUTDOWN_TIMEOUT": "-1"}, [], "SCIM_HELP_SHUTDOWN_TIMEOUT"),
        ({"SCIM_HELP_KNOWLEDGE": "/nonexistent/pack.yaml"}, [], "SCIM_HELP_KNOWLEDGE"),
        # A CA bundle that is not there would fail every Teams reply and Graph look later, one by one.
        ({"SSL_CERT_FILE": "/nonexistent/ca.pem"}, [], "SSL_CERT_FILE"),
        ({"REQUESTS_CA_BUNDLE": "/nonexistent/ca.pem"}, [], "REQUESTS_CA_BUNDLE"),
        ({}, ["--port", "70000"], "port"),
    ],
)
def test_serve_refuses_invalid_configuration(settings, monkeypatch, capsys, own_logging, env, args, named):
    from bot.cli import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["serve", *args]) == 2
    out, err = capsys.readouterr()
    assert named in err and "invalid configuration" in err
    assert "Traceback" not in err and out == ""


def test_serve_invalid_configuration_as_a_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env=_clean_env(tmp_path, PORT="eighty"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "PORT" in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""


def test_serve_refuses_unusable_data_dir_and_busy_port(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env=_clean_env(tmp_path, SCIM_HELP_DATA_DIR=str(blocker / "data")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "SCIM_HELP_DATA_DIR" in proc.stderr and "Traceback" not in proc.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2 and f"127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
