"""The Slack channel put together: `SlackBot`, its HTTP endpoint, Socket Mode, and mounting.

HTTP mode: `POST /slack/events` receives events, the slash command and interactivity. The signature is
checked first (slack_sdk's verifier: signature plus a 5-minute timestamp window) before anything parses
the bytes; the payload's shape next (bot/channels/slack/payload.py); then the request is recorded in the
inbox and only then acknowledged (bot/channels/slack/inbox.py). Processing runs slack-bolt's AsyncApp on
the recorded request, to the end of the listener (`process_before_response=True`: it never answers an
HTTP request itself). Socket Mode records and acknowledges envelopes the same way.
"""

from __future__ import annotations

import json
import logging
import weakref
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.admission import Gate, register
from bot.channels.slack.core import CURRENT_JOB, OUTBOX, Job
from bot.channels.slack.inbox import BACKLOG_WAIT, MAX_BACKLOG, SlackInbox
from bot.channels.slack.listeners import Listeners
from bot.channels.slack.modal import submission_errors
from bot.channels.slack.payload import LAST_RETRY, check_payload, dedupe_key, last_retry
from bot.channels.slack.posting import Outbox, make_client
from bot.runtime import Runtime

log = logging.getLogger("scim_help.slack")

EVENTS_PATH = "/slack/events"
# Library loggers and the least severe level they may log at. At DEBUG, bolt and slack_sdk log whole request
# and response bodies (message text, UPNs), and bolt logs the body of a request whose signature fails at
# INFO. bolt copies its app logger's level to its middleware loggers, so capping "scim_help.slack.bolt" caps
# them all.
LOG_FLOORS = {
    "scim_help.slack.bolt": logging.WARNING,
    "scim_help.slack.sdk": logging.INFO,
    "scim_help.slack.socket": logging.INFO,
    "slack_bolt": logging.WARNING,
    "slack_sdk": logging.INFO,
}


def quiet_library_logs() -> None:
    """Applied once when the channel is mounted or connected (not in a constructor): an explicit level on
    each library logger, so turning the root logger to DEBUG later does not lower it."""
    for name, floor in LOG_FLOORS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.level))


class SlackBot(Listeners):
    def __init__(self, runtime: Runtime, *, socket_mode: bool = False, client: AsyncWebClient | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.store = runtime.store
        self.engine = runtime.engine
        self.client = client or make_client(self.settings)
        self.escalation_channel = self.settings.escalation_channel
        self.portal_label = runtime.bundle.pack.escalation.portal_label
        self._locks = weakref.WeakValueDictionary()
        secret = self.settings.slack_signing_secret.get_secret_value() if self.settings.slack_signing_secret else None
        self._verifier = SignatureVerifier(secret) if (secret and not socket_mode) else None
        self.app = AsyncApp(
            name="scim-help",
            client=self.client,
            signing_secret=secret,
            # Requests are verified (HTTP) before they are recorded; a recorded request may be processed
            # after its timestamp window, so bolt must not check again.
            request_verification_enabled=False,
            # Middleware for features this bot does not use (workflow functions, assistant threads):
            # each one runs on every request (bench/NOTES.md).
            attaching_function_token_enabled=False,
            attaching_conversation_kwargs_enabled=False,
            ignoring_self_assistant_message_events_enabled=False,
            # The request was acknowledged when it was recorded: run each listener to its end.
            process_before_response=True,
            logger=logging.getLogger("scim_help.slack.bolt"),
        )
        self.register(self.app)
        # Acknowledged but unfinished requests of this process.
        self.backlog = Gate("slack", MAX_BACKLOG, wait=BACKLOG_WAIT)
        self.inbox = SlackInbox(self, self.store.inbox("slack"), self.backlog)

    # ---- HTTP ------------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """POST /slack/events. aiohttp's body size limit answers 413; bytes that are not signed by Slack
        are refused (401) before anything parses them, a signed body we cannot read is a 400."""
        raw = await request.read()
        if not self._signed(raw, request.headers):
            log.info("slack request refused: bad or missing signature", extra={"path": request.path})
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            body = parse_body(raw.decode("utf-8"), request.content_type)
            verdict = check_payload(body)
        except (ValueError, RecursionError):  # not UTF-8, not JSON / form, or nested too deep
            verdict = "reject"
        if verdict != "dispatch":
            # Signed, but not a payload we act on: a shape Slack never sends is refused (400), a kind we
            # do not subscribe to is acknowledged so Slack does not retry it.
            log.info("slack request not dispatched", extra={"verdict": verdict})
            return web.json_response({"error": "invalid request"}, status=400) if verdict == "reject" else web.Response(status=200)
        immediate = _immediate_answer(body)
        if immediate is not None:
            return web.json_response(immediate) if immediate else web.Response(status=200)
        payload = {"mode": "http", "ct": request.content_type, "body": raw.decode("utf-8"), "retry": request.headers.get("X-Slack-Retry-Num")}
        outcome = await self.inbox.accept(dedupe_key(body, request.headers), payload, last_chance=last_retry(request.headers))
        if outcome == "busy":
            # Not acknowledged, so Slack delivers it again later (X-Slack-Retry-Num), and it is answered then.
            return web.json_response({"error": "busy, retry later"}, status=503)
        if outcome == "unavailable":
            return web.json_response({"error": "store unavailable, retry later"}, status=503, headers={"Retry-After": "5"})
        return web.Response(status=200)

    def _signed(self, raw: bytes, headers: Any) -> bool:
        # Without a signing secret nothing is accepted over HTTP (Settings refuses to start that way;
        # this guards direct construction).
        if self._verifier is None:
            return False
        try:
            return self._verifier.is_valid(
                body=raw.decode("utf-8"),
                timestamp=headers.get("X-Slack-Request-Timestamp"),
                signature=headers.get("X-Slack-Signature"),
            )
        except (ValueError, TypeError):  # not UTF-8, a timestamp that is not a number
            return False

    # ---- processing ------------------------------------------------------------------------------

    async def process(self, job: Job) -> None:
        """Run one recorded request. A second attempt whose turn was committed posts from the outbox
        instead of running the turn again."""
        if job.recovering:
            raw = await self.store.get_record(OUTBOX, job.entry.id)
            if raw is not None:
                job.outboxed = True
                await self._deliver(Outbox.load(raw), job)
                return
        token = CURRENT_JOB.set(job)
        try:
            await self.app.async_dispatch(_bolt_request(json.loads(job.entry.payload)))
        finally:
            CURRENT_JOB.reset(token)


def _immediate_answer(body: dict[str, Any]) -> dict[str, Any] | None:
    """What is answered at once, without recording: the URL check, the SSL check, and a modal whose fields
    need correcting. {} is an empty 200; None means "record it"."""
    if body.get("type") == "url_verification":
        return {"challenge": body["challenge"]}
    if "ssl_check" in body:
        return {}
    if body.get("type") == "view_submission":
        errors = submission_errors(body)
        if errors:
            return {"response_action": "errors", "errors": errors}
    if body.get("type") == "view_closed":
        return {}
    return None


def _bolt_request(data: dict[str, Any]) -> AsyncBoltRequest:
    headers = {"x-slack-retry-num": str(data["retry"])} if data.get("retry") is not None else {}
    if data.get("mode") == "socket":
        return AsyncBoltRequest(body=data["body"], mode="socket_mode", headers=headers or None)  # type: ignore[arg-type]
    headers["content-type"] = data.get("ct") or "application/json"
    return AsyncBoltRequest(body=data["body"], headers=headers)  # type: ignore[arg-type]


# ---- Socket Mode -----------------------------------------------------------------------------------------


class InboxSocketModeHandler(AsyncSocketModeHandler):
    """bolt's Socket Mode handler, but each envelope is recorded before it is acknowledged and processed
    from the inbox like an HTTP request."""

    def __init__(self, bot: SlackBot, app_token: str) -> None:
        super().__init__(bot.app, app_token=app_token, logger=logging.getLogger("scim_help.slack.socket"), web_client=bot.client)
        self.bot = bot

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        body = req.payload
        verdict = check_payload(body) if isinstance(body, dict) else "reject"
        response = SocketModeResponse(envelope_id=req.envelope_id)
        if verdict == "dispatch":
            immediate = _immediate_answer(body)
            if immediate:
                response = SocketModeResponse(envelope_id=req.envelope_id, payload=immediate)
            elif immediate is None:
                payload = {"mode": "socket", "body": body, "retry": req.retry_attempt}
                last = (req.retry_attempt or 0) >= LAST_RETRY
                outcome = await self.bot.inbox.accept(dedupe_key(body, {}, req.envelope_id), payload, last_chance=last)
                if outcome in ("busy", "unavailable"):
                    return  # not acknowledged: Slack delivers the envelope again
        await client.send_socket_mode_response(response)

    async def close_async(self) -> None:
        await self.bot.inbox.stop(self.bot.settings.shutdown_timeout)
        await super().close_async()


# ---- wiring ------------------------------------------------------------------------------------------

SlackBotKey = web.AppKey("scim_help_slack", SlackBot)
_SESSION_OWNED = web.AppKey("scim_help_slack_session_owned", bool)


def mount(app: web.Application, runtime: Runtime) -> None:
    """Serve Slack's Events API, slash command and interactivity on the shared aiohttp app (HTTP mode).
    All three use the one request URL `/slack/events`."""
    quiet_library_logs()
    bot = SlackBot(runtime)
    app[SlackBotKey] = bot
    register(app, bot.backlog)
    app.router.add_post(EVENTS_PATH, bot.dispatch)

    async def start(app: web.Application) -> None:
        # One keep-alive session for every Web API call: without it slack_sdk opens (and closes) a new
        # HTTP connection per call — about a sixth of the server's CPU per event under load.
        import aiohttp

        if bot.client.session is None:
            bot.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=bot.client.timeout))
            app[_SESSION_OWNED] = True
        bot.inbox.start()  # first sweep at once: entries a killed process left are taken over now

    async def stop(app: web.Application) -> None:
        await bot.inbox.stop(runtime.settings.shutdown_timeout)

    async def close_session(app: web.Application) -> None:
        if app.get(_SESSION_OWNED) and bot.client.session is not None:
            await bot.client.session.close()
            bot.client.session = None

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.on_cleanup.append(close_session)
    log.info("slack mounted", extra={"path": EVENTS_PATH, "helpdesk_channels": len(runtime.settings.slack_channel_ids)})


async def start_socket_mode(runtime: Runtime) -> InboxSocketModeHandler:
    """Connect over Socket Mode (no public URL needed). Returns the connected handler; the server keeps it
    and calls `await handler.close_async()` on shutdown."""
    settings = runtime.settings
    if settings.slack_app_token is None:
        raise RuntimeError("SLACK_APP_TOKEN is required for Socket Mode")
    quiet_library_logs()
    bot = SlackBot(runtime, socket_mode=True)
    handler = InboxSocketModeHandler(bot, settings.slack_app_token.get_secret_value())
    bot.inbox.start()
    await handler.connect_async()
    log.info("slack socket mode connected")
    return handler

