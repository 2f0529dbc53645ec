"""Talking to Slack: the Web API client, posting a turn, ephemeral notes, and the outbox.

Web API calls go through slack_sdk's retry handlers (429 + Retry-After, connection errors, 5xx). When a
call still fails, the engine has already saved the conversation; the admin is told (ephemeral) and the
error code is logged — never message text, emails/UPNs or tokens.

The outbox makes a turn's answer survive the process: the messages a turn produced are written with the
conversation itself (one commit), then posted, then dropped with the inbox entry. A process killed in
between leaves the outbox behind, and whoever takes the entry over posts from it instead of running the
turn again. Each message carries Slack message metadata naming its entry and part, so on that second
attempt a message that did reach Slack before the kill is found in the thread (or DM) and not posted twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels.slack.core import BotCore, Job
from bot.channels.slack.ids import Place
from bot.events import Turn
from bot.redact import pseudonymise
from bot.render import blocks as bk
from bot.settings import Settings

log = logging.getLogger("scim_help.slack")

DEFAULT_API_URL = "https://slack.com/api/"
# Message metadata event type on every reply posted for an inbox entry.
REPLY_EVENT = "scim_help_reply"


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


def error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        try:
            return str(exc.response.get("error") or exc.response.status_code)
        except Exception:  # a malformed response must not hide the failure
            return "slack_api_error"
    return type(exc).__name__


@dataclass
class Outbox:
    """A turn's messages and where they go: what the outbox record holds."""

    place: Place
    messages: list[bk.Message]
    user: str | None = None

    def dump(self) -> str:
        return json.dumps(
            {
                "channel": self.place.channel,
                "thread_ts": self.place.thread_ts,
                "user": self.user,
                "messages": [{"blocks": m.blocks, "text": m.text} for m in self.messages],
            }
        )  # ASCII: a lone surrogate from a platform id stays an escape, storable anywhere

    @classmethod
    def load(cls, raw: str) -> Outbox:
        data = json.loads(raw)
        messages = [bk.Message(m["blocks"], m["text"]) for m in data["messages"]]
        return cls(Place(data["channel"], data.get("thread_ts")), messages, data.get("user"))


class Posting(BotCore):
    def _render(self, turn: Turn) -> list[bk.Message]:
        handoff = bool(self.escalation_channel) and turn.phase == "closed" and turn.ticket is not None
        return bk.render_replies(
            turn.replies,
            conversation_id=turn.conversation_id,
            support_url=self.conversations.support_url,
            portal_label=self.portal_label,
            handoff=handoff,
            handoff_label=self.conversations.say("handoff-button"),
        )

    async def _deliver(self, outbox: Outbox, job: Job | None, respond: Any = None) -> None:
        """Post the messages in order; on a second attempt skip those Slack already has."""
        for part, message in enumerate(outbox.messages):
            try:
                if job is not None and job.recovering and await self._posted_before(outbox.place, job, part):
                    continue
                await self._post(outbox.place, message, job=job, part=part)
            except SlackClientError as exc:
                # Later messages would arrive out of order or without context: stop here.
                await self._failed(exc, outbox.place, outbox.user, respond, what="chat.postMessage")
                return

    async def _post(self, place: Place, message: bk.Message, *, job: Job | None = None, part: int | str = 0) -> str:
        kwargs: dict[str, Any] = {"channel": place.channel, "blocks": message.blocks, "text": message.text, "unfurl_links": False, "unfurl_media": False}
        if place.thread_ts:
            kwargs["thread_ts"] = place.thread_ts
        if job is not None:
            kwargs["metadata"] = {"event_type": REPLY_EVENT, "event_payload": {"entry": job.entry.id, "part": str(part)}}
        response = await self.client.chat_postMessage(**kwargs)
        return str(response.get("ts") or "")

    async def _posted_before(self, place: Place, job: Job, part: int | str) -> str | None:
        """The ts of a message posted for this entry and part by an earlier attempt, if Slack has one."""
        try:
            if place.thread_ts:
                response = await self.client.conversations_replies(channel=place.channel, ts=place.thread_ts, include_all_metadata=True, limit=200)
            else:
                response = await self.client.conversations_history(channel=place.channel, include_all_metadata=True, limit=100)
        except SlackClientError as exc:
            # Without history access, posting again risks a repeat; not posting risks silence. Post.
            log.warning("slack history lookup failed", extra={"error": error_code(exc)})
            return None
        for message in response.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == REPLY_EVENT and payload.get("entry") == job.entry.id and str(payload.get("part")) == str(part):
                return str(message.get("ts") or "") or "posted"
        return None

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
        code = error_code(exc)
        log.error("slack api call failed", extra={"method": what, "error": code, "user": pseudonymise(user)})
        await self._tell(
            place,
            user,
            self.conversations.say("channel-undelivered", code=code),
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
            except Exception as exc:
                log.warning("slack ephemeral notice failed", extra={"error": error_code(exc)})
        if respond is not None:
            try:
                await self._respond(respond, note)
            except Exception as exc:
                log.warning("slack response_url notice failed", extra={"error": error_code(exc)})
