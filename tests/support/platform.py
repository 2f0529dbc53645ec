"""Realistic platform requests: Slack Events API payloads signed like Slack signs them, and Bot Framework
message activities as Teams sends them.

Slack signing (https://api.slack.com/authentication/verifying-requests-from-slack): the signature is
`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the app's signing secret, sent with
`X-Slack-Request-Timestamp`. Bolt refuses a timestamp more than 5 minutes away from now.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from typing import Any

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # test-only
BOT_TOKEN = "xoxb-test-0000-reliability"  # test-only
TEAM = "T0FAKE"  # the fake Slack API's team (auth.test)
BOT_USER = "U0BOT"  # the fake Slack API's bot user

_ts = itertools.count(1)


def slack_headers(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None, retry: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


def signed(payload: Any, **kw: Any) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8", "surrogatepass")
    return body, slack_headers(body, **kw)


def next_ts() -> str:
    """A Slack message timestamp, unique within this process."""
    n = next(_ts)
    return f"{1700000000 + n // 1000}.{n % 1000:03d}{uuid.uuid4().int % 1000:03d}"


def event_callback(event: dict[str, Any], team: str = TEAM, event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": team,
        "api_app_id": "A0SCIMHELP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or ("Ev" + uuid.uuid4().hex[:12].upper()),
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    }


def dm_event(channel: str, user: str, text: str, ts: str | None = None, thread_ts: str | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts or next_ts(),
        "event_ts": ts or next_ts(),
        "team": TEAM,
    }
    if thread_ts:
        ev["thread_ts"] = thread_ts
    return ev


def mention_event(channel: str, user: str, text: str, ts: str | None = None, thread_ts: str | None = None) -> dict[str, Any]:
    ts = ts or next_ts()
    ev: dict[str, Any] = {
        "type": "app_mention",
        "channel": channel,
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "event_ts": ts,
        "team": TEAM,
    }
    if thread_ts:
        ev["thread_ts"] = thread_ts
    return ev


def slack_dm_conversation(channel: str, team: str = TEAM) -> str:
    return f"slack:{team}:{channel}:dm"


def slack_thread_conversation(channel: str, thread_ts: str, team: str = TEAM) -> str:
    return f"slack:{team}:{channel}:{thread_ts}"


# ---- Teams --------------------------------------------------------------------------------------------

TENANT = "72f988bf-0000-0000-0000-2d7cd011db47"
BOT_ID = "28:scim-help-bot"


def teams_message(service_url: str, conversation: str, text: str | None = None, value: Any = None, user: str = "29:admin", activity_id: str | None = None) -> dict[str, Any]:
    act: dict[str, Any] = {
        "type": "message",
        "id": activity_id or uuid.uuid4().hex[:16],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": {"id": user, "name": "Ada Admin", "aadObjectId": "00000000-0000-0000-0000-0000000000a1"},
        "conversation": {"id": conversation, "conversationType": "personal", "tenantId": TENANT},
        "recipient": {"id": BOT_ID, "name": "scim-help"},
        "channelData": {"tenant": {"id": TENANT}},
        "locale": "en-US",
    }
    if text is not None:
        act["text"] = text
        act["textFormat"] = "plain"
    if value is not None:
        act["value"] = value
    return act


def teams_conversation(conversation: str) -> str:
    return f"teams:{TENANT}:{conversation}"


# ---- realistic admin messages -----------------------------------------------------------------------------

REPORTS = [
    "new hires never show up in Cato, provisioning from Entra ID",
    "SCIM provisioning from Azure AD fails with 401 Unauthorized on test connection",
    "Okta push to Cato: users created but they are missing from the groups",
    "we added 40 users to the enterprise app but only the first 10 were provisioned to CMA",
    "provisioning logs say LicenseLimitExceeded for some users",
    "users we removed in OneLogin are still active in the Cato Management Application",
    "Test connection succeeds but nobody gets created in Cato",
    "hi, the scim sync to cato stopped working after we rotated the token",
    "group membership changes are not reflected in Cato, users stay in the old group",
    "some users show up in Cato but with the wrong email address",
]
FOLLOW_UPS = ["yes", "no", "not sure", "it says 401", "nope, looks fine", "yep", "help", "show ticket"]
OFF_TOPIC = ["what's for lunch?", "can someone reset my VPN password", "thanks!"]
