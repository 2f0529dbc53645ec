"""A small local stand-in for the Bot Framework Connector service (what `serviceUrl` points at).

It speaks the endpoints the bot calls and records every outgoing activity:
- `POST /v3/conversations/{id}/activities`                 send to conversation
- `POST /v3/conversations/{id}/activities/{activityId}`    reply to activity
- `PUT  /v3/conversations/{id}/activities/{activityId}`    update activity
- `POST /v3/conversations`                                 create conversation (proactive)
and, for the authentication tests, an OpenID configuration with a JWKS (`/openid`, `/keys`).

Like Teams it refuses messages above 40 KB counted as UTF-16 (413 MessageSizeTooBig), so a renderer that
forgets the limit fails loudly. It runs on a real port in its own thread and event loop, so it keeps
answering whatever the bot's loop is doing (the old SDK's blocking metadata fetch froze that loop; the
attack tests check it never does again). Tests wait for outgoing calls with `wait_for` (polling with a
timeout, no fixed sleeps).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TEAMS_MAX_MESSAGE_BYTES = 40 * 1024


@dataclass
class Call:
    method: str
    kind: str  # send | reply | update | create
    conversation_id: str | None
    activity_id: str | None
    body: dict[str, Any]
    auth: str | None = None
    response_id: str | None = None
    # When the connector received it (time.monotonic(), comparable across processes on this machine).
    at: float = field(default_factory=time.monotonic)

    @property
    def reply_to(self) -> str | None:
        """The activity this one answers: in the URL (botbuilder's reply route) or as `replyToId`."""
        return self.activity_id or self.body.get("replyToId")

    @property
    def attachments(self) -> list[dict]:
        return self.body.get("attachments") or []

    @property
    def cards(self) -> list[dict]:
        return [a.get("content") or {} for a in self.attachments if a.get("contentType") == "application/vnd.microsoft.card.adaptive"]

    def texts(self) -> str:
        """Every piece of text in the activity and its cards, for loose assertions."""
        out: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if k in ("text", "title", "value") and isinstance(v, str):
                        out.append(v)
                    else:
                        walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        if isinstance(self.body.get("text"), str):
            out.append(self.body["text"])
        walk(self.cards)
        return "\n".join(out)


@dataclass
class FakeBotConnector:
    calls: list[Call] = field(default_factory=list)
    jwks: list[dict] = field(default_factory=list)
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeBotConnector:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="fake-bot-connector")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Bot Connector did not start")
        return self

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{cid}/activities", self._send)
        app.router.add_post("/v3/conversations/{cid}/activities/{aid}", self._reply)
        app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._update)
        app.router.add_get("/openid", self._openid)
        app.router.add_get("/keys", self._keys)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- recording -------------------------------------------------------------------------------------

    def _next_id(self) -> str:
        with self._lock:
            return str(next(self._ids))

    async def _record(self, request: web.Request, kind: str) -> web.Response:
        raw = await request.read()
        body = json.loads(raw or b"{}")
        size = len(json.dumps(body, ensure_ascii=False).encode("utf-16-le"))
        if size > TEAMS_MAX_MESSAGE_BYTES:
            return web.json_response(
                {"error": {"code": "MessageSizeTooBig", "message": f"{size} bytes"}}, status=413
            )
        aid = request.match_info.get("aid")
        response_id = aid if kind == "update" else self._next_id()
        call = Call(
            method=request.method,
            kind=kind,
            conversation_id=request.match_info.get("cid"),
            activity_id=aid,
            body=body,
            auth=request.headers.get("Authorization"),
            response_id=response_id,
        )
        with self._lock:
            self.calls.append(call)
        return web.json_response({"id": response_id})

    async def _send(self, request: web.Request) -> web.Response:
        return await self._record(request, "send")

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._record(request, "reply")

    async def _update(self, request: web.Request) -> web.Response:
        return await self._record(request, "update")

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        conv = f"19:{self._next_id()}@thread.tacv2"
        activity_id = self._next_id()
        with self._lock:
            self.calls.append(Call("POST", "create", None, None, body, request.headers.get("Authorization"), activity_id))
        return web.json_response({"id": conv, "activityId": activity_id, "serviceUrl": self.url})

    async def _openid(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": "https://api.botframework.com", "jwks_uri": f"{self.url}/keys"})

    async def _keys(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": self.jwks})

    # -- assertions --------------------------------------------------------------------------------------

    def snapshot(self, since: int = 0) -> list[Call]:
        """The calls recorded so far, from index `since` on."""
        with self._lock:
            return self.calls[since:]

    def outgoing(self, conversation_id: str | None = None) -> list[Call]:
        """Messages the bot sent (send/reply/create), optionally for one conversation."""
        return [
            c
            for c in self.snapshot()
            if c.kind in ("send", "reply", "create") and (conversation_id is None or c.conversation_id == conversation_id)
        ]

    async def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 10.0) -> list[Call]:
        """Poll the recorded calls until `predicate(calls)` holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.snapshot()
            if predicate(calls):
                return calls
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for Bot Connector calls; got {[(c.kind, c.conversation_id) for c in calls]}")
            await asyncio.sleep(0.02)
