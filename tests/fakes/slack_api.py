"""A small fake of the Slack Web API for tests: a real aiohttp server on 127.0.0.1 (random port).

It speaks just enough of the Web API for the Slack channel — `auth.test`, `chat.postMessage`,
`chat.postEphemeral`, `chat.update`, `chat.getPermalink`, `views.open`, `conversations.open`,
`conversations.replies` and `conversations.history` (with message metadata) — plus the
`response_url` endpoints Slack hands out with slash commands and button clicks. Every call is recorded
(method, decoded JSON/form body, headers) so tests can assert on what the bot sent, and faults can be
injected per method: a 429 with `Retry-After`, a 5xx, or an `ok: false` error.

    async with FakeSlackAPI() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        fake.fail("chat.postMessage", status=429, retry_after=0)   # next call only
        ...
        call = await fake.wait_for("chat.postMessage", channel="C1")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

TEAM_ID = "T0FAKE"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"

# Form-encoded arguments that slack_sdk sends as JSON strings.
_JSON_ARGS = ("blocks", "attachments", "view", "metadata")


@dataclass
class Call:
    method: str  # Web API method ("chat.postMessage") or "response_url"
    body: dict[str, Any]
    headers: dict[str, str]
    path: str = ""
    at: float = field(default_factory=time.monotonic)
    # What the fake answered (for Web API calls), e.g. the ts of a posted message.
    response: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


@dataclass
class _Fault:
    method: str
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    times: int = 1


class FakeSlackAPI:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.faults: list[_Fault] = []
        # What the bot posted, by (channel, ts): lets tests build realistic block_actions payloads.
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.port = 0
        # Block Kit payloads the fake refused (as Slack would, with invalid_blocks): (method, problems).
        self.invalid: list[tuple[str, list[str]]] = []
        # Socket Mode: the bot's open WebSocket connections (apps.connections.open hands out /socket).
        self.sockets: list[web.WebSocketResponse] = []
        # While cleared, Web API calls are recorded but not answered: a Slack that is slow to respond.
        self.open = asyncio.Event()
        self.open.set()

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> FakeSlackAPI:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack_sdk GETs a few methods (chat.getPermalink)
        app.router.add_post("/response/{token}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlackAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        # slack_sdk appends the method name to base_url, so the trailing slash matters.
        return f"{self.base_url}/api/"

    def response_url(self) -> str:
        return f"{self.base_url}/response/{uuid.uuid4().hex}"

    # ---- fault injection -----------------------------------------------------------------------

    def fail(self, method: str, *, status: int = 200, error: str | None = None, retry_after: int | None = None, times: int = 1) -> None:
        """The next `times` calls of `method` fail: HTTP `status` (429 adds Retry-After) or ok=false `error`."""
        if status == 200 and error is None:
            error = "internal_error"
        if status == 429 and retry_after is None:
            retry_after = 0
        self.faults.append(_Fault(method, status, error, retry_after, times))

    def _take_fault(self, method: str) -> _Fault | None:
        for f in self.faults:
            if f.method == method and f.times > 0:
                f.times -= 1
                return f
        return None

    # ---- assertions ----------------------------------------------------------------------------

    def calls_to(self, method: str | None = None, **match: Any) -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method) and _matches(c.body, match)]

    def api_calls(self) -> list[Call]:
        """Every call except the auth.test bolt makes once to learn who it is."""
        return [c for c in self.calls if c.method != "auth.test"]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Call], bool] | None = None,
        **match: Any,
    ) -> Call:
        """Wait until at least `count` matching calls were recorded; return the `count`-th one."""
        calls = await self.wait_calls(method, count, timeout, where, **match)
        return calls[count - 1]

    async def wait_calls(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Call], bool] | None = None,
        **match: Any,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_to(method, **match) if where is None or where(c)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(c.method, {k: c.body.get(k) for k in ("channel", "thread_ts", "text")}) for c in self.calls]
                raise AssertionError(f"timed out waiting for {count} x {method} {match}; recorded: {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass

    async def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no call was recorded for `quiet` seconds (to assert that nothing *more* happens)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.calls[-1].at if self.calls else 0.0
            if time.monotonic() - last >= quiet:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=quiet)
            except TimeoutError:
                pass

    # ---- handlers ------------------------------------------------------------------------------

    def _record(self, method: str, body: dict[str, Any], request: web.Request) -> Call:
        call = Call(method=method, body=body, headers=dict(request.headers), path=request.path)
        self.calls.append(call)
        self._changed.set()
        return call

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _decode(request)
        call = self._record(method, body, request)
        await self.open.wait()
        fault = self._take_fault(method)
        if fault is not None:
            if fault.status == 429:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(fault.retry_after)}
                )
            if fault.status != 200:
                return web.json_response({"ok": False, "error": "fatal_error"}, status=fault.status)
            return web.json_response({"ok": False, "error": fault.error})
        if request.headers.get("Authorization", "") in ("", "Bearer ", "Bearer None"):
            return web.json_response({"ok": False, "error": "not_authed"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        problems = self._check_payload(method, body)
        if problems:
            self.invalid.append((method, problems))
            call.response = {"ok": False, "error": "invalid_blocks", "errors": problems}
            return web.json_response(call.response)
        call.response = handler(body)
        return web.json_response(call.response)

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await _decode(request)
        self._record("response_url", body, request)
        problems = self._check_payload("response_url", body)
        if problems:
            self.invalid.append(("response_url", problems))
            return web.Response(status=400, text="invalid_blocks")
        fault = self._take_fault("response_url")
        if fault is not None:
            return web.Response(status=fault.status if fault.status != 200 else 404, text="expired_url")
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        self._record("socket.connect", {}, request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}})
        try:
            async for msg in ws:
                if msg.type.name == "TEXT":
                    # The bot's acknowledgement of an envelope: {"envelope_id": ..., "payload": ...}
                    self._record("socket.ack", json.loads(msg.data), request)
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws

    async def socket_send(self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None, retry_attempt: int = 0) -> str:
        """Deliver an envelope over Socket Mode, as Slack does (kind: events_api, interactive, slash_commands)."""
        if not self.sockets:
            await self.wait_for("socket.connect")
        envelope_id = envelope_id or uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope.update({"retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""})
        await self.sockets[-1].send_json(envelope)
        return envelope_id

    def _m_apps_connections_open(self, body: dict) -> dict:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    @staticmethod
    def _check_payload(method: str, body: dict[str, Any]) -> list[str]:
        if method == "views.open":
            return validate_view(body.get("view") or {})
        if isinstance(body.get("blocks"), list):
            return validate_blocks(body["blocks"])
        return []

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.{next(self._ts):06d}"

    def _m_auth_test(self, body: dict) -> dict:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "scim-help",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, body: dict) -> dict:
        ts = self._next_ts()
        channel = str(body.get("channel"))
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "text": body.get("text", ""),
            "blocks": body.get("blocks") or [],
            "ts": ts,
        }
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        if isinstance(body.get("metadata"), dict):
            message["metadata"] = body["metadata"]
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_conversations_replies(self, body: dict) -> dict:
        channel, ts = str(body.get("channel")), str(body.get("ts"))
        found = [m for (ch, mts), m in self.messages.items() if ch == channel and (mts == ts or m.get("thread_ts") == ts)]
        return {"ok": True, "messages": [self._shown(m, body) for m in found][: int(body.get("limit") or 1000)]}

    def _m_conversations_history(self, body: dict) -> dict:
        channel = str(body.get("channel"))
        found = [m for (ch, mts), m in self.messages.items() if ch == channel and m.get("thread_ts") in (None, mts)]
        found.reverse()  # newest first, as Slack returns them
        return {"ok": True, "messages": [self._shown(m, body) for m in found][: int(body.get("limit") or 100)]}

    @staticmethod
    def _shown(message: dict[str, Any], body: dict) -> dict[str, Any]:
        if str(body.get("include_all_metadata")).lower() in ("1", "true"):
            return message
        return {k: v for k, v in message.items() if k != "metadata"}

    def _m_chat_postEphemeral(self, body: dict) -> dict:
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_update(self, body: dict) -> dict:
        channel, ts = str(body.get("channel")), str(body.get("ts"))
        if (channel, ts) not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        self.messages[(channel, ts)].update({"text": body.get("text", ""), "blocks": body.get("blocks") or []})
        return {"ok": True, "channel": channel, "ts": ts, "text": body.get("text", "")}

    def _m_chat_getPermalink(self, body: dict) -> dict:
        channel, ts = str(body.get("channel")), str(body.get("message_ts"))
        return {"ok": True, "channel": channel, "permalink": f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"}

    def _m_views_open(self, body: dict) -> dict:
        if not body.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = body.get("view") or {}
        return {"ok": True, "view": {**view, "id": "V" + uuid.uuid4().hex[:10].upper()}}

    def _m_conversations_open(self, body: dict) -> dict:
        users = str(body.get("users", ""))
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0].lstrip("U")[:12].upper()}}


async def _decode(request: web.Request) -> dict[str, Any]:
    """Query string, form or JSON arguments (slack_sdk uses all three, depending on the method)."""
    body: dict[str, Any] = dict(request.query)
    raw = await request.text()
    if raw and request.content_type == "application/json":
        data = json.loads(raw)
        body.update(data if isinstance(data, dict) else {"_": data})
        return body
    body.update(parse_qsl(raw, keep_blank_values=True))
    for key in _JSON_ARGS:
        if isinstance(body.get(key), str):
            try:
                body[key] = json.loads(body[key])
            except ValueError:
                pass
    return body


def _matches(body: dict[str, Any], match: dict[str, Any]) -> bool:
    return all(body.get(k) == v for k, v in match.items())


# ---- Block Kit limits, checked like Slack does -------------------------------------------------------
# docs.slack.dev/reference/block-kit: 50 blocks per message (100 in a modal); section text 3000, fields
# 10 x 2000; header 150; context 10 elements; actions 25 elements; button text 75, value 2000, url 3000;
# action_id / block_id 255; modal title/submit/close 24, private_metadata 3000, callback_id 255;
# plain_text_input max_length 3000 (initial_value within it), placeholder 150, input label/hint 2000.

_BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "input", "image", "rich_text", "markdown"}


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else -1


def validate_blocks(blocks: list[Any], *, max_blocks: int = 50) -> list[str]:
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks > {max_blocks}")
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for i, b in enumerate(blocks):
        where = f"block {i} ({b.get('type') if isinstance(b, dict) else '?'})"
        if not isinstance(b, dict) or b.get("type") not in _BLOCK_TYPES:
            problems.append(f"{where}: unknown block")
            continue
        bid = b.get("block_id")
        if bid is not None:
            if len(bid) > 255:
                problems.append(f"{where}: block_id {len(bid)} > 255")
            if bid in block_ids:
                problems.append(f"{where}: duplicate block_id")
            block_ids.add(bid)
        t = b["type"]
        if t == "section":
            if "text" not in b and "fields" not in b:
                problems.append(f"{where}: needs text or fields")
            if "text" in b and not (0 < _text_len(b["text"]) <= 3000):
                problems.append(f"{where}: text length {_text_len(b['text'])} not in 1..3000")
            if "fields" in b:
                if not (0 < len(b["fields"]) <= 10):
                    problems.append(f"{where}: {len(b['fields'])} fields not in 1..10")
                for f in b["fields"]:
                    if not (0 < _text_len(f) <= 2000):
                        problems.append(f"{where}: field length {_text_len(f)} not in 1..2000")
        elif t == "header":
            if b.get("text", {}).get("type") != "plain_text" or not (0 < _text_len(b["text"]) <= 150):
                problems.append(f"{where}: header text must be plain_text of 1..150")
        elif t == "context":
            els = b.get("elements") or []
            if not (0 < len(els) <= 10):
                problems.append(f"{where}: {len(els)} elements not in 1..10")
            for el in els:
                if el.get("type") in ("mrkdwn", "plain_text") and not (0 < _text_len(el) <= 3000):
                    problems.append(f"{where}: element text length {_text_len(el)} not in 1..3000")
        elif t == "actions":
            els = b.get("elements") or []
            if not (0 < len(els) <= 25):
                problems.append(f"{where}: {len(els)} elements not in 1..25")
            for el in els:
                problems += [f"{where}: {p}" for p in _validate_button(el, action_ids)]
        elif t == "input":
            if not (0 < _text_len(b.get("label")) <= 2000):
                problems.append(f"{where}: label length not in 1..2000")
            if "hint" in b and not (0 < _text_len(b["hint"]) <= 2000):
                problems.append(f"{where}: hint length not in 1..2000")
            el = b.get("element") or {}
            if el.get("type") == "plain_text_input":
                max_length = el.get("max_length", 3000)
                if not (0 < max_length <= 3000):
                    problems.append(f"{where}: max_length {max_length} not in 1..3000")
                if len(el.get("initial_value", "")) > max_length:
                    problems.append(f"{where}: initial_value longer than max_length")
                if "placeholder" in el and not (0 < _text_len(el["placeholder"]) <= 150):
                    problems.append(f"{where}: placeholder not in 1..150")
                if len(el.get("action_id", "")) > 255:
                    problems.append(f"{where}: action_id > 255")
    return problems


def _validate_button(el: dict[str, Any], action_ids: set[str]) -> list[str]:
    problems: list[str] = []
    if el.get("type") != "button":
        return problems
    text = el.get("text") or {}
    if text.get("type") != "plain_text" or not (0 < _text_len(text) <= 75):
        problems.append(f"button text must be plain_text of 1..75, got {_text_len(text)}")
    aid = el.get("action_id", "")
    if len(aid) > 255:
        problems.append("action_id > 255")
    if aid:
        if aid in action_ids:
            problems.append(f"duplicate action_id {aid}")
        action_ids.add(aid)
    if len(el.get("value", "")) > 2000:
        problems.append("button value > 2000")
    if len(el.get("url", "")) > 3000:
        problems.append("button url > 3000")
    if el.get("style") not in (None, "primary", "danger"):
        problems.append("bad button style")
    return problems


def validate_view(view: dict[str, Any]) -> list[str]:
    problems = validate_blocks(view.get("blocks") or [], max_blocks=100)
    for key in ("title", "submit", "close"):
        if key in view and not (0 < _text_len(view[key]) <= 24):
            problems.append(f"view {key} not in 1..24")
    if len(view.get("private_metadata", "")) > 3000:
        problems.append("private_metadata > 3000")
    if len(view.get("callback_id", "")) > 255:
        problems.append("callback_id > 255")
    return problems
