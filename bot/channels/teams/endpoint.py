"""`POST /api/messages`: from an HTTP request to an authenticated activity for the bot, in this order.

1. Per client, at most `intake.PER_CLIENT_UNAUTHENTICATED` requests are read and verified at once (429
   beyond); the body is read in full within `intake.BODY_TIMEOUT` and `intake.MAX_BODY_BYTES`.
2. Shape: 415 not JSON, 400 not an activity.
3. Authentication, with MicrosoftAppId: a Bot Framework token (`auth`), 401 for every failure, never 500.
   Without it, nothing is authenticated (Bot Framework Emulator, Agents Playground) and the client's
   requests stay bounded per client while they are answered as well.
4. `serviceUrl` (`service_url`): 403 unless it is loopback (no app id) or the token's own (app id).
5. Admission: at most `MAX_ACTIVITIES_IN_PROGRESS` activities answered at once per process, up to
   `MAX_ACTIVITIES_WAITING` more wait in arrival order, beyond that 503 (Teams delivers it again).
   Only requests that passed 1–4 ever take or wait for a place.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bot.admission import Gate, register
from bot.channels.teams import activity as act
from bot.channels.teams import auth, intake, service_url
from bot.channels.teams.bot import Delivery, TeamsBot
from bot.channels.teams.connector import Connector
from bot.service import Channel, Conversations
from bot.text import valid_unicode_json

log = logging.getLogger("scim_help.teams")

ROUTE = "/api/messages"
# Activities being answered at once per process; the rest wait, already read and verified.
MAX_ACTIVITIES_IN_PROGRESS = 16
# Activities that may wait for one of those places. Waiting still costs an open request (~18 KB): beyond
# this the activity is refused with a 503 and Teams delivers it again later (it also does so by itself when
# a bot takes over 15 s). 500 is 2–5 s of work for one worker, well inside that window (1000 held ~9 MB
# more per process at the peak).
MAX_ACTIVITIES_WAITING = 500


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _parse(body: bytes) -> dict | web.Response:
    try:
        text = body.decode("utf-8")
        parsed = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" nested too deep
        return _error(400, "body is not valid JSON")
    if "\\ud" in text or "\\uD" in text:
        # An escaped surrogate; a lone one (valid JSON) in an id would fail every store key built from it.
        parsed = valid_unicode_json(parsed)
    if not isinstance(parsed, dict):
        return _error(400, "body is not an activity")
    if not isinstance(parsed.get("type"), str) or not parsed["type"]:
        return _error(400, "activity has no type")
    return parsed


class TeamsEndpoint:
    """The Teams channel: `POST /api/messages` on the shared aiohttp app."""

    name = "teams"

    def __init__(self, conversations: Conversations) -> None:
        settings = conversations.settings
        self.settings = settings
        self.app_id = settings.microsoft_app_id or ""
        self.app_type = settings.microsoft_app_type
        self.keys = auth.SigningKeys(auth.OPENID_METADATA_URL) if self.app_id else None
        self.auth = auth.BotFrameworkAuth(self.app_id, self.keys) if self.keys is not None else None
        self.connector = Connector(settings)
        self.bot = TeamsBot(conversations, self.connector, act.escalation_channel_id(settings.teams_escalation_channel))
        self.admission = Gate("teams", MAX_ACTIVITIES_IN_PROGRESS, max_waiting=MAX_ACTIVITIES_WAITING)
        self.reading = intake.PerClient(intake.PER_CLIENT_UNAUTHENTICATED)
        self.client_gates = intake.ClientGates(intake.PER_CLIENT_UNAUTHENTICATED, MAX_ACTIVITIES_WAITING)

    @property
    def authenticated(self) -> bool:
        return bool(self.app_id)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        client = intake.client_of(request)
        if not self.reading.enter(client):
            return _error(429, "too many requests from this client", **{"Retry-After": "1"})
        try:
            prepared = await self._prepare(request)
        finally:
            self.reading.leave(client)
        if isinstance(prepared, web.StreamResponse):
            return prepared
        release_client = None
        if not self.authenticated:
            release_client = await self.client_gates.enter(client)
            if release_client is None:
                return _error(503, "busy, retry later", **{"Retry-After": "1"})
        try:
            return await self._admit(prepared)
        finally:
            if release_client is not None:
                release_client()

    async def _admit(self, delivery: Delivery) -> web.StreamResponse:
        release = await self.admission.enter()
        if release is None:
            return _error(503, "busy, retry later", **{"Retry-After": "1"})
        try:
            status = await self.bot.on_activity(delivery)
        finally:
            release()
        return web.Response(status=status)

    async def _prepare(self, request: web.Request) -> Delivery | web.Response:
        """Steps 1–4: the activity and where to reply, or the response refusing it."""
        if request.content_type != "application/json" and not request.content_type.endswith("+json"):
            return _error(415, "expected application/json")
        try:
            body = await intake.read_body(request)
        except intake.BodyRefused as exc:
            return _error(exc.status, exc.message)
        activity = _parse(body)
        if isinstance(activity, web.Response):
            return activity
        token_service_url = None
        if self.auth is not None:
            try:
                claims = await self.auth.verify(request.headers.get("Authorization", ""), activity.get("channelId"))
            except auth.Unauthorized as exc:
                log.warning(
                    "teams: request refused: not authenticated (%s)",
                    exc,
                    extra={"channel": "teams", "has_auth_header": "Authorization" in request.headers},
                )
                return _error(401, "unauthorized")
            token_service_url = claims.get("serviceurl") if isinstance(claims.get("serviceurl"), str) else None
        if not act.raw_conversation_id(activity) or "serviceUrl" not in activity:
            return _error(400, "activity lacks conversation or serviceUrl")
        try:
            url = service_url.allowed(activity["serviceUrl"], token_service_url=token_service_url, authenticated=self.authenticated)
        except service_url.ServiceUrlRefused as exc:
            log.warning("teams: refused the activity's serviceUrl (%s)", exc, extra=act.log_extra(activity))
            return _error(exc.status, f"serviceUrl refused: {exc}")
        return Delivery(activity, url)

    # -- the channel ----------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        """Add `POST /api/messages`. Without MicrosoftAppId the endpoint accepts unauthenticated requests
        (Bot Framework Emulator, Agents Playground) and a WARNING says so."""
        app[TEAMS_ENDPOINT] = self
        register(app, self.admission)
        app.router.add_post(ROUTE, self.handle)
        if not self.authenticated:
            log.warning(
                "Teams endpoint %s is running WITHOUT authentication because MicrosoftAppId is not set: anyone who "
                "can reach it can talk to the bot, so only replies to a loopback serviceUrl are accepted. Use this "
                "only locally with the Bot Framework Emulator or the Agents Playground; set MicrosoftAppId and "
                "MicrosoftAppPassword (Azure Bot registration) before exposing the server.",
                ROUTE,
            )
        else:
            log.info("Teams endpoint %s enabled (%s app)", ROUTE, self.app_type)
        if self.settings.teams_escalation_channel and not act.escalation_channel_id(self.settings.teams_escalation_channel):
            log.warning("SCIM_HELP_TEAMS_ESCALATION_CHANNEL is set but holds no channel id")

    async def start(self) -> None:
        if self.keys is not None:
            self.keys.start()

    async def stop(self) -> None:
        pass  # activities still being answered keep their connector until close

    async def close(self) -> None:
        if self.keys is not None:
            await self.keys.close()
        await self.connector.close()


TEAMS_ENDPOINT: web.AppKey[TeamsEndpoint] = web.AppKey("scim_help_teams", TeamsEndpoint)


def channel(conversations: Conversations) -> Channel:
    return TeamsEndpoint(conversations)
