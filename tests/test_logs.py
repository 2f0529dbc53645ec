"""Structured logs (bot/logs.py): JSON lines with the engine's fields, readable text otherwise, and never a
UPN, an email address or a token in clear — checked on a whole conversation through the web API."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.logs import setup_logging
from bot.server import AccessLogger, build_app
from tests.test_server import converse

UPN_A = "amelia.ross@contosopharma.com"
UPN_B = "dev.kapoor@contosopharma.com"
EMAIL = "it-helpdesk@contosopharma.com"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzY2ltLWFkbWluIn0.Q2F0b1NjaW1Ub2tlblNlY3JldFZhbHVlMTIz"
SCIM_SECRET = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928"
SECRETS = [UPN_A, UPN_B, EMAIL, TOKEN, SCIM_SECRET, "amelia.ross", "dev.kapoor", "it-helpdesk@"]


@pytest.fixture
def captured():
    """Install the real logging setup on a buffer; undo it afterwards."""
    buffers = []

    def install(fmt: str) -> io.StringIO:
        buf = io.StringIO()
        setup_logging(fmt, "DEBUG", stream=buf)
        buffers.append(buf)
        return buf

    root = logging.getLogger()
    level = root.level
    yield install
    for handler in list(root.handlers):
        if getattr(handler, "_scim_help_handler", False):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def app_client(make_runtime, bundle, monkeypatch):
    monkeypatch.setattr("bot.runtime.load_pack", lambda path=None: bundle)
    rt = make_runtime()
    server = TestServer(build_app(rt))
    await server.start_server(access_log_class=AccessLogger)  # as `serve` runs it
    client = TestClient(server)
    await client.start_server()
    yield client
    await client.close()
    await rt.close()


async def _conversation_with_pii(client) -> str:
    conversation, payloads = await converse(
        client,
        "cannot-enable",
        report=(
            f"Enabling SCIM in the CMA fails: Can't enable SCIM provisioning. Please contact Support and refer to "
            f"Account ID Configuration - Email. It is for {UPN_A} and {UPN_B}; reply to {EMAIL}. "
            f"Our Entra setup used Authorization: Bearer {TOKEN} and secret token {SCIM_SECRET}"
        ),
        texts={"account": f"Contoso, contact {EMAIL}", "upns": f"{UPN_A}, {UPN_B}", "groups": "Cato-Remote-Users"},
    )
    assert any(r.get("ticket") for p in payloads for r in p["replies"]), "no ticket: the conversation did not finish"
    # The engine keeps the UPNs for the ticket — they are in the conversation, just never in the logs.
    ticket = next(r["ticket"] for p in payloads for r in p["replies"] if r.get("ticket"))
    assert UPN_A in ticket["upns"]
    return conversation


def _logged_as(client, conversation: str) -> str:
    from bot.channels.web import WebChatKey

    internal = client.server.app[WebChatKey].ids.verify(conversation, None)
    assert internal and internal != conversation
    return internal


async def test_json_logs_of_a_whole_conversation_carry_no_pii(app_client, captured):
    buf = captured("json")
    conversation = await _conversation_with_pii(app_client)
    # An error whose message carries PII goes through the same net.
    logging.getLogger("scim_help.test").error(
        "lookup failed for %s", UPN_A, extra={"conversation": conversation, "upn": UPN_B, "items": [EMAIL, TOKEN]}
    )
    try:
        raise ValueError(f"cannot parse {EMAIL} with Bearer {TOKEN}")
    except ValueError:
        logging.getLogger("scim_help.test").exception("parse error", extra={"conversation": conversation})

    text = buf.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(lines) > 10
    for record in lines:
        assert {"ts", "level", "logger", "event"} <= set(record), record
    turns = [r for r in lines if r["logger"] == "scim_help.engine" and r["event"] == "turn"]
    # Logged by a keyed hash, never by the id that opens the conversation (#14 break 4).
    assert turns and all(r["conversation"] == _logged_as(app_client, conversation) for r in turns)
    assert conversation not in text and conversation[4:] not in text
    assert {"channel", "phase", "symptom"} <= set(turns[-1])
    assert any(r["logger"] == "aiohttp.access" and r.get("path") == "/api/chat" for r in lines)
    errors = [r for r in lines if r["logger"] == "scim_help.test"]
    assert errors[0]["event"].startswith("lookup failed for <email:") and errors[0]["upn"].startswith("<email:")
    assert "ValueError" in errors[1]["exc"]
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into the logs"


async def test_text_logs_are_one_readable_line_and_scrubbed(app_client, captured):
    buf = captured("text")
    conversation = await _conversation_with_pii(app_client)
    text = buf.getvalue()
    turn_lines = [line for line in text.splitlines() if "scim_help.engine: turn" in line]
    assert turn_lines and f"conversation={_logged_as(app_client, conversation)}" in turn_lines[0]
    assert conversation[4:] not in text
    assert "INFO" in turn_lines[0]
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into the logs"


def test_filter_scrubs_message_args_and_nested_extras(captured):
    buf = captured("json")
    log = logging.getLogger("scim_help.test")
    log.warning(
        "token %s for %s",
        f"Bearer {TOKEN}",
        UPN_A,
        extra={"conversation": "web:abc", "nested": {"who": [UPN_B, {"mail": EMAIL}]}, "count": 3},
    )
    record = json.loads(buf.getvalue().strip())
    assert record["level"] == "WARNING" and record["logger"] == "scim_help.test"
    assert record["conversation"] == "web:abc" and record["count"] == 3
    assert "[redacted secret]" in record["event"] and "<email:" in record["event"]
    dumped = json.dumps(record)
    for secret in (TOKEN, UPN_A, UPN_B, EMAIL):
        assert secret not in dumped
    # Pseudonyms are stable: the same UPN always maps to the same hash (useful when correlating).
    log.warning("again %s", UPN_A)
    again = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert record["event"].split("for ")[1] == again["event"].split("again ")[1]


def test_setup_replaces_its_own_handler(captured):
    captured("text")
    captured("json")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_scim_help_handler", False)]
    assert len(ours) == 1
