"""What a signed Slack request may look like before anything acts on it, and what makes it a repeat.

Signed requests come from Slack, but bolt reads fields without checking their types, and a payload of an
unexpected shape makes its middleware fail with a 500 (and Slack retry it). So the fields bolt and our
listeners read are checked first (`check_payload`). Kinds we do not handle are acknowledged without
being recorded.

`dedupe_key` is what the inbox de-duplicates on: an event's `event_id` (Slack's retries carry the same
one), otherwise the request's timestamp and signature — a signed slash command or click replayed inside
the 5-minute window is the same request, answered once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from bot.text import valid_unicode

# Slack retries a failed delivery 3 times; the last one is never refused, or the message would be lost.
LAST_RETRY = 3

_EVENT_TYPES = {"message", "app_mention"}
_INTERACTIONS = {"block_actions", "view_submission", "view_closed"}
_OPT_STR_TOP = (
    "type", "token", "team_id", "enterprise_id", "api_app_id", "event_id", "trigger_id", "response_url",
    "command", "text", "user_id", "channel_id", "channel_name", "team_domain", "user_name", "challenge",
)
_OPT_DICT_TOP = ("team", "enterprise", "user", "channel", "container", "view", "message", "event")
_OPT_STR_EVENT = (
    "type", "user", "channel", "team", "ts", "thread_ts", "text", "subtype", "bot_id", "channel_type", "event_ts",
    "client_msg_id", "parent_user_id",
)
_VIEW_STRS = ("id", "callback_id", "private_metadata", "type", "hash", "external_id", "app_id", "team_id", "bot_id", "root_view_id", "previous_view_id")


def _strs(d: dict[str, Any], keys: Iterable[str]) -> bool:
    return all(d.get(k) is None or isinstance(d.get(k), str) for k in keys)


def _dicts(d: dict[str, Any], keys: Iterable[str]) -> bool:
    return all(d.get(k) is None or isinstance(d.get(k), dict) for k in keys)


def check_payload(body: Any) -> str:
    """"dispatch" (record and process), "ignore" (acknowledge, do nothing) or "reject" (400)."""
    if not isinstance(body, dict) or not body or not _top_level_ok(body):
        return "reject"
    kind = body.get("type")
    if "command" in body:
        return "dispatch" if body.get("command") and body.get("user_id") and body.get("channel_id") else "reject"
    if not kind and "ssl_check" not in body:
        return "reject"  # everything Slack sends, except slash commands and SSL checks, has a type
    if "ssl_check" in body or kind == "url_verification":
        return "dispatch" if kind != "url_verification" or isinstance(body.get("challenge"), str) else "reject"
    if kind == "event_callback":
        return _event_verdict(body.get("event"))
    if kind in _INTERACTIONS:
        return _interaction_verdict(body, kind)
    return "ignore"


def _top_level_ok(body: dict[str, Any]) -> bool:
    if not _strs(body, _OPT_STR_TOP) or not _dicts(body, _OPT_DICT_TOP):
        return False
    if body.get("is_enterprise_install") is not None and not isinstance(body["is_enterprise_install"], (bool, str)):
        return False
    auths = body.get("authorizations")
    if auths is not None:
        if not isinstance(auths, list) or not all(isinstance(a, dict) and _strs(a, ("team_id", "user_id", "enterprise_id")) for a in auths):
            return False
        if any(a.get("is_enterprise_install") is not None and not isinstance(a["is_enterprise_install"], (bool, str)) for a in auths):
            return False
    for key in ("team", "enterprise", "user", "channel"):
        sub = body.get(key)
        if isinstance(sub, dict) and not _strs(sub, ("id", "team_id", "name", "domain", "username")):
            return False
    return True


def _event_verdict(event: Any) -> str:
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "reject"
    if event["type"] not in _EVENT_TYPES:
        return "ignore"
    if not _strs(event, _OPT_STR_EVENT) or not _dicts(event, ("bot_profile", "message", "previous_message", "edited")):
        return "reject"
    return "dispatch"


def _interaction_verdict(body: dict[str, Any], kind: str) -> str:
    user = body.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        return "reject"
    container, message = body.get("container") or {}, body.get("message") or {}
    if not _strs(container, ("type", "message_ts", "channel_id", "thread_ts", "view_id")):
        return "reject"
    if not _strs(message, ("ts", "thread_ts", "text", "type", "user", "bot_id")) or not (
        message.get("blocks") is None or (isinstance(message["blocks"], list) and all(isinstance(b, dict) for b in message["blocks"]))
    ):
        return "reject"
    if kind == "block_actions":
        return _actions_verdict(body.get("actions"))
    return _view_verdict(body.get("view"))


def _actions_verdict(actions: Any) -> str:
    if not isinstance(actions, list) or not actions:
        return "reject"
    for a in actions:
        if not isinstance(a, dict) or not isinstance(a.get("action_id"), str) or not _strs(a, ("block_id", "value", "type", "action_ts")):
            return "reject"
        if a.get("text") is not None and not (isinstance(a["text"], dict) and _strs(a["text"], ("text", "type"))):
            return "reject"
    return "dispatch"


def _view_verdict(view: Any) -> str:
    if not isinstance(view, dict) or not _strs(view, _VIEW_STRS):
        return "reject"
    state = view.get("state")
    if state is None:
        return "dispatch"
    values = state.get("values") if isinstance(state, dict) else None
    if not (isinstance(values, dict) and all(isinstance(acts, dict) and all(isinstance(el, dict) for el in acts.values()) for acts in values.values())):
        return "reject"
    return "dispatch"


def dedupe_key(body: dict[str, Any], headers: Mapping[str, str], envelope_id: str | None = None) -> str:
    """The inbox key: `event:<event_id>` for Events API callbacks, else the signature of the request (or
    the Socket Mode envelope, which carries no signature)."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{valid_unicode(body['event_id'])}"  # a JSON string may hold a lone surrogate
    if envelope_id:
        return f"envelope:{envelope_id}"
    signed = f"{headers.get('X-Slack-Request-Timestamp', '')}:{headers.get('X-Slack-Signature', '')}"
    return "sig:" + hashlib.blake2s(signed.encode(), digest_size=16).hexdigest()


def last_retry(headers: Mapping[str, str]) -> bool:
    try:
        return int(headers.get("X-Slack-Retry-Num") or 0) >= LAST_RETRY
    except ValueError:
        return False
