"""The embedded web chat: a static page (bot/web/) and a small JSON API over the same engine.

    GET  /                       the chat page (index.html; app.js and style.css under /static/)
    POST /api/chat               {"conversation": "web:…"|null, "text": "…"} or {…, "choice": "<id>"}
                                 -> {"conversation", "replies": [...], "phase", "symptom", "cause", "asking", …}
    GET  /api/chat/<id>          -> {"conversation", "entries": [...], "phase"}: the transcript, to restore
                                 the page on reload

A conversation id is `web:<random>`, issued by the server on the first POST and kept by the browser in
localStorage: it is the only key to the conversation, so it is long and random. The browser transcript
(what the page shows: the admin's messages with secrets scrubbed, the bot's replies in full) is kept in the
store next to the engine state, with the same TTL, so a reload — or another replica — restores it.

Cross-site protection: POSTs must be `Content-Type: application/json` (a cross-site form or no-cors fetch
cannot send that without a CORS preflight, which this server never grants) and, when the browser sends an
`Origin`, it must be this server's own origin or one listed in SCIM_HELP_ALLOWED_ORIGINS.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.events import Incoming
from bot.redact import scrub_secrets
from bot.render.web import render_turn
from bot.store.base import StoreUnavailable

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("scim_help.web")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MAX_BODY = 16 * 1024
MAX_TEXT = 4000
TRANSCRIPT_PREFIX = "webchat:"
TRANSCRIPT_KEEP = 400
ID_PATTERN = r"^web:[A-Za-z0-9_-]{16,64}$"
_ID = re.compile(ID_PATTERN)

STATIC = {"app.js": "application/javascript", "style.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    conversation: str | None = Field(None, pattern=ID_PATTERN)
    text: str | None = Field(None, max_length=MAX_TEXT)
    choice: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_of(self) -> "ChatRequest":
        if self.text is not None and self.choice is not None:
            raise ValueError("send either text or choice, not both")
        return self


def new_conversation_id() -> str:
    return "web:" + secrets.token_urlsafe(18)


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


class WebChat:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self.allowed_origins = runtime.settings.allowed_origin_set
        self.index_html = (WEB_DIR / "index.html").read_bytes()
        self.static = {name: (WEB_DIR / name).read_bytes() for name in STATIC}

    # -- pages -------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self.index_html, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.static:
            raise web.HTTPNotFound()
        return web.Response(
            body=self.static[name], content_type=STATIC[name], charset="utf-8", headers={"Cache-Control": "no-cache"}
        )

    # -- API ---------------------------------------------------------------------------------------

    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            # Older browsers omit Origin on same-origin POSTs; Fetch Metadata still tells cross-site apart.
            return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
        origin = origin.strip().rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        if "://" not in origin:
            return False  # "null" (sandboxed frames, file://) and garbage
        authority = origin.split("://", 1)[1]
        hosts = {request.host.lower()}
        forwarded = request.headers.get("X-Forwarded-Host")
        if forwarded:
            hosts.add(forwarded.split(",")[0].strip().lower())
        return authority in hosts

    async def post_chat(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return error(415, "unsupported_media_type", "Send the message as JSON (Content-Type: application/json).")
        if not self._origin_ok(request):
            return error(403, "forbidden_origin", "Requests from another site are not accepted.")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return error(413, "too_large", f"The request body is limited to {MAX_BODY // 1024} KB.")
        raw = await _read_limited(request, MAX_BODY)
        if raw is None:
            return error(413, "too_large", f"The request body is limited to {MAX_BODY // 1024} KB.")
        try:
            body = ChatRequest.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            details = [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                return error(400, "invalid_json", "The request body is not valid JSON.")
            return error(400, "invalid_request", "The request is not a valid chat message.", details=details)

        conversation = body.conversation or new_conversation_id()
        text = body.text if body.text and body.text.strip() else None
        msg = Incoming(channel="web", conversation_id=conversation, text=text, choice=body.choice, directed=True)
        turn = await self.runtime.handle(msg)
        payload = render_turn(turn)
        try:
            await self._append(conversation, text, body.choice, payload["replies"])
        except (StoreUnavailable, TimeoutError):
            # The turn itself is saved; only the page's copy of it is not. Answer anyway.
            log.warning("web transcript not saved", extra={"conversation": conversation})
        return web.json_response(payload)

    async def get_chat(self, request: web.Request) -> web.Response:
        conversation = request.match_info["conversation"]
        if not _ID.match(conversation):
            return error(400, "invalid_conversation", "That is not a web chat conversation id.")
        raw = await self.runtime.store.load(TRANSCRIPT_PREFIX + conversation)
        if raw is None:
            return error(404, "not_found", "No such conversation (it may have expired).")
        state = await self.runtime.engine.state(conversation)
        return web.json_response(
            {"conversation": conversation, "entries": json.loads(raw), "phase": state.phase if state else None}
        )

    async def _append(self, conversation: str, text: str | None, choice: str | None, replies: list[dict]) -> None:
        key = TRANSCRIPT_PREFIX + conversation
        store = self.runtime.store
        async with store.lock(key):
            raw = await store.load(key)
            entries: list[dict] = json.loads(raw) if raw else []
            if text is not None:
                entries.append({"who": "admin", "text": scrub_secrets(text)})
            elif choice is not None:
                entries.append({"who": "admin", "text": _label(entries, choice), "choice": choice})
            entries.extend({"who": "bot", "reply": r} for r in replies)
            del entries[:-TRANSCRIPT_KEEP]
            await store.save(key, json.dumps(entries, ensure_ascii=False), self.runtime.settings.conversation_ttl)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` (chunked bodies have no Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _label(entries: list[dict], choice: str) -> str:
    """The button text the admin clicked, found in the latest bot replies that offered it."""
    for entry in reversed(entries):
        for c in (entry.get("reply") or {}).get("choices") or []:
            if c.get("id") == choice:
                return str(c.get("label") or choice)
    if choice == "cmd:restart":
        return "Start over"
    return choice


def mount(app: web.Application, runtime: "Runtime") -> WebChat:
    chat = WebChat(runtime)
    app.router.add_get("/", chat.index)
    app.router.add_get("/static/{name}", chat.asset)
    app.router.add_post("/api/chat", chat.post_chat)
    app.router.add_get("/api/chat/{conversation}", chat.get_chat)
    return chat
