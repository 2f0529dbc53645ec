"""The embedded web chat: a static page (bot/web/) and a small JSON API over the same engine.

    GET  /                  the chat page (index.html; app.js and style.css under /static/)
    POST /api/chat          {"conversation": "web:…"|null, "text": "…"} or {…, "choice": "<id>"}
                            -> {"conversation", "replies": [...], "phase", "symptom", "cause", "asking", …}
    GET  /api/chat          with header `X-Conversation: web:…` -> {"conversation", "entries", "phase"}:
                            the transcript, to restore the page on reload

Conversation ids are issued by the server only: `web:` + a random nonce and an HMAC of it under the
server key (bot/keys.py), bound to the signed-in identity when there is one. An id the server did not
issue — or issued to somebody else — is refused (404 `unknown_conversation`). The id is the browser's
only key to its conversation, so it is never logged and never in a URL: the store, the engine and the
logs know the conversation by a keyed hash of the nonce (`web:<24 hex>`), which cannot be turned back
into the id. The browser keeps the id in localStorage.

Who may talk to it: on a loopback address, anyone on this machine. Elsewhere the chat is off unless a
reverse proxy that signs users in sets SCIM_HELP_WEB_IDENTITY_HEADER (oauth2-proxy: X-Forwarded-Email) —
requests without that header are refused (401) — or SCIM_HELP_WEB_CHAT=true switches it on for anyone.
Each client (its identity, else its address) may start SCIM_HELP_WEB_NEW_PER_MINUTE conversations and
send SCIM_HELP_WEB_TURNS_PER_MINUTE messages a minute (429 with Retry-After beyond), and a process keeps
at most SCIM_HELP_WEB_MAX_CONVERSATIONS live web conversations (503 beyond).

Cross-site protection: POSTs must be `Content-Type: application/json` (a cross-site form or no-cors fetch
cannot send that without a CORS preflight, which this server never grants) and, when the browser sends an
`Origin`, it must be this server's own origin or one listed in SCIM_HELP_ALLOWED_ORIGINS; the restore
request needs a custom header, which no cross-site page can send.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
import math
import re
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.events import Incoming
from bot.keys import Keyed, load_key
from bot.ratelimit import LiveSet, RateLimiter
from bot.redact import mask_upns, scrub_secrets
from bot.render.web import render_turn
from bot.service import Channel, Conversations, StoreUnavailable

log = logging.getLogger("scim_help.web")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MAX_BODY = 16 * 1024
MAX_TEXT = 4000
# Side data (bot/service.py): the page's copy of each conversation, what it shows again on reload.
TRANSCRIPTS = "webchat"
TRANSCRIPT_KEEP = 400
ID_PATTERN = r"^web:[A-Za-z0-9_-]{16,64}$"
ID_HEADER = "X-Conversation"
_ID = re.compile(ID_PATTERN)
_NONCE, _MAC = 16, 12

STATIC = {"app.js": "application/javascript", "style.css": "text/css"}
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    conversation: str | None = Field(None, pattern=ID_PATTERN)
    text: str | None = Field(None, max_length=MAX_TEXT)
    choice: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_of(self) -> ChatRequest:
        if self.text is not None and self.choice is not None:
            raise ValueError("send either text or choice, not both")
        return self


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status, headers=headers)


class WebIds:
    """Conversation ids the server issues and recognises; the keyed hash the rest of the system uses."""

    def __init__(self, keyed: Keyed) -> None:
        self.keyed = keyed

    def issue(self, identity: str | None) -> tuple[str, str]:
        """(the id for the browser, the conversation id for the store and logs)."""
        nonce = secrets.token_bytes(_NONCE)
        mac = self.keyed.digest("web-id", nonce, identity or "")[:_MAC]
        return "web:" + base64.urlsafe_b64encode(nonce + mac).decode().rstrip("="), self._internal(nonce)

    def verify(self, token: str | None, identity: str | None) -> str | None:
        """The conversation id for an id this server issued to `identity`; None for any other."""
        if not token or not _ID.match(token):
            return None
        body = token[4:]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE + _MAC:
            return None
        nonce, mac = raw[:_NONCE], raw[_NONCE:]
        if not hmac.compare_digest(mac, self.keyed.digest("web-id", nonce, identity or "")[:_MAC]):
            return None
        return self._internal(nonce)

    def _internal(self, nonce: bytes) -> str:
        # 96 bits, 24 hex digits: unique enough, and short of what the log filter takes for a token.
        return "web:" + self.keyed.digest("web-conversation", nonce)[:12].hex()


class Clients:
    """Who is asking: the identity a trusted proxy vouches for, and the key budgets are counted under."""

    def __init__(self, header: str | None, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self.header = header
        self.trusted = trusted

    def _trusted_peer(self, address: str | None) -> bool:
        if not self.trusted:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def identity(self, request: web.Request) -> str | None:
        """The signed-in user ("" when the proxy's header is required but missing or untrusted); None
        when no identity header is configured."""
        if self.header is None:
            return None
        if not self._trusted_peer(request.remote):
            return ""
        return request.headers.get(self.header, "").strip()[:320]

    def key(self, request: web.Request, identity: str | None) -> str:
        if identity:
            return "id:" + identity.lower()
        address = request.remote or "?"
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and self.trusted and self._trusted_peer(address):
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            untrusted = [h for h in hops if not self._trusted_peer(h)]
            address = (untrusted or hops or [address])[-1]
        return "ip:" + address


class WebChat:
    """The web chat channel: the page and its JSON API on the shared aiohttp app."""

    name = "web"

    def __init__(self, conversations: Conversations) -> None:
        settings = conversations.settings
        self.conversations = conversations
        self.transcripts = conversations.side(TRANSCRIPTS)
        self.allowed_origins = settings.allowed_origin_set
        self.index_html = (WEB_DIR / "index.html").read_bytes()
        self.static = {name: (WEB_DIR / name).read_bytes() for name in STATIC}
        self.ids = WebIds(load_key(settings))
        self.clients = Clients(settings.web_identity_header, settings.trusted_proxy_networks)
        self.new_budget = RateLimiter(settings.web_new_per_minute)
        self.turn_budget = RateLimiter(settings.web_turns_per_minute)
        self.live = LiveSet(settings.web_max_conversations, settings.conversation_ttl)

    # -- pages -------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.index_html, content_type="text/html", charset="utf-8", headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
        )

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.static:
            raise web.HTTPNotFound()
        return web.Response(body=self.static[name], content_type=STATIC[name], charset="utf-8", headers={"Cache-Control": "no-cache"})

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

    def _who(self, request: web.Request) -> tuple[str | None, str] | web.Response:
        identity = self.clients.identity(request)
        if identity == "":
            return error(401, "unauthenticated", "Sign in through your organisation's portal to use the web chat.")
        return identity, self.clients.key(request, identity)

    @staticmethod
    def _too_many(wait: float, what: str) -> web.Response:
        return error(429, "rate_limited", f"Too many {what} — please wait a few seconds and try again.", headers={"Retry-After": str(max(1, math.ceil(wait)))})

    async def post_chat(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return error(415, "unsupported_media_type", "Send the message as JSON (Content-Type: application/json).")
        if not self._origin_ok(request):
            return error(403, "forbidden_origin", "Requests from another site are not accepted.")
        who = self._who(request)
        if isinstance(who, web.Response):
            return who
        identity, client = who
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        wait = self.turn_budget.take(client)
        if wait:
            return self._too_many(wait, "messages")
        opened = self._open(body.conversation, identity, client)
        if isinstance(opened, web.Response):
            return opened
        token, conversation = opened
        text = body.text if body.text and body.text.strip() else None
        turn = await self.conversations.handle(Incoming(channel="web", conversation_id=conversation, text=text, choice=body.choice, directed=True))
        self.live.touch(conversation)
        payload = render_turn(turn)
        payload["conversation"] = token
        try:
            await self._append(conversation, text, body.choice, payload["replies"])
        except (StoreUnavailable, TimeoutError):
            # The turn itself is saved; only the page's copy of it is not. Answer anyway.
            log.warning("web transcript not saved", extra={"conversation": conversation})
        return web.json_response(payload, headers={"Cache-Control": "no-store"})

    def _open(self, token: str | None, identity: str | None, client: str) -> tuple[str, str] | web.Response:
        """(the browser's id, the conversation id): a new conversation when the browser has none."""
        if token is not None:
            conversation = self.ids.verify(token, identity)
            if conversation is None:
                return error(404, "unknown_conversation", "This conversation is not known here (it may belong to another user, or the server's key changed). Start a new one.")
            return token, conversation
        wait = self.new_budget.take(client)
        if wait:
            return self._too_many(wait, "new conversations")
        if not self.live.has_room():
            log.warning("web chat full: new conversation refused", extra={"live": self.live.cap})
            return error(503, "busy", "The web chat is busy right now. Please try again in a minute.", headers={"Retry-After": "60"})
        return self.ids.issue(identity)

    async def _body(self, request: web.Request) -> ChatRequest | web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return error(413, "too_large", f"The request body is limited to {MAX_BODY // 1024} KB.")
        raw = await _read_limited(request, MAX_BODY)
        if raw is None:
            return error(413, "too_large", f"The request body is limited to {MAX_BODY // 1024} KB.")
        try:
            return ChatRequest.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                return error(400, "invalid_json", "The request body is not valid JSON.")
            details = [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            return error(400, "invalid_request", "The request is not a valid chat message.", details=details)

    async def get_chat(self, request: web.Request) -> web.Response:
        who = self._who(request)
        if isinstance(who, web.Response):
            return who
        identity, client = who
        token = request.headers.get(ID_HEADER, "").strip()
        if not _ID.match(token):
            return error(400, "invalid_conversation", f"Send the conversation id in the {ID_HEADER} header.")
        wait = self.turn_budget.take(client)
        if wait:
            return self._too_many(wait, "requests")
        conversation = self.ids.verify(token, identity)
        raw = await self.transcripts.load(conversation) if conversation else None
        if conversation is None or raw is None:
            return error(404, "not_found", "No such conversation (it may have expired).")
        state = await self.conversations.state(conversation)
        self.live.touch(conversation)
        payload = {"conversation": token, "entries": json.loads(raw), "phase": state.phase if state else None}
        return web.json_response(payload, headers={"Cache-Control": "no-store"})

    async def _append(self, conversation: str, text: str | None, choice: str | None, replies: list[dict[str, Any]]) -> None:
        async with self.transcripts.lock(conversation):
            raw = await self.transcripts.load(conversation)
            entries: list[dict[str, Any]] = json.loads(raw) if raw else []
            if text is not None:
                # What the page shows again on reload: secrets scrubbed, UPNs masked like every stored
                # transcript (they are in the ticket the bot's replies carry).
                entries.append({"who": "admin", "text": mask_upns(scrub_secrets(text))})
            elif choice is not None:
                entries.append({"who": "admin", "text": _label(entries, choice), "choice": choice})
            entries.extend({"who": "bot", "reply": r} for r in replies)
            del entries[:-TRANSCRIPT_KEEP]
            await self.transcripts.save(conversation, json.dumps(entries, ensure_ascii=False))

    # -- the channel ----------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        app[WebChatKey] = self
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.asset)
        app.router.add_post("/api/chat", self.post_chat)
        app.router.add_get("/api/chat", self.get_chat)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def close(self) -> None:
        pass


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


def _label(entries: list[dict[str, Any]], choice: str) -> str:
    """The button text the admin clicked, found in the latest bot replies that offered it."""
    for entry in reversed(entries):
        for c in (entry.get("reply") or {}).get("choices") or []:
            if c.get("id") == choice:
                return str(c.get("label") or choice)
    if choice == "cmd:restart":
        return "Start over"
    return choice


WebChatKey = web.AppKey("scim_help_web_chat", WebChat)


def channel(conversations: Conversations) -> Channel:
    return WebChat(conversations)
