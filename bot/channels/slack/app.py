"""The Slack channel put together: `SlackBot`, its HTTP endpoint, Socket Mode, and mounting.

HTTP mode: `POST /slack/events` receives events, the slash command and interactivity. The signature is
checked first (slack_sdk's verifier: signature plus a 5-minute timestamp window) before anything parses
the bytes; the payload's shape next (bot/channels/slack/payload.py); then the request is recorded in the
inbox and only then acknowledged (bot/channels/slack/inbox.py). Processing runs slack-bolt's AsyncApp on
the recorded request, to the end of the listener (`process_before_response=True`: it never answers an
HTTP request itself). Socket Mode records and acknowledges envelopes the same way.
"""

from __future__ import annotations

import asyncio
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

from bot import doorbell
from bot.admission import Gate, register
from bot.channels.slack.core import CURRENT_JOB, OUTBOX, Job
from bot.channels.slack.inbox import BACKLOG_WAIT, MAX_BACKLOG, Role, SlackInbox
from bot.channels.slack.listeners import Listeners
from bot.channels.slack.modal import submission_errors
from bot.channels.slack.payload import LAST_RETRY, check_payload, dedupe_key, last_retry
from bot.channels.slack.posting import Outbox, make_client
from bot.render.text import Say
from bot.service import Channel, Conversations

log = logging.getLogger("scim_help.slack")

EVENTS_PATH = "/slack/events"


class SlackBot(Listeners):
    def __init__(self, conversations: Conversations, *, socket_mode: bool = False, client: AsyncWebClient | None = None, role: Role | None = None) -> None:
        self.conversations = conversations
        self.settings = conversations.settings
        self.client = client or make_client(self.settings)
        self.escalation_channel = self.settings.escalation_channel
        self.portal_label = conversations.portal_label
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
        if role is None:
            # Socket Mode records in the one process that holds the connection and runs what it records.
            role = "record" if self.settings.slack_processors and not socket_mode else "inline"
        self.inbox = SlackInbox(self, conversations.inbox("slack"), self.backlog, role, doorbell.inherited)

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
        immediate = _immediate_answer(body, self.conversations.say)
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
            raw = await self.conversations.get_record(OUTBOX, job.entry.id)
            if raw is not None:
                job.outboxed = True
                await self._deliver(Outbox.load(raw), job)
                return
        token = CURRENT_JOB.set(job)
        try:
            await self.app.async_dispatch(_bolt_request(json.loads(job.entry.payload)))
        finally:
            CURRENT_JOB.reset(token)


def _immediate_answer(body: dict[str, Any], say: Say) -> dict[str, Any] | None:
    """What is answered at once, without recording: the URL check, the SSL check, and a modal whose fields
    need correcting. {} is an empty 200; None means "record it"."""
    if body.get("type") == "url_verification":
        return {"challenge": body["challenge"]}
    if "ssl_check" in body:
        return {}
    if body.get("type") == "view_submission":
        errors = submission_errors(body, say)
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
            immediate = _immediate_answer(body, self.bot.conversations.say)
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


# ---- the channel ---------------------------------------------------------------------------------------

SlackBotKey = web.AppKey("scim_help_slack", SlackBot)


def channel(conversations: Conversations) -> Channel:
    """Slack as the settings ask for it: the Events API on the shared server, or a Socket Mode connection."""
    if conversations.settings.slack_mode == "http":
        return SlackEvents(conversations)
    return SlackSocket(conversations)


def processor(conversations: Conversations) -> SlackEvents:
    """What a processor process runs (`serve --processors M`): the channel without its routes, claiming
    and running the Slack requests the workers recorded. start / stop / close as for the channel."""
    return SlackEvents(conversations, role="process")


class SlackEvents:
    """HTTP mode: Slack's Events API, slash command and interactivity, all on the one request URL
    `/slack/events` of the shared aiohttp app."""

    name = "slack"

    def __init__(self, conversations: Conversations, role: Role | None = None) -> None:
        self.bot = SlackBot(conversations, role=role)
        self._session_owned = False

    def mount(self, app: web.Application) -> None:
        app[SlackBotKey] = self.bot
        register(app, self.bot.backlog)
        app.router.add_post(EVENTS_PATH, self.bot.dispatch)
        log.info("slack mounted", extra={"path": EVENTS_PATH, "helpdesk_channels": len(self.bot.settings.slack_channel_ids)})

    async def start(self) -> None:
        # One keep-alive session for every Web API call: without it slack_sdk opens (and closes) a new
        # HTTP connection per call — about a sixth of the server's CPU per event under load.
        import aiohttp

        client = self.bot.client
        if client.session is None:
            client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=client.timeout))
            self._session_owned = True
        self.bot.inbox.start()  # first sweep at once: entries a killed process left are taken over now

    async def stop(self) -> None:
        await self.bot.inbox.stop(self.bot.settings.shutdown_timeout)

    async def close(self) -> None:
        client = self.bot.client
        if self._session_owned and client.session is not None:
            await client.session.close()
            client.session = None
            self._session_owned = False


class SlackSocket:
    """Socket Mode: no public URL; a connection to Slack kept in the background."""

    name = "slack-socket"

    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations
        self._task: asyncio.Task[InboxSocketModeHandler] | None = None

    def mount(self, app: web.Application) -> None:
        pass  # no routes: the events come over the socket

    async def start(self) -> None:
        # A task: the server's start-up is never held up by Slack.
        self._task = asyncio.create_task(start_socket_mode(self.conversations), name="slack-socket-mode")
        self._task.add_done_callback(_report_failure)

    async def stop(self) -> None:
        pass  # the handler drains its inbox when it is closed, after the server's turns

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if task.done() and not task.cancelled() and task.exception() is None:
            await task.result().close_async()
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _report_failure(task: asyncio.Task[InboxSocketModeHandler]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Slack Socket Mode failed", exc_info=task.exception())


async def start_socket_mode(conversations: Conversations) -> InboxSocketModeHandler:
    """Connect over Socket Mode. Returns the connected handler; `await handler.close_async()` ends it."""
    settings = conversations.settings
    if settings.slack_app_token is None:
        raise RuntimeError("SLACK_APP_TOKEN is required for Socket Mode")
    bot = SlackBot(conversations, socket_mode=True)
    handler = InboxSocketModeHandler(bot, settings.slack_app_token.get_secret_value())
    bot.inbox.start()
    await handler.connect_async()
    log.info("slack socket mode connected")
    return handler
