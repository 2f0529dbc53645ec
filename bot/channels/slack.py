"""The Slack channel: slack-bolt's AsyncApp on the shared aiohttp server (HTTP mode) or over Socket Mode.

Where the bot speaks
- `app_mention` anywhere it is a member: answered in a thread (the mention is stripped).
- Top-level messages in the helpdesk channels (`SCIM_HELP_SLACK_CHANNELS`): passed to the engine as
  *ambient* (`directed=False`); the engine stays silent unless it is confident the message is a SCIM
  provisioning problem, and then the bot answers in a thread under it.
- Replies inside a thread the bot already owns (a conversation is stored for it) continue that
  conversation, in any channel. Other threads are left alone.
- DMs (`channel_type == "im"`): always answered. One conversation per DM channel; when the admin writes in
  a thread inside the DM the answer goes into that thread, but it is the same conversation.
- `/scim-help`: no text → an ephemeral greeting with the symptom picker; `help`, `ticket`, `reset` →
  ephemeral help / ticket draft / start over for the admin's latest conversation in that channel;
  any other text → starts a conversation in a new thread of that channel (in a DM: continues the DM).
- Never: other bots, the bot itself, edits/deletions/joins and other message subtypes.

Conversation ids: `slack:{team}:{channel}:{thread_ts}` for a thread, `slack:{team}:{dm channel}:dm` for a
DM, `slack:{team}:{channel}:slash:{user}` for the picker a bare `/scim-help` shows (choosing a symptom
there starts a real thread). State lives in the store, so conversations survive restarts.

Correctness under Slack's delivery rules
- Requests are verified by bolt (signing secret, 5-minute timestamp window) in HTTP mode.
- Everything is acknowledged first (events by bolt, actions/commands/views by `ack()`), then processed
  (`process_before_response=False`), well inside Slack's 3 seconds. Above capacity at most MAX_BACKLOG
  acknowledged requests wait per process; the next waits for room up to BACKLOG_WAIT, else gets a 503 and
  Slack delivers it again (bot/admission.py).
- A retried event (`X-Slack-Retry-Num`, same `event_id`) is processed once: `slack-event:{event_id}` is
  claimed in the store; a message that arrives both as `message` and `app_mention` is claimed by ts.
- A button is handled once: `slack-action:{message ts}:{action_id}` is claimed, and the clicked message is
  updated at once to show the answer with its buttons removed.
- Web API calls go through slack_sdk's retry handlers (429 + Retry-After, connection errors, 5xx). When a
  call still fails, the engine has already saved the conversation; the admin is told (ephemeral) and the
  error code is logged — never message text, emails/UPNs or tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.internals import parse_body
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.admission import Gate, register
from bot.events import Incoming, Ticket, Turn
from bot.redact import find_emails, pseudonymise, scrub_secrets
from bot.render import blocks as bk
from bot.runtime import Runtime
from bot.settings import Settings

log = logging.getLogger("scim_help.slack")

EVENTS_PATH = "/slack/events"
COMMAND = "/scim-help"
CLAIM_TTL = 24 * 3600
LAST_RECORD = "slack-last"
DEFAULT_API_URL = "https://slack.com/api/"

# Requests acknowledged but not yet finished, per process. Above capacity, Slack requests are acknowledged
# faster than they are answered; unbounded, that backlog grew by thousands of turns (~17 KB each: RSS 200–270
# MB in the closed-loop benchmark). At the bound a new request waits for room before its ack, so a client
# that sends back to back is slowed to the answer rate. 1000 is 2–4 s of work for one worker, more than can
# be answered within 2 s of arrival anyway.
MAX_BACKLOG = 1000
# How long a request may wait for room. Slack gives up on an ack after 3 s and retries the event later.
BACKLOG_WAIT = 2.0
# Slack retries a failed delivery 3 times; the last one is never refused, or the message would be lost.
LAST_RETRY = 3

# Message subtypes written by a person that the bot may answer; everything else (bot_message,
# message_changed, message_deleted, channel_join, ...) is ignored.
_HUMAN_SUBTYPES = {None, "file_share", "thread_broadcast"}
# Errors that mean "the bot cannot post in this channel": the conversation moves to a DM.
_CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "cant_post_to_channel"}
# Library loggers and the least severe level they may log at. At DEBUG, bolt and slack_sdk log whole request
# and response bodies (message text, UPNs), and bolt logs the body of a request whose signature fails at
# INFO. bolt copies its app logger's level to its middleware loggers, so capping "scim_help.slack.bolt" caps
# them all.
_LOG_FLOORS = {
    "scim_help.slack.bolt": logging.WARNING,
    "scim_help.slack.sdk": logging.INFO,
    "scim_help.slack.socket": logging.INFO,
    "slack_bolt": logging.WARNING,
    "slack_sdk": logging.INFO,
}


# ---- conversation ids ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where the bot posts: a channel, optionally inside a thread."""

    channel: str
    thread_ts: str | None = None


@dataclass(frozen=True)
class ConversationRef:
    team: str
    channel: str
    kind: str  # "thread" | "dm" | "slash"
    thread_ts: str | None = None
    user: str | None = None

    @property
    def place(self) -> Place | None:
        if self.kind == "thread":
            return Place(self.channel, self.thread_ts)
        if self.kind == "dm":
            return Place(self.channel, None)
        return None


def thread_conversation(team: str, channel: str, thread_ts: str) -> str:
    return f"slack:{team}:{channel}:{thread_ts}"


def dm_conversation(team: str, channel: str) -> str:
    return f"slack:{team}:{channel}:dm"


def slash_conversation(team: str, channel: str, user: str) -> str:
    return f"slack:{team}:{channel}:slash:{user}"


def parse_conversation(conversation_id: str | None) -> ConversationRef | None:
    if not conversation_id:
        return None
    parts = conversation_id.split(":")
    if len(parts) < 4 or parts[0] != "slack" or not parts[1] or not parts[2]:
        return None
    team, channel, rest = parts[1], parts[2], parts[3:]
    if rest == ["dm"]:
        return ConversationRef(team, channel, "dm")
    if len(rest) == 2 and rest[0] == "slash" and rest[1]:
        return ConversationRef(team, channel, "slash", user=rest[1])
    if len(rest) == 1 and re.fullmatch(r"\d{1,12}\.\d{1,9}", rest[0]):
        return ConversationRef(team, channel, "thread", thread_ts=rest[0])
    return None


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    else:
        text = re.sub(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>", " ", text)
    return " ".join(text.split())


# ---- the Web API client ------------------------------------------------------------------------------


def make_client(settings: Settings) -> AsyncWebClient:
    """The Web API client: our base URL (a local fake in tests) and retries for 429 (honouring
    Retry-After), dropped connections and 5xx."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    base_url = settings.slack_api_url or DEFAULT_API_URL
    if not base_url.endswith("/"):
        base_url += "/"
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=15,
        logger=logging.getLogger("scim_help.slack.sdk"),
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def _quiet_library_logs() -> None:
    for name, floor in _LOG_FLOORS.items():
        logger = logging.getLogger(name)
        # An explicit level, so turning the root logger to DEBUG later does not lower it.
        logger.setLevel(max(floor, logger.level))


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        try:
            return str(exc.response.get("error") or exc.response.status_code)
        except Exception:  # noqa: BLE001 - a malformed response must not hide the failure
            return "slack_api_error"
    return type(exc).__name__


# ---- the bot -----------------------------------------------------------------------------------------


class SlackBot:
    def __init__(self, runtime: Runtime, *, socket_mode: bool = False, client: AsyncWebClient | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.store = runtime.store
        self.engine = runtime.engine
        _quiet_library_logs()
        self.client = client or make_client(self.settings)
        secret = self.settings.slack_signing_secret.get_secret_value() if self.settings.slack_signing_secret else None
        self.app = AsyncApp(
            name="scim-help",
            client=self.client,
            signing_secret=secret,
            # HTTP requests are verified (signature + 5-minute window) by `dispatch` with slack_sdk's
            # SignatureVerifier — the one bolt's RequestVerification middleware uses — before any parser
            # sees the bytes, so bolt does not check them a second time. Socket Mode has no signatures.
            request_verification_enabled=False,
            # Middleware for features this bot does not use (workflow functions, assistant threads):
            # each one runs on every request (bench/NOTES.md).
            attaching_function_token_enabled=False,
            attaching_conversation_kwargs_enabled=False,
            ignoring_self_assistant_message_events_enabled=False,
            # Ack first, work after: listeners run after the HTTP response is sent.
            process_before_response=False,
            logger=logging.getLogger("scim_help.slack.bolt"),
        )
        self._verifier = SignatureVerifier(secret) if (secret and not socket_mode) else None
        self.escalation_channel = self.settings.escalation_channel
        self.portal_label = runtime.bundle.pack.escalation.portal_label
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Acknowledged but unfinished requests: a slot is given back when bolt drops the request, i.e. when
        # its listener has finished.
        self.backlog = Gate("slack", MAX_BACKLOG, wait=BACKLOG_WAIT)
        self._register()

    # ---- registration --------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        # bolt tries listeners in this order, building each one's arguments: the most frequent first.
        app.event("message")(self._on_message)
        app.event("app_mention")(self._on_mention)
        app.command(COMMAND)(self._on_command)
        app.action(re.compile("^" + re.escape(bk.CHOICE_PREFIX)))(self._on_choice)
        app.action(re.compile("^" + re.escape(bk.HANDOFF_PREFIX)))(self._on_handoff)
        app.action(re.compile("^" + re.escape(bk.LINK_PREFIX)))(self._on_link)
        app.view(bk.ESCALATION_CALLBACK)(self._on_submit)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """POST /slack/events → bolt. aiohttp's body size limit answers 413; bytes that are not signed by
        Slack are refused (401) before anything parses them, and a signed body bolt cannot parse is a 400."""
        raw = await request.read()
        if not self._signed(raw, request.headers):
            log.info("slack request refused: bad or missing signature", extra={"path": request.path})
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            verdict = check_payload(parse_body(raw.decode("utf-8"), request.content_type))
        except (ValueError, RecursionError):  # not JSON / form, or nested too deep
            verdict = "reject"
        if verdict != "dispatch":
            # Signed, but not a payload we act on: a shape Slack never sends is refused (400), a kind we
            # do not subscribe to is acknowledged so Slack does not retry it.
            log.info("slack request not dispatched", extra={"verdict": verdict})
            return web.json_response({"error": "invalid request"}, status=400) if verdict == "reject" else web.Response(status=200)
        last_chance = _last_retry(request.headers)
        release = None if last_chance else await self.backlog.enter()
        if release is None and not last_chance:
            # Not acknowledged, so Slack delivers it again later (X-Slack-Retry-Num), and it is answered then.
            return web.json_response({"error": "busy, retry later"}, status=503)
        try:
            bolt_request = await to_bolt_request(request)
            if release is not None:
                # bolt holds the request, context included, until the listener is done with it.
                weakref.finalize(bolt_request.context, release)
                release = None
            bolt_response = await self.app.async_dispatch(bolt_request)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
            # Listeners never get here (they run after the ack; bolt handles their errors): this is bolt
            # failing to read a payload that passed check_payload.
            log.warning("slack request not understood", extra={"error": type(exc).__name__})
            return web.json_response({"error": "invalid request"}, status=400)
        finally:
            if release is not None:
                release()
        return await to_aiohttp_response(bolt_response)

    def _signed(self, raw: bytes, headers: Any) -> bool:
        # slack_sdk's verifier — the one bolt's RequestVerification middleware would use. Checking here,
        # first, keeps unauthenticated bytes away from the body parsers. Without a signing secret nothing
        # is accepted over HTTP (Settings refuses to start that way; this guards direct construction).
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

    # ---- events ---------------------------------------------------------------------------------

    def _is_human(self, event: dict[str, Any], bot_user_id: str | None) -> bool:
        if event.get("bot_id") or event.get("bot_profile"):
            return False
        if event.get("subtype") not in _HUMAN_SUBTYPES:
            return False
        user = event.get("user")
        return bool(user) and user != bot_user_id

    async def _claim(self, *keys: str) -> bool:
        """First caller wins; with several keys, only if every one of them is new (one round trip)."""
        return await self.store.claim_all(keys, CLAIM_TTL)

    @staticmethod
    def _delivery_keys(body: dict[str, Any], event: dict[str, Any]) -> tuple[str, ...]:
        """What makes a delivery a repeat: Slack retries carry the same event_id, and a message can arrive
        both as `app_mention` and as `message` (same ts). The engine claims them with the conversation's
        lock, in the same store round trip, and answers a repeat with a silent turn."""
        keys = [f"slack-msg:{event.get('channel')}:{event.get('ts')}"]
        if body.get("event_id"):
            keys.append(f"slack-event:{body['event_id']}")
        return tuple(keys)

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any], context: dict[str, Any]) -> None:
        bot_user = context.get("bot_user_id")
        if not self._is_human(event, bot_user):
            return
        channel = str(event.get("channel") or "")
        if not channel or channel.startswith("D"):
            return  # DMs arrive as message.im and are answered there
        team = _team(body, context, event)
        thread_ts = event.get("thread_ts") or event.get("ts")
        conv = thread_conversation(team, channel, thread_ts)
        text = strip_mention(event.get("text") or "", bot_user)
        msg = Incoming(channel="slack", conversation_id=conv, user_id=event["user"], text=text, directed=True, once=self._delivery_keys(body, event))
        await self._converse(msg, Place(channel, thread_ts), team=team, user=event["user"])

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: dict[str, Any]) -> None:
        bot_user = context.get("bot_user_id")
        if not self._is_human(event, bot_user):
            return
        channel = str(event.get("channel") or "")
        ts = str(event.get("ts") or "")
        thread_ts = event.get("thread_ts")
        in_thread = bool(thread_ts) and thread_ts != ts
        text = event.get("text") or ""
        team = _team(body, context, event)
        user = event["user"]

        if event.get("channel_type") == "im" or channel.startswith("D"):
            conv = dm_conversation(team, channel)
            place = Place(channel, thread_ts if in_thread else None)
            directed = True
        else:
            if bot_user and f"<@{bot_user}" in text:
                return  # the app_mention event answers it
            if in_thread:
                conv = thread_conversation(team, channel, thread_ts)
                state = await self.engine.state(conv)
                if state is None:
                    return  # somebody else's thread
                # Our thread: mid-conversation every reply is for us; after the end, only a clear new
                # SCIM problem (or the feedback answer) gets a response.
                directed = state.phase not in ("closed", "off-topic")
                place = Place(channel, thread_ts)
            elif channel in self.settings.slack_channel_ids:
                conv = thread_conversation(team, channel, ts)
                place = Place(channel, ts)
                directed = False
            else:
                return
        msg = Incoming(channel="slack", conversation_id=conv, user_id=user, text=text, directed=directed, once=self._delivery_keys(body, event))
        await self._converse(msg, place, team=team, user=user)

    # ---- slash command --------------------------------------------------------------------------

    async def _on_command(self, ack: Any, body: dict[str, Any], command: dict[str, Any], respond: Any, context: dict[str, Any]) -> None:
        await ack()
        text = " ".join((command.get("text") or "").split())
        sub = text.lower()
        user = command["user_id"]
        channel = command["channel_id"]
        team = command.get("team_id") or _team(body, context, {})
        log.info("slack command", extra={"user": pseudonymise(user), "sub": sub if sub in ("help", "ticket", "reset", "") else "text"})
        try:
            if sub in ("help", "ticket", "reset"):
                conv = await self._last_conversation(team, channel, user)
                if conv is None and sub == "ticket":
                    await self._respond(respond, bk.notice(f"There is no conversation with me here yet. Describe the problem with `{COMMAND} what you see`, or run `{COMMAND}` to pick a symptom."))
                    return
                if conv is None:
                    conv = await self._slash_home(team, channel, user)
                    words = "help" if sub == "help" else ""
                else:
                    words = {"help": "help", "ticket": "show ticket", "reset": "start over"}[sub]
                msg = Incoming(channel="slack", conversation_id=conv, user_id=user, text=words, directed=True)
                turn = await self.runtime.handle(msg)
                await self._respond_turn(respond, turn)
            elif not text:
                conv = await self._slash_home(team, channel, user)
                turn = await self.runtime.handle(Incoming(channel="slack", conversation_id=conv, user_id=user, text="", directed=True))
                await self._respond_turn(respond, turn)
            else:
                started = await self._start(team, channel, user, respond)
                if started is None:
                    return
                conv, place = started
                msg = Incoming(channel="slack", conversation_id=conv, user_id=user, text=text, directed=True)
                await self._converse(msg, place, team=team, user=user, respond=respond)
        except SlackClientError as exc:
            await self._failed(exc, None, user, respond, what="command")
        except Exception as exc:  # noqa: BLE001 - tell the admin instead of failing silently
            log.error("slack command failed", extra={"error": type(exc).__name__, "user": pseudonymise(user)})
            await self._respond(respond, bk.notice("Sorry — something went wrong on my side. Please try again in a moment."))

    async def _slash_home(self, team: str, channel: str, user: str) -> str:
        if channel.startswith("D"):
            dm = await self._open_dm(user)
            return dm_conversation(team, dm)
        return slash_conversation(team, channel, user)

    async def _last_conversation(self, team: str, channel: str, user: str) -> str | None:
        if channel.startswith("D"):
            channel = await self._open_dm(user)
            return await self.store.get_record(LAST_RECORD, f"{team}:{channel}:{user}") or dm_conversation(team, channel)
        return await self.store.get_record(LAST_RECORD, f"{team}:{channel}:{user}")

    @staticmethod
    def _remember(conv: str, user: str | None) -> tuple[tuple[str, str, str], ...]:
        """The record `_last_conversation` reads: the engine writes it with the turn, when it answers."""
        ref = parse_conversation(conv)
        # A DM has one conversation, which _last_conversation derives: nothing to write on every turn.
        if ref is None or ref.kind in ("slash", "dm") or not user:
            return ()
        return ((LAST_RECORD, f"{ref.team}:{ref.channel}:{user}", conv),)

    async def _open_dm(self, user: str) -> str:
        response = await self.client.conversations_open(users=user)
        return str(response["channel"]["id"])

    async def _start(self, team: str, channel: str, user: str, respond: Any) -> tuple[str, Place] | None:
        """A new conversation started from the slash command or its picker: a new thread in the channel
        (under a short root message), or the DM. When the bot cannot post in the channel it moves to a DM
        and says so."""
        if channel.startswith("D"):
            dm = await self._open_dm(user)
            return dm_conversation(team, dm), Place(dm, None)
        root = bk.notice(f":wrench: <@{user}> is troubleshooting SCIM provisioning with me — follow along in the thread.")
        try:
            response = await self.client.chat_postMessage(channel=channel, blocks=root.blocks, text=root.text, unfurl_links=False)
        except SlackApiError as exc:
            if _error_code(exc) not in _CANNOT_POST:
                raise
            dm = await self._open_dm(user)
            await self._respond(respond, bk.notice(f"I can't post in this channel (invite me with `/invite @scim-help`), so I'll continue in our DM: <#{dm}>."))
            return dm_conversation(team, dm), Place(dm, None)
        ts = str(response["ts"])
        return thread_conversation(team, channel, ts), Place(channel, ts)

    # ---- buttons --------------------------------------------------------------------------------

    async def _on_link(self, ack: Any) -> None:
        await ack()  # a URL button: Slack opens the link, there is nothing to do

    async def _on_choice(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: dict[str, Any]) -> None:
        await ack()
        container = body.get("container") or {}
        message_ts = str(container.get("message_ts") or "")
        action_id = str(action.get("action_id") or "")
        user = (body.get("user") or {}).get("id")
        claim_ts = message_ts or str(action.get("action_ts") or "")
        clicked_block = str(action.get("block_id") or "")
        # One turn per button (double clicks, Slack retries), and one answer per question: a fast click
        # on a second button of the same block, before its buttons disappear, is dropped too.
        if not await self._claim(f"slack-action:{claim_ts}:{action_id}", f"slack-answer:{claim_ts}:{clicked_block.split('|', 1)[0]}"):
            log.info("slack click already handled", extra={"user": pseudonymise(user)})
            return
        team = _team(body, context, {})
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        value = str(action.get("value") or "")
        label = ((action.get("text") or {}).get("text")) or value
        ephemeral = bool(container.get("is_ephemeral"))
        message = body.get("message") or {}
        container_thread = container.get("thread_ts") or message.get("thread_ts")

        conv = bk.conversation_from_block_id(clicked_block)
        if conv is None and channel and message_ts:
            conv = thread_conversation(team, channel, container_thread) if container_thread else (dm_conversation(team, channel) if channel.startswith("D") else None)
        ref = parse_conversation(conv)
        if ref is None or ref.team != team or not value:
            log.warning("slack click without a conversation", extra={"user": pseudonymise(user)})
            return

        # Show the answer and remove the buttons right away, before the engine runs.
        await self._mark_answered(channel, message_ts, message, clicked_block, label, user, ephemeral, respond)

        if ref.kind == "slash":
            # The picker of a bare /scim-help: choosing a symptom starts a real conversation.
            started = await self._start(team, ref.channel, user, respond)
            if started is None:
                return
            conv, place = started
        elif ref.kind == "dm":
            place = Place(ref.channel, container_thread if (not ephemeral and channel == ref.channel) else None)
        else:
            place = ref.place  # type: ignore[assignment]
        msg = Incoming(channel="slack", conversation_id=conv, user_id=user, choice=value, directed=True)
        await self._converse(msg, place, team=team, user=user, respond=respond)

    async def _mark_answered(
        self, channel: str, ts: str, message: dict[str, Any], block_id: str, label: str, user: str | None, ephemeral: bool, respond: Any
    ) -> None:
        try:
            if message.get("blocks"):
                new_blocks = bk.answered(message["blocks"], block_id, label, user)
            else:
                new_blocks = [bk.context(f":white_check_mark: You chose *{bk.escape(bk.plain(label))}*")]
            text = message.get("text") or f"You chose {bk.plain(label)}"
            if ephemeral or not ts:
                await respond(blocks=new_blocks, text=text, replace_original=True)
            else:
                await self.client.chat_update(channel=channel, ts=ts, blocks=new_blocks, text=text)
        except Exception as exc:  # noqa: BLE001 - the answer still counts; only the cosmetic update failed
            log.warning("slack message update failed", extra={"error": _error_code(exc)})

    # ---- the conversation ------------------------------------------------------------------------

    @asynccontextmanager
    async def _serial(self, conv: str) -> AsyncIterator[None]:
        """Turns of one conversation run and post in order within this process (the engine's store lock
        serialises across processes)."""
        lock = self._locks.get(conv)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conv] = lock
        async with lock:
            yield

    async def _converse(self, msg: Incoming, place: Place, *, team: str, user: str | None, respond: Any = None) -> Turn | None:
        # From the message's own fields: Incoming has replaced any lone surrogate the event carried.
        msg.remember = self._remember(msg.conversation_id, msg.user_id)
        async with self._serial(msg.conversation_id):
            try:
                turn = await self.runtime.handle(msg)
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "engine turn failed",
                    extra={"conversation": msg.conversation_id, "error": type(exc).__name__, "user": pseudonymise(user)},
                )
                await self._tell(place, user, "Sorry — something went wrong on my side and I couldn't process that. Please try again in a moment.", respond)
                return None
            if turn.silent:
                return turn
            await self._post_turn(turn, place, user, respond)
            return turn

    def _render(self, turn: Turn) -> list[bk.Message]:
        handoff = bool(self.escalation_channel) and turn.phase == "closed" and turn.ticket is not None
        return bk.render_replies(
            turn.replies,
            conversation_id=turn.conversation_id,
            support_url=self.engine.support_url,
            portal_label=self.portal_label,
            handoff=handoff,
        )

    async def _post_turn(self, turn: Turn, place: Place, user: str | None, respond: Any = None) -> None:
        for message in self._render(turn):
            try:
                await self._post(place, message)
            except SlackClientError as exc:
                # Later messages would arrive out of order or without context: stop here.
                await self._failed(exc, place, user, respond, what="chat.postMessage")
                return

    async def _post(self, place: Place, message: bk.Message) -> str:
        kwargs: dict[str, Any] = {"channel": place.channel, "blocks": message.blocks, "text": message.text, "unfurl_links": False, "unfurl_media": False}
        if place.thread_ts:
            kwargs["thread_ts"] = place.thread_ts
        response = await self.client.chat_postMessage(**kwargs)
        return str(response.get("ts") or "")

    async def _respond(self, respond: Any, message: bk.Message, *, replace: bool = False) -> None:
        response = await respond(blocks=message.blocks, text=message.text, response_type="ephemeral", replace_original=replace)
        status = getattr(response, "status_code", 200)
        if status and status >= 300:
            log.warning("slack response_url post failed", extra={"status": status})

    async def _respond_turn(self, respond: Any, turn: Turn) -> None:
        if turn.silent:
            return
        for message in self._render(turn):
            await self._respond(respond, message)

    async def _failed(self, exc: BaseException, place: Place | None, user: str | None, respond: Any, *, what: str) -> None:
        """A Web API call failed after slack_sdk's retries. The engine already saved the conversation;
        tell the admin so they are not left waiting."""
        code = _error_code(exc)
        log.error("slack api call failed", extra={"method": what, "error": code, "user": pseudonymise(user)})
        await self._tell(
            place,
            user,
            f"Sorry — Slack did not accept my reply (`{code}`). Nothing is lost: our conversation is saved, so "
            "reply *help* to see where we are, or try again in a moment.",
            respond,
        )

    async def _tell(self, place: Place | None, user: str | None, text: str, respond: Any = None) -> None:
        """Best effort: an ephemeral note in place, else via the response_url."""
        note = bk.notice(text)
        if place is not None and user:
            try:
                kwargs: dict[str, Any] = {"channel": place.channel, "user": user, "blocks": note.blocks, "text": note.text}
                if place.thread_ts:
                    kwargs["thread_ts"] = place.thread_ts
                await self.client.chat_postEphemeral(**kwargs)
                return
            except Exception as exc:  # noqa: BLE001
                log.warning("slack ephemeral notice failed", extra={"error": _error_code(exc)})
        if respond is not None:
            try:
                await self._respond(respond, note)
            except Exception as exc:  # noqa: BLE001
                log.warning("slack response_url notice failed", extra={"error": _error_code(exc)})

    # ---- escalation hand-off --------------------------------------------------------------------

    async def _on_handoff(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: dict[str, Any]) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        team = _team(body, context, {})
        container = body.get("container") or {}
        conv = bk.conversation_from_block_id(action.get("block_id"))
        ref = parse_conversation(conv)
        if ref is None or ref.team != team:
            return
        state = await self.engine.state(conv)  # type: ignore[arg-type]
        if state is None:
            await self._tell(None, user, "That conversation has expired, so I can't prepare the ticket any more. Describe the problem again to start over.", respond)
            return
        ticket = self.engine.draft_ticket(state)
        message = body.get("message") or {}
        meta = {
            "c": conv,
            "ch": container.get("channel_id"),
            "ts": None if container.get("is_ephemeral") else container.get("message_ts"),
            "th": container.get("thread_ts") or message.get("thread_ts"),
            "d": _digest(ticket.body),
        }
        view = bk.escalation_modal(ticket, private_metadata=json.dumps(meta), channel_label="the helpdesk channel")
        try:
            await self.client.views_open(trigger_id=body.get("trigger_id"), view=view)
        except SlackClientError as exc:
            await self._failed(exc, ref.place, user, respond, what="views.open")

    async def _on_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]) -> None:
        values = _view_values(view)
        data, errors = validate_submission(values)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = (body.get("user") or {}).get("id")
        if not await self._claim(f"slack-view:{view.get('id')}"):
            return
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        conv = meta.get("c")
        ref = parse_conversation(conv)
        if ref is None or ref.team != _team(body, context, {}):
            return
        place = ref.place or Place(ref.channel)
        if ref.kind == "dm" and meta.get("th"):
            place = Place(ref.channel, meta["th"])
        state = await self.engine.state(conv)
        ticket_text = data["body"]
        if state is not None:
            draft = self.engine.draft_ticket(state)
            if _digest(draft.body) == meta.get("d") and ticket_text.strip() == _clip_input(draft.body).strip():
                # The text was not edited: rebuild it so it agrees with the (possibly edited) fields.
                ticket_text = _rerender(self.runtime, state, draft, data)
        ticket_text = scrub_secrets(ticket_text)

        permalink = await self._permalink(ref, meta)
        try:
            if self.escalation_channel:
                post = bk.escalation_post(
                    user_id=user,
                    account=data["account"],
                    idp=data["idp"],
                    upns=data["upns"],
                    groups=data["groups"],
                    symptom=self.engine.draft_ticket(state).symptom_title if state is not None else None,
                    body=ticket_text,
                    permalink=permalink,
                )
                await self.client.chat_postMessage(channel=self.escalation_channel, blocks=post.blocks, text=post.text, unfurl_links=False)
                log.info("slack escalation posted", extra={"conversation": conv, "user": pseudonymise(user)})
        except SlackClientError as exc:
            await self._failed(exc, place, user, None, what="chat.postMessage(escalation)")
            return
        confirmation = bk.handoff_confirmation(
            body=ticket_text, support_url=self.engine.support_url, portal_label=self.portal_label, channel_id=self.escalation_channel
        )
        try:
            await self._post(place, confirmation)
        except SlackClientError as exc:
            await self._failed(exc, place, user, None, what="chat.postMessage(handoff)")

    async def _permalink(self, ref: ConversationRef, meta: dict[str, Any]) -> str | None:
        target = ref.thread_ts if ref.kind == "thread" else (meta.get("th") or meta.get("ts"))
        if not target:
            return None
        try:
            response = await self.client.chat_getPermalink(channel=ref.channel, message_ts=target)
            return str(response.get("permalink") or "") or None
        except SlackClientError as exc:
            log.warning("slack permalink failed", extra={"error": _error_code(exc)})
            return None


# ---- payload shape ------------------------------------------------------------------------------------
# Signed requests come from Slack, but bolt reads fields without checking their types, and a payload of an
# unexpected shape makes its middleware fail with a 500 (and Slack retry it). So the fields bolt and our
# listeners read are checked first. Kinds we do not handle are acknowledged without dispatching.

_EVENT_TYPES = {"message", "app_mention"}
_INTERACTIONS = {"block_actions", "view_submission", "view_closed"}
_OPT_STR_TOP = (
    "type", "token", "team_id", "enterprise_id", "api_app_id", "event_id", "trigger_id", "response_url",
    "command", "text", "user_id", "channel_id", "channel_name", "team_domain", "user_name", "challenge",
)
_OPT_DICT_TOP = ("team", "enterprise", "user", "channel", "container", "view", "message", "event")
_OPT_STR_EVENT = ("type", "user", "channel", "team", "ts", "thread_ts", "text", "subtype", "bot_id", "channel_type", "event_ts", "client_msg_id")


def _strs(d: dict[str, Any], keys: Iterable[str]) -> bool:
    return all(d.get(k) is None or isinstance(d.get(k), str) for k in keys)


def _dicts(d: dict[str, Any], keys: Iterable[str]) -> bool:
    return all(d.get(k) is None or isinstance(d.get(k), dict) for k in keys)


def check_payload(body: Any) -> str:
    """"dispatch" (hand to bolt), "ignore" (acknowledge, do nothing) or "reject" (400)."""
    if not isinstance(body, dict) or not body:
        return "reject"
    if not _strs(body, _OPT_STR_TOP) or not _dicts(body, _OPT_DICT_TOP):
        return "reject"
    if body.get("is_enterprise_install") is not None and not isinstance(body["is_enterprise_install"], (bool, str)):
        return "reject"
    auths = body.get("authorizations")
    if auths is not None:
        if not isinstance(auths, list) or not all(isinstance(a, dict) and _strs(a, ("team_id", "user_id", "enterprise_id")) for a in auths):
            return "reject"
        if any(a.get("is_enterprise_install") is not None and not isinstance(a["is_enterprise_install"], (bool, str)) for a in auths):
            return "reject"
    for key in ("team", "enterprise", "user", "channel"):
        sub = body.get(key)
        if isinstance(sub, dict) and not _strs(sub, ("id", "team_id", "name", "domain", "username")):
            return "reject"
    kind = body.get("type")
    if "command" in body:
        return "dispatch" if body.get("command") and body.get("user_id") and body.get("channel_id") else "reject"
    if not kind and "ssl_check" not in body:
        return "reject"  # everything Slack sends, except slash commands and SSL checks, has a type
    if "ssl_check" in body or kind == "url_verification":
        return "dispatch" if kind != "url_verification" or isinstance(body.get("challenge"), str) else "reject"
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "reject"
        if event["type"] not in _EVENT_TYPES:
            return "ignore"
        if not _strs(event, _OPT_STR_EVENT) or not _dicts(event, ("bot_profile", "message", "previous_message", "edited")):
            return "reject"
        return "dispatch"
    if kind in _INTERACTIONS:
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
            actions = body.get("actions")
            if not isinstance(actions, list) or not actions:
                return "reject"
            for a in actions:
                if not isinstance(a, dict) or not isinstance(a.get("action_id"), str) or not _strs(a, ("block_id", "value", "type", "action_ts")):
                    return "reject"
                if a.get("text") is not None and not (isinstance(a["text"], dict) and _strs(a["text"], ("text", "type"))):
                    return "reject"
            return "dispatch"
        view = body.get("view")
        if not isinstance(view, dict) or not _strs(view, ("id", "callback_id", "private_metadata", "type", "hash", "external_id", "app_id", "team_id", "bot_id", "root_view_id", "previous_view_id")):
            return "reject"
        values = (view.get("state") or {}).get("values") if isinstance(view.get("state") or {}, dict) else None
        if view.get("state") is not None and not (
            isinstance(values, dict)
            and all(isinstance(acts, dict) and all(isinstance(el, dict) for el in acts.values()) for acts in values.values())
        ):
            return "reject"
        return "dispatch"
    return "ignore"


# ---- modal input -------------------------------------------------------------------------------------


def _view_values(view: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    state = ((view.get("state") or {}).get("values")) or {}
    for block_id, actions in state.items():
        element = (actions or {}).get("value") or {}
        out[block_id] = str(element.get("value") or "")
    return out


def validate_submission(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Clean the modal's fields; errors are keyed by input block id (Slack's `response_action: errors`)."""
    errors: dict[str, str] = {}
    account = " ".join(values.get("account", "").split())
    if not account:
        errors["account"] = "Enter your Cato account name or number."
    elif len(account) > 120:
        errors["account"] = "That is too long for an account name or number (120 characters at most)."
    elif scrub_secrets(account) != account:
        errors["account"] = "That looks like a secret or token — enter the account name or number only."
    idp = " ".join(values.get("idp", "").split())[:120]

    upns: list[str] = []
    bad: list[str] = []
    for item in re.split(r"[\s,;]+", values.get("upns", "")):
        item = item.strip().strip("<>")
        if not item:
            continue
        found = find_emails(item)
        if len(found) == 1 and found[0] == item.lower().strip("."):
            if found[0] not in upns:
                upns.append(found[0])
        else:
            bad.append(item)
    if bad:
        shown = bad[0] if len(bad[0]) <= 40 else bad[0][:39] + "…"
        errors["upns"] = f"“{shown}” is not a UPN. Enter one address per line, like jane.doe@contoso.com."
    elif len(upns) > 50:
        errors["upns"] = "Please list at most 50 users; attach the rest to the support case."

    groups = [g.strip() for g in re.split(r"[\n;]+", values.get("groups", "")) if g.strip()]
    if len(groups) > 30:
        errors["groups"] = "Please list at most 30 groups."
    elif any(len(g) > 120 for g in groups):
        errors["groups"] = "A group name can be at most 120 characters."

    body = values.get("body", "").strip()
    if not body:
        errors["body"] = "The ticket text can't be empty."
    elif len(body) > bk.INPUT_MAX:
        errors["body"] = f"The ticket text can be at most {bk.INPUT_MAX} characters."
    return {"account": account, "idp": idp, "upns": upns, "groups": groups, "body": body}, errors


def _clip_input(text: str) -> str:
    return bk.clip(text, bk.INPUT_MAX)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.blake2s(_clip_input(text).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _rerender(runtime: Runtime, state: Any, draft: Ticket, data: dict[str, Any]) -> str:
    from bot.ticket import render_markdown

    edited = draft.model_copy(
        update={"account": data["account"], "idp": data["idp"] or None, "upns": data["upns"], "groups": data["groups"]}
    )
    try:
        return render_markdown(edited, state, runtime.bundle)
    except Exception:  # noqa: BLE001 - fall back to the text the admin saw
        return data["body"]


def _last_retry(headers: Any) -> bool:
    try:
        return int(headers.get("X-Slack-Retry-Num") or 0) >= LAST_RETRY
    except ValueError:
        return False


def _team(body: dict[str, Any], context: Any, event: dict[str, Any]) -> str:
    team = None
    try:
        team = context.get("team_id")
    except AttributeError:
        pass
    return str(
        team
        or body.get("team_id")
        or (body.get("team") or {}).get("id")
        or (body.get("user") or {}).get("team_id")
        or event.get("team")
        or "T"
    )


# ---- wiring ------------------------------------------------------------------------------------------

SlackBotKey = web.AppKey("scim_help_slack", SlackBot)
_SESSION_OWNED = web.AppKey("scim_help_slack_session_owned", bool)


def mount(app: web.Application, runtime: Runtime) -> None:
    """Serve Slack's Events API, slash command and interactivity on the shared aiohttp app (HTTP mode).
    All three use the one request URL `/slack/events`."""
    bot = SlackBot(runtime)
    app[SlackBotKey] = bot
    register(app, bot.backlog)
    app.router.add_post(EVENTS_PATH, bot.dispatch)

    async def open_session(app: web.Application) -> None:
        # One keep-alive session for every Web API call: without it slack_sdk opens (and closes) a new
        # HTTP connection per call — about a sixth of the server's CPU per event under load.
        import aiohttp

        if bot.client.session is None:
            bot.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=bot.client.timeout))
            app[_SESSION_OWNED] = True

    async def close_session(app: web.Application) -> None:
        if app.get(_SESSION_OWNED) and bot.client.session is not None:
            await bot.client.session.close()
            bot.client.session = None

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    log.info("slack mounted", extra={"path": EVENTS_PATH, "helpdesk_channels": len(runtime.settings.slack_channel_ids)})


async def start_socket_mode(runtime: Runtime) -> Any:
    """Connect over Socket Mode (no public URL needed). Returns the connected AsyncSocketModeHandler; the
    server keeps it and calls `await handler.close_async()` on shutdown."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    settings = runtime.settings
    if settings.slack_app_token is None:
        raise RuntimeError("SLACK_APP_TOKEN is required for Socket Mode")
    bot = SlackBot(runtime, socket_mode=True)
    handler = AsyncSocketModeHandler(
        bot.app,
        app_token=settings.slack_app_token.get_secret_value(),
        logger=logging.getLogger("scim_help.slack.socket"),
        web_client=bot.client,
    )
    handler.scim_help_bot = bot  # type: ignore[attr-defined]  # for tests and shutdown hooks
    await handler.connect_async()
    log.info("slack socket mode connected")
    return handler
