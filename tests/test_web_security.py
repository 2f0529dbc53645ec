"""The web chat and the server's responses against the attacks of issue #14 (breaks 4, 5 and the headers):
the real aiohttp app on a test server, the real engine and SQLite store, requests as a browser or an
attacker would send them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

REPORT = "SCIM provisioning won't enable in the CMA, it shows an error"


@pytest.fixture
def serve(serve_app):
    """The server on a test server, with settings overrides (tests/conftest.py's serve_app)."""
    return serve_app


async def chat(client: TestClient, headers: dict[str, str] | None = None, **body: Any):
    return await client.post("/api/chat", json=body, headers=headers or {})


# ---- break 4: ids issued by the server, never logged, bound to their identity ------------------------------


async def test_a_client_chosen_conversation_id_is_refused(serve):
    """`web:AAAAAAAAAAAAAAAA` was accepted as a new conversation; only ids the server issued are now."""
    client = await serve()
    chosen = "web:AAAAAAAAAAAAAAAA"
    resp = await chat(client, conversation=chosen, text=REPORT)
    assert resp.status == 404 and (await resp.json())["error"] == "unknown_conversation"
    resp = await client.get("/api/chat", headers={"X-Conversation": chosen})
    assert resp.status == 404
    issued = (await (await chat(client)).json())["conversation"]
    assert issued != chosen and (await chat(client, conversation=issued, text=REPORT)).status == 200
    tampered = issued[:-2] + ("AA" if issued[-2:] != "AA" else "BB")
    assert (await chat(client, conversation=tampered, text="yes")).status == 404
    from bot.server import RUNTIME

    assert await client.server.app[RUNTIME].store.load(chosen) is None


async def test_web_conversation_ids_are_never_logged(serve):
    """Break 4: `turn conversation=web:…` and `path=/api/chat/web:…` at INFO gave anyone with the logs the
    key to a transcript holding UPNs."""
    from bot.logs import setup_logging

    buf = io.StringIO()
    handler = setup_logging("json", "INFO", buf)
    try:
        client = await serve()
        data = await (await chat(client, text=REPORT)).json()
        token = data["conversation"]
        await chat(client, conversation=token, choice=data["replies"][-1]["choices"][0]["id"])
        resp = await client.get("/api/chat", headers={"X-Conversation": token})
        assert resp.status == 200
        await client.get(f"/api/chat/{token}")  # an old client putting it in the URL
        await asyncio.sleep(0.05)
    finally:
        logging.getLogger().removeHandler(handler)
    text = buf.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    turns = [r for r in lines if r.get("event") == "turn"]
    assert len(turns) == 2 and all(r["conversation"].startswith("web:") for r in turns)
    assert token not in text and token[4:] not in text and token[4:20] not in text


async def test_a_web_conversation_belongs_to_the_identity_that_started_it(serve):
    client = await serve(host="0.0.0.0", web_identity_header="X-Forwarded-Email")
    alice, bob = {"X-Forwarded-Email": "alice@contoso.com"}, {"X-Forwarded-Email": "bob@contoso.com"}
    token = (await (await chat(client, alice, text=REPORT)).json())["conversation"]
    assert (await chat(client, bob, conversation=token, text="show ticket")).status == 404
    assert (await client.get("/api/chat", headers={**bob, "X-Conversation": token})).status == 404
    assert (await chat(client, alice, conversation=token, text="help")).status == 200
    assert (await client.get("/api/chat", headers={**alice, "X-Conversation": token})).status == 200
    # The identity header is required, and believed only from the configured proxy.
    assert (await chat(client, text=REPORT)).status == 401
    strict = await serve(host="0.0.0.0", web_identity_header="X-Forwarded-Email", trusted_proxies="10.0.0.0/8")
    assert (await chat(strict, alice, text=REPORT)).status == 401  # the test client is 127.0.0.1


# ---- break 5: budgets per client and a cap on live conversations ------------------------------------------


async def test_new_conversations_and_messages_are_rate_limited_per_client(serve):
    """Break 5: 3,000 anonymous POSTs in 19 s grew SQLite from 3.6 to 28 MB."""
    client = await serve(host="0.0.0.0", web_identity_header="X-Forwarded-Email", web_new_per_minute=3, web_turns_per_minute=6)
    alice, bob = {"X-Forwarded-Email": "alice@contoso.com"}, {"X-Forwarded-Email": "bob@contoso.com"}
    statuses = [(await chat(client, alice, text=REPORT)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = await chat(client, alice, text=REPORT)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"] == "rate_limited"
    token = (await (await chat(client, bob, text=REPORT)).json())["conversation"]  # another client: its own budget
    statuses = [(await chat(client, bob, conversation=token, text="help")).status for _ in range(6)]
    assert statuses[:5] == [200] * 5 and statuses[5] == 429  # 6 messages a minute, the first one included
    # Every refusal is counted for the operator, by endpoint (never by client).
    metrics = await (await client.get("/metrics")).text()
    assert 'scim_help_rate_limited_total{endpoint="/api/chat"} 3.0' in metrics


async def test_live_web_conversations_are_capped(serve):
    client = await serve(web_max_conversations=2, web_new_per_minute=100)
    assert [(await chat(client)).status for _ in range(2)] == [200, 200]
    resp = await chat(client)
    assert resp.status == 503 and resp.headers.get("Retry-After") and (await resp.json())["error"] == "busy"


# ---- off on a non-loopback address unless a proxy vouches for the user -----------------------------------


async def test_web_chat_is_off_on_a_non_loopback_address_without_an_identity_header(serve):
    client = await serve(host="0.0.0.0")
    resp = await client.get("/")
    assert resp.status == 200 and "disabled" in await resp.text()
    assert (await chat(client, text=REPORT)).status == 404
    assert (await client.get("/healthz")).status == 200
    on = await serve(host="0.0.0.0", web_chat=True)  # switched on explicitly: open, with a warning
    assert (await chat(on, text=REPORT)).status == 200
    proxied = await serve(host="0.0.0.0", web_identity_header="X-Forwarded-Email")
    assert (await chat(proxied, {"X-Forwarded-Email": "alice@contoso.com"}, text=REPORT)).status == 200
    local = await serve(host="127.0.0.1")
    assert (await chat(local, text=REPORT)).status == 200


# ---- security headers on every response, no versions ------------------------------------------------------


async def test_every_response_has_security_headers_and_no_server_version(serve):
    client = await serve()
    responses = [
        await client.get("/"),
        await client.get("/static/app.js"),
        await client.get("/healthz"),
        await client.get("/metrics"),
        await client.get("/nowhere"),
        await chat(client, text="x" * 5000),
        await client.post("/slack/events", data=b"{}"),
    ]
    for resp in responses:
        h = resp.headers
        assert h["X-Content-Type-Options"] == "nosniff", resp.url
        assert h["Referrer-Policy"] == "no-referrer", resp.url
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"], resp.url
        assert h["X-Frame-Options"] == "DENY" and h["Cross-Origin-Opener-Policy"] == "same-origin", resp.url
        assert h["Server"] == "scim-help", (resp.url, h.get("Server"))
    assert "script-src 'self'" in responses[0].headers["Content-Security-Policy"]
    # A request line aiohttp rejects before the app sees it: still no versions.
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    raw = (await asyncio.wait_for(reader.read(4096), 5)).decode("latin-1")
    writer.close()
    assert raw.startswith(("HTTP/1.1 4", "HTTP/1.0 4")), raw[:80]
    server = [line for line in raw.split("\r\n") if line.lower().startswith("server:")]
    assert server and "aiohttp" not in server[0].lower() and "python" not in server[0].lower(), server
