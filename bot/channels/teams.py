"""Microsoft Teams channel: Bot Framework activities at `/api/messages` <-> the channel-neutral engine.

This is the only module that imports botbuilder. botbuilder-python is archived upstream (support ended
2025-12-31; the successor is the Microsoft 365 Agents SDK), so everything SDK-specific stays in here:
the renderer (`bot/render/cards.py`) produces plain Adaptive Card dicts, and the engine, store and server
know nothing about Bot Framework. Moving to another SDK means rewriting this file only.

What happens to an activity:
1. `TeamsEndpoint.handle` checks the HTTP shape (415 wrong content type, 400 not JSON / not an activity),
   authenticates the bearer token with `ConfigurationBotFrameworkAuthentication` (401 on any failure,
   never 500) and hands it to the `CloudAdapter`.
2. `TeamsBot.on_turn` drops redelivered activities (`store.claim` on the activity id) and remembers the
   conversation reference of any Teams channel it hears from (for the escalation hand-off).
3. Messages: personal chats always get an answer; group chats and channels only when the bot is
   @mentioned (or for a click on one of its cards). The mention and a leading `scim-help` command word are
   stripped; a card click arrives as a message with empty text and `activity.value`, which carries the
   choice id. Clicks are de-duplicated per (conversation, card, choice) and the clicked card is updated
   to show the chosen answer instead of its buttons.
4. The engine's replies go out as Adaptive Cards (plain text on channels without cards). When a
   conversation ends in a support ticket and `SCIM_HELP_TEAMS_ESCALATION_CHANNEL` is set, the ticket is
   also posted proactively to that channel with a link back.

Conversation ids are `teams:{tenant}:{conversation.id}`; a channel reply chain's id keeps its
`;messageid=` suffix, so every thread is its own conversation. Logs carry pseudonymised ids only: no
message text, names, UPNs or tokens.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import re
import traceback
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from aiohttp import web
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
)
from msrest.universal_http.requests import ClientRetryPolicy

from bot.admission import Gate, register
from bot.events import Incoming, Reply, Turn
from bot.redact import pseudonymise
from bot.render import cards
from bot.runtime import Runtime
from bot.settings import Settings
from bot.store.base import StoreUnavailable
from bot.text import valid_unicode_json

log = logging.getLogger("scim_help.teams")

# botbuilder builds a ConnectorClient and a TokenApiClient for every activity; each builds an msrest
# ClientRetryPolicy, whose constructor tests 999 status codes for membership in a 500-item *list*: 6 ms of
# CPU per client, most of the cost of a Teams turn. The same codes as a frozenset: 0.1 ms.
ClientRetryPolicy.safe_codes = frozenset(ClientRetryPolicy.safe_codes)  # type: ignore[assignment]

ROUTE = "/api/messages"
REF_KIND = "teams-ref"
DEDUPE_TTL = 6 * 3600  # Bot Framework redelivers within minutes; keep the ids a while longer
WELCOME_TTL = 600  # Teams sends both installationUpdate and conversationUpdate on install: greet once
# Activities being parsed, authenticated and answered at once per process; the rest wait unparsed.
MAX_ACTIVITIES_IN_PROGRESS = 16
# Activities that may wait for one of those places. Waiting still costs an open request (~18 KB): beyond
# this the activity is refused with a 503 and Teams delivers it again later (it also does so by itself when
# a bot takes over 15 s). 1000 is 4–10 s of work for one worker, inside that window.
MAX_ACTIVITIES_WAITING = 1000
CARD_CHANNELS = {"msteams", "emulator", "webchat", "directline"}
UPDATE_CHANNELS = {"msteams", "emulator"}  # channels where the bot can edit a card it sent

_AT = re.compile(r"<at\b[^>]*>(.*?)</at>", re.I | re.S)
_HTML_HINT = re.compile(r"</?(?:p|div|span|br|b|i|strong|em|at)\b", re.I)
_TAG = re.compile(r"<[^>]+>")
_COMMAND = re.compile(r"^/?scim[\s_-]?help\b[\s:,.-]*", re.I)


# ---- configuration -----------------------------------------------------------------------------------


@dataclass
class BotConfig:
    """The configuration object botbuilder's `ConfigurationBotFrameworkAuthentication` reads."""

    APP_ID: str
    APP_PASSWORD: str
    APP_TYPE: str
    APP_TENANTID: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "BotConfig":
        password = settings.microsoft_app_password.get_secret_value() if settings.microsoft_app_password else ""
        return cls(
            APP_ID=settings.microsoft_app_id or "",
            APP_PASSWORD=password,
            APP_TYPE=settings.microsoft_app_type,
            APP_TENANTID=settings.microsoft_app_tenant_id or "",
        )


def escalation_channel_id(value: str | None) -> str | None:
    """`SCIM_HELP_TEAMS_ESCALATION_CHANNEL` as a channel conversation id. Accepts the id itself
    (`19:…@thread.tacv2`) or a channel link copied from Teams ("Get link to channel")."""
    if not value or not value.strip():
        return None
    value = value.strip()
    m = re.search(r"/l/channel/([^/?#]+)", value)
    if m:
        value = unquote(m.group(1))
    return value.split(";", 1)[0]


# ---- activity helpers ----------------------------------------------------------------------------------


def _data(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    if obj is not None and hasattr(obj, "serialize"):
        try:
            return obj.serialize()
        except Exception:  # pragma: no cover - defensive
            return {}
    return {}


def tenant_of(activity: Activity) -> str:
    conv = activity.conversation
    tenant = getattr(conv, "tenant_id", None) if conv else None
    if not tenant and conv is not None:
        # botbuilder maps `tenantID`; Teams sends `tenantId`, which lands in additional_properties.
        tenant = (getattr(conv, "additional_properties", None) or {}).get("tenantId")
    if not tenant:
        tenant = (_data(activity.channel_data).get("tenant") or {}).get("id")
    return tenant or "-"


def conversation_id(activity: Activity) -> str:
    """Our store key for the Teams conversation / channel reply chain the activity belongs to."""
    return f"teams:{tenant_of(activity)}:{activity.conversation.id}"


def scope_of(activity: Activity) -> str:
    """personal | groupChat | channel (the emulator and web chat count as personal)."""
    kind = getattr(activity.conversation, "conversation_type", None) if activity.conversation else None
    if kind in ("groupChat", "channel"):
        return kind
    if kind is None and _data(activity.channel_data).get("channel"):
        return "channel"
    return "personal"


def _bot_mentions(activity: Activity) -> list[str]:
    """The display texts under which this activity @mentions the bot (empty when it does not)."""
    bot_id = activity.recipient.id if activity.recipient else None
    names: list[str] = []
    for entity in activity.entities or []:
        if (entity.type or "").lower() != "mention":
            continue
        props = dict(getattr(entity, "additional_properties", None) or {})
        if getattr(entity, "mentioned", None) is not None:  # a botbuilder `Mention` built in code
            props.setdefault("mentioned", _data(entity.mentioned))
            props.setdefault("text", getattr(entity, "text", None))
        mentioned = props.get("mentioned") or {}
        if bot_id and mentioned.get("id") == bot_id:
            inner = _AT.search(props.get("text") or "")
            names.append(html.unescape(inner.group(1) if inner else (mentioned.get("name") or "")).strip().lower())
    return names


def mentions_bot(activity: Activity) -> bool:
    return bool(_bot_mentions(activity))


def clean_text(activity: Activity) -> str:
    """The admin's words: without the bot's @mention, Teams' HTML and a leading `scim-help` command."""
    bot_names = set(_bot_mentions(activity))
    if activity.recipient and activity.recipient.name:
        bot_names.add(activity.recipient.name.strip().lower())
    if activity.text and bot_names:
        try:
            TurnContext.remove_recipient_mention(activity)
        except Exception:  # botbuilder's regex trips over some display names; the fallback below copes
            pass
    text = activity.text or ""

    def at(m: re.Match[str]) -> str:
        inner = html.unescape(_TAG.sub("", m.group(1))).strip()
        # Any leftover mention of the bot goes; other people's mentions keep their name as text.
        return " " if not inner or inner.lower() in bot_names else f" {inner} "

    text = _AT.sub(at, text)
    if _HTML_HINT.search(text):
        text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
        text = html.unescape(_TAG.sub("", text))
    text = text.replace("\xa0", " ").strip()
    m = _COMMAND.match(text)
    if m:
        text = text[m.end() :]
    return text.strip()


def _user_id(activity: Activity) -> str | None:
    user = activity.from_property
    if user is None:
        return None
    return getattr(user, "aad_object_id", None) or user.id


def conversation_link(activity: Activity) -> tuple[str, str | None]:
    """(where the conversation is, in words; a Teams deep link to it when one can be derived)."""
    conv = activity.conversation
    data = _data(activity.channel_data)
    tenant = tenant_of(activity)
    scope = scope_of(activity)
    if scope == "channel":
        channel = data.get("channel") or {}
        team = data.get("team") or {}
        base, _, rest = conv.id.partition(";")
        where = "a Teams channel"
        if channel.get("name") or team.get("name"):
            where = " › ".join(x for x in (team.get("name"), channel.get("name")) if x)
        m = re.match(r"messageid=(\d+)", rest)
        if not m:
            return where, None
        params = {"tenantId": tenant, "parentMessageId": m.group(1)}
        if team.get("aadGroupId"):
            params["groupId"] = team["aadGroupId"]
        if team.get("name"):
            params["teamName"] = team["name"]
        if channel.get("name"):
            params["channelName"] = channel["name"]
        params["createdTime"] = m.group(1)
        url = f"https://teams.microsoft.com/l/message/{quote(base, safe='')}/{m.group(1)}?{urlencode(params)}"
        return where, url
    if scope == "groupChat":
        where = f"the group chat “{conv.name}”" if conv.name else "a group chat"
        if conv.id.startswith("19:"):
            return where, f"https://teams.microsoft.com/l/chat/{quote(conv.id, safe='')}/conversations?{urlencode({'tenantId': tenant})}"
        return where, None
    # A personal chat with the bot is visible to the admin only: there is nothing to link to.
    return f"a personal chat with the bot (conversation {pseudonymise(conversation_id(activity))})", None


def _card_activities(attachments: list[dict]) -> list[Activity]:
    return [
        Activity(
            type=ActivityTypes.message,
            attachments=[Attachment(content_type=a["contentType"], content=a["content"])],
            summary=a["content"].get("fallbackText") or None,
        )
        for a in attachments
    ]


def _log_extra(activity: Activity, **more: Any) -> dict[str, Any]:
    conv = activity.conversation.id if activity.conversation else None
    return {
        "channel": "teams",
        "bf_channel": activity.channel_id,
        "activity_type": activity.type,
        "conversation": pseudonymise(conv),
        **more,
    }


# ---- the bot -------------------------------------------------------------------------------------------


class TeamsBot(ActivityHandler):
    def __init__(self, runtime: Runtime, app_id: str = "") -> None:
        super().__init__()
        self.runtime = runtime
        self.store = runtime.store
        self.app_id = app_id
        self.ttl = runtime.settings.conversation_ttl
        self.escalation_channel = escalation_channel_id(runtime.settings.teams_escalation_channel)
        self._refs_written: dict[str, str] = {}

    @property
    def support_url(self) -> str | None:
        return self.runtime.engine.support_url

    # -- every activity ----------------------------------------------------------------------------

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.id and activity.conversation and activity.conversation.id:
            key = f"teams-activity:{activity.channel_id}:{activity.conversation.id}:{activity.id}"
            if not await self.store.claim(key, DEDUPE_TTL):
                log.info("teams: duplicate activity ignored", extra=_log_extra(activity))
                return
        await self._remember_channel(activity)
        await super().on_turn(turn_context)

    async def _remember_channel(self, activity: Activity) -> None:
        """Keep a reference to every Teams channel the bot hears from, so it can post there later."""
        if activity.channel_id != "msteams" or not activity.conversation or scope_of(activity) != "channel":
            return
        base = activity.conversation.id.split(";", 1)[0]
        ref = TurnContext.get_conversation_reference(activity)
        ref.activity_id = None
        ref.user = None
        ref.conversation = ConversationAccount(
            id=base,
            conversation_type="channel",
            is_group=True,
            tenant_id=tenant_of(activity) if tenant_of(activity) != "-" else None,
        )
        data = json.dumps(ref.serialize(), sort_keys=True)
        if self._refs_written.get(base) == data:
            return
        await self.store.put_record(REF_KIND, base, data)
        self._refs_written[base] = data
        log.info("teams: stored channel reference", extra=_log_extra(activity, ref=pseudonymise(base)))

    # -- welcome ---------------------------------------------------------------------------------------

    async def on_members_added_activity(self, members_added: list[ChannelAccount], turn_context: TurnContext) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(m.id == bot_id for m in members_added or []):
            await self._welcome(turn_context)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._welcome(turn_context)

    async def _welcome(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if not activity.conversation or not activity.conversation.id:
            return
        cid = conversation_id(activity)
        if not await self.store.claim(f"teams-welcome:{cid}", WELCOME_TTL):
            return
        turn = await self.runtime.handle(Incoming(channel="teams", conversation_id=cid, user_id=_user_id(activity)))
        await self._send(turn_context, cid, turn.replies)

    # -- messages --------------------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if not activity.conversation or not activity.conversation.id:
            return
        choice = cards.choice_from_value(activity.value)
        text: str | None = None
        if choice is None:
            if activity.value is not None and not (activity.text or "").strip():
                return  # a submit from some other card: not ours
            if scope_of(activity) != "personal" and not mentions_bot(activity):
                return  # group chats and channels: only when addressed
            text = clean_text(activity)
        cid = conversation_id(activity)
        if choice is not None:
            click = f"teams-click:{cid}:{activity.reply_to_id or '-'}:{choice}"
            if not await self.store.claim(click, self.ttl):
                log.info("teams: repeated click ignored", extra=_log_extra(activity))
                return
            await self._mark_answered(turn_context, cid, choice)
        turn = await self.runtime.handle(
            Incoming(channel="teams", conversation_id=cid, user_id=_user_id(activity), text=text, choice=choice)
        )
        if turn.silent:
            return
        replies = list(turn.replies)
        note = await self._maybe_escalate(turn_context, cid, turn)
        if note is not None:
            at = next((i + 1 for i, r in enumerate(replies) if r.kind == "ticket"), len(replies))
            replies.insert(at, note)
        await self._send(turn_context, cid, replies)

    async def _mark_answered(self, turn_context: TurnContext, cid: str, choice: str) -> None:
        """Replace the clicked buttons with the chosen answer, so the card cannot be answered twice."""
        activity = turn_context.activity
        if not activity.reply_to_id or activity.channel_id not in UPDATE_CHANNELS:
            return
        key = f"teams-card:{cid}:{activity.reply_to_id}"
        try:
            raw = await self.store.load(key)
            if not raw:
                return
            updated = cards.mark_answered(json.loads(raw), choice)
            if updated is None:
                return
            update = _card_activities([cards.attachment(updated)])[0]
            update.id = activity.reply_to_id
            await turn_context.update_activity(update)
            await self.store.save(key, json.dumps(updated), self.ttl)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.warning("teams: could not update the clicked card (%s)", type(exc).__name__, extra=_log_extra(activity))

    async def _send(self, turn_context: TurnContext, cid: str, replies: list[Reply]) -> None:
        if not replies:
            return
        activity = turn_context.activity
        if activity.channel_id in CARD_CHANNELS:
            attachments = cards.render_replies(replies, support_url=self.support_url)
            responses = await turn_context.send_activities(_card_activities(attachments))
            if activity.channel_id in UPDATE_CHANNELS:
                for att, resp in zip(attachments, responses or []):
                    if resp is not None and resp.id and cards.has_choices(att["content"]):
                        await self.store.save(f"teams-card:{cid}:{resp.id}", json.dumps(att["content"]), self.ttl)
        else:
            texts = cards.render_texts(replies, support_url=self.support_url)
            await turn_context.send_activities(
                [Activity(type=ActivityTypes.message, text=t, text_format="plain") for t in texts]
            )

    # -- escalation --------------------------------------------------------------------------------------

    async def _maybe_escalate(self, turn_context: TurnContext, cid: str, turn: Turn) -> Reply | None:
        """Post a finished ticket to the escalation channel once per episode; returns a note for the admin."""
        if not self.escalation_channel or turn.phase != "closed":
            return None
        ticket_reply = next((r for r in turn.replies if r.kind == "ticket" and r.ticket is not None), None)
        if ticket_reply is None:
            return None
        state = await self.runtime.engine.state(cid)
        if state is None or state.outcome != "escalated":
            return None
        if not await self.store.claim(f"teams-escalation:{cid}:{state.episode}", self.ttl):
            return None
        activity = turn_context.activity
        raw = await self.store.get_record(REF_KIND, self.escalation_channel)
        if not raw:
            log.warning(
                "teams: cannot hand the ticket to the escalation channel: no conversation reference stored for it "
                "yet (add the app to that channel's team and @mention the bot there once)",
                extra=_log_extra(activity, escalation_channel=pseudonymise(self.escalation_channel)),
            )
            return Reply(
                kind="info",
                text=(
                    "I couldn't pass this ticket to the support team's Teams channel: I haven't been added to that "
                    "channel yet. Please open the case yourself with the ticket above, and ask your Teams admin to "
                    "add scim-help to the escalation channel (and @mention it there once)."
                ),
            )
        where, link = conversation_link(activity)
        posted = cards.render_escalation(
            ticket_reply,
            support_url=self.support_url,
            raised_by=activity.from_property.name if activity.from_property else None,
            where=where,
            link=link,
        )
        try:
            reference = ConversationReference.deserialize(json.loads(raw))

            async def post(proactive: TurnContext) -> None:
                # A new post in the channel, not a reply to the synthetic continuation activity.
                proactive.activity.id = None
                await proactive.send_activities(_card_activities(posted))

            await turn_context.adapter.continue_conversation(reference, post, self.app_id)
        except Exception as exc:
            log.error(
                "teams: posting the ticket to the escalation channel failed (%s)",
                type(exc).__name__,
                extra=_log_extra(activity),
            )
            return Reply(
                kind="info",
                text=(
                    "I couldn't post this ticket to the support team's Teams channel just now. Please open the "
                    "case yourself with the ticket above."
                ),
            )
        log.info("teams: ticket posted to the escalation channel", extra=_log_extra(activity))
        return Reply(kind="info", text="I've also posted this ticket to the support team's channel in Teams.")


# ---- HTTP endpoint ----------------------------------------------------------------------------------------


class TeamsEndpoint:
    """`POST /api/messages`: HTTP checks, authentication, then botbuilder's CloudAdapter and our bot."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = BotConfig.from_settings(runtime.settings)
        try:
            self.auth = ConfigurationBotFrameworkAuthentication(self.config)
        except Exception as exc:
            raise RuntimeError(
                f"Teams: invalid Bot Framework configuration ({exc}); check MicrosoftAppId, MicrosoftAppPassword, "
                "MicrosoftAppType and MicrosoftAppTenantId"
            ) from None
        self.adapter = CloudAdapter(self.auth)
        self.adapter.on_turn_error = self._on_turn_error
        self.bot = TeamsBot(runtime, app_id=self.config.APP_ID)
        self.admission = Gate("teams", MAX_ACTIVITIES_IN_PROGRESS, max_waiting=MAX_ACTIVITIES_WAITING)

    @property
    def authenticated(self) -> bool:
        return bool(self.config.APP_ID)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Bot Framework holds each request open until its turn is done. Above capacity, thousands of
        # activities deserialised, authenticated and half-way through botbuilder at once took ~100 KB each
        # (RSS 300–600 MB per process in the overload benchmark); waiting here, before the body is even
        # parsed, a request costs a coroutine. They are answered in arrival order; beyond the waiting bound
        # they are refused, for Teams to deliver again (bot/admission.py).
        release = await self.admission.enter()
        if release is None:
            return web.json_response({"error": "busy, retry later"}, status=503, headers={"Retry-After": "1"})
        try:
            return await self._handle(request)
        finally:
            release()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json" and not request.content_type.endswith("+json"):
            return web.json_response({"error": "expected application/json"}, status=415)
        try:
            text = await request.text()
            body = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" nested too deep
            return web.json_response({"error": "body is not valid JSON"}, status=400)
        if "\\ud" in text or "\\uD" in text:
            # An escaped surrogate; a lone one (valid JSON) in an id would fail every store key built from it.
            body = valid_unicode_json(body)
        if not isinstance(body, dict):
            return web.json_response({"error": "body is not an activity"}, status=400)
        try:
            activity = Activity().deserialize(body)
        except Exception:
            return web.json_response({"error": "body is not an activity"}, status=400)
        if not activity.type:
            return web.json_response({"error": "activity has no type"}, status=400)

        auth_header = request.headers.get("Authorization", "")
        try:
            auth_result = await self.auth.authenticate_request(activity, auth_header)
        except Exception as exc:  # PermissionError, jwt errors, metadata fetch failures: all mean "not proven"
            log.warning(
                "teams: request refused: not authenticated (%s)",
                type(exc).__name__,
                extra={"channel": "teams", "bf_channel": activity.channel_id, "has_auth_header": bool(auth_header)},
            )
            return web.json_response({"error": "unauthorized"}, status=401)

        if not activity.conversation or not activity.conversation.id or not activity.service_url:
            return web.json_response({"error": "activity lacks conversation or serviceUrl"}, status=400)
        if not str(activity.service_url).startswith(("http://", "https://")):
            return web.json_response({"error": "serviceUrl must be http(s)"}, status=400)
        if not self.authenticated and not _is_loopback_url(str(activity.service_url)):
            # Unauthenticated mode exists for the Emulator on this machine; anywhere else it would let
            # anyone make the bot post to a URL of their choosing.
            log.warning("teams: refused a non-local serviceUrl while running without MicrosoftAppId", extra=_log_extra(activity))
            return web.json_response(
                {"error": "without MicrosoftAppId only a local serviceUrl (Bot Framework Emulator) is accepted"},
                status=403,
            )

        try:
            invoke = await self.adapter.process_activity(auth_result, activity, self.bot.on_turn)
        except Exception as exc:
            log.error(
                "teams: activity failed (%s)\n%s",
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
                extra=_log_extra(activity),
            )
            return web.json_response({"error": "internal error"}, status=500)
        if invoke is not None:
            return web.json_response(_json_body(invoke.body), status=invoke.status or 200)
        return web.Response(status=201)

    async def _on_turn_error(self, turn_context: TurnContext, error: Exception) -> None:
        activity = turn_context.activity
        # The exception's message may quote what the admin wrote: log its type and frames only.
        log.error(
            "teams: turn failed (%s)\n%s",
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
            extra=_log_extra(activity),
        )
        if activity.type != ActivityTypes.message:
            return
        if isinstance(error, StoreUnavailable):
            text = "I can't reach my conversation storage right now — please try again in a minute."
        else:
            text = "Sorry — something went wrong on my side. Please try again, or say **start over**."
        try:
            await turn_context.send_activity(Activity(type=ActivityTypes.message, text=text))
        except Exception as exc:
            log.error("teams: could not send the error notice (%s)", type(exc).__name__, extra=_log_extra(activity))


def _is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json_body(body: Any) -> Any:
    if body is None or isinstance(body, (dict, list, str, int, float, bool)):
        return body
    if hasattr(body, "serialize"):
        return body.serialize()
    return None


TEAMS_ENDPOINT: web.AppKey[TeamsEndpoint] = web.AppKey("scim_help_teams", TeamsEndpoint)


def mount(app: web.Application, runtime: Runtime) -> None:
    """Add `POST /api/messages` to the shared aiohttp app. Without MicrosoftAppId the endpoint accepts
    unauthenticated requests (Bot Framework Emulator) and a WARNING says so."""
    endpoint = TeamsEndpoint(runtime)
    app[TEAMS_ENDPOINT] = endpoint
    register(app, endpoint.admission)
    app.router.add_post(ROUTE, endpoint.handle)
    if not endpoint.authenticated:
        log.warning(
            "Teams endpoint %s is running WITHOUT authentication because MicrosoftAppId is not set: anyone who "
            "can reach it can talk to the bot, so only replies to a local serviceUrl are accepted. Use this only "
            "locally with the Bot Framework Emulator; set MicrosoftAppId and MicrosoftAppPassword (Azure Bot "
            "registration) before exposing the server.",
            ROUTE,
        )
    else:
        log.info("Teams endpoint %s enabled (%s app)", ROUTE, endpoint.config.APP_TYPE)
    if runtime.settings.teams_escalation_channel and not escalation_channel_id(runtime.settings.teams_escalation_channel):
        log.warning("SCIM_HELP_TEAMS_ESCALATION_CHANNEL is set but holds no channel id")
