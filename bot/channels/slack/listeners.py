"""Where the bot speaks, and the turn: bolt's listeners for messages, mentions, `/scim-help` and buttons.

- `app_mention` anywhere it is a member: answered in a thread (the mention is stripped).
- Top-level messages in the helpdesk channels (`SCIM_HELP_SLACK_CHANNELS`): passed to the engine as
  *ambient* (`directed=False`); the engine stays silent unless it is confident the message is a SCIM
  provisioning problem, and then the bot answers in a thread under it.
- Replies inside a thread the bot already owns (a conversation is stored for it, or the thread's root is
  the bot's own message) continue that conversation, in any channel. Other threads are left alone.
- DMs (`channel_type == "im"`): always answered. One conversation per DM channel; when the admin writes in
  a thread inside the DM the answer goes into that thread, but it is the same conversation.
- `/scim-help`: no text → an ephemeral greeting with the symptom picker; `help`, `ticket`, `reset` →
  ephemeral help / ticket draft / start over for the admin's latest conversation in that channel;
  any other text → starts a conversation in a new thread of that channel (in a DM: continues the DM).
- Never: other bots, the bot itself, edits/deletions/joins and other message subtypes.

A button is handled once: `slack-action:{message ts}:{action_id}` is claimed, and the clicked message is
updated at once to show the answer with its buttons removed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.channels.slack.core import CURRENT_JOB, OUTBOX, Job, retry_later
from bot.channels.slack.ids import (
    Place,
    dm_conversation,
    parse_conversation,
    slash_conversation,
    strip_mention,
    team_of,
    thread_conversation,
)
from bot.channels.slack.modal import Escalation
from bot.channels.slack.posting import Outbox, error_code
from bot.events import Incoming, Turn
from bot.redact import pseudonymise
from bot.render import blocks as bk
from bot.service import StoreUnavailable

log = logging.getLogger("scim_help.slack")

COMMAND = "/scim-help"
LAST_RECORD = "slack-last"

# Message subtypes written by a person that the bot may answer; everything else (bot_message,
# message_changed, message_deleted, channel_join, ...) is ignored.
_HUMAN_SUBTYPES = {None, "file_share", "thread_broadcast"}
# Errors that mean "the bot cannot post in this channel": the conversation moves to a DM.
_CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "cant_post_to_channel"}


class Listeners(Escalation):
    def register(self, app: Any) -> None:
        # bolt tries listeners in this order, building each one's arguments: the most frequent first.
        app.event("message")(self._on_message)
        app.event("app_mention")(self._on_mention)
        app.command(COMMAND)(self._on_command)
        app.action(re.compile("^" + re.escape(bk.CHOICE_PREFIX)))(self._on_choice)
        app.action(re.compile("^" + re.escape(bk.HANDOFF_PREFIX)))(self._on_handoff)
        app.action(re.compile("^" + re.escape(bk.LINK_PREFIX)))(self._on_link)
        app.view(bk.ESCALATION_CALLBACK)(self._on_submit)

    # ---- events ---------------------------------------------------------------------------------

    @staticmethod
    def _is_human(event: dict[str, Any], bot_user_id: str | None) -> bool:
        if event.get("bot_id") or event.get("bot_profile"):
            return False
        if event.get("subtype") not in _HUMAN_SUBTYPES:
            return False
        user = event.get("user")
        return bool(user) and user != bot_user_id

    @staticmethod
    def _delivery_keys(body: dict[str, Any], event: dict[str, Any]) -> tuple[str, ...]:
        """What makes a delivery a repeat: Slack retries carry the same event_id, and a message can arrive
        both as `app_mention` and as `message` (same ts). The engine checks them with the conversation's
        lock and writes them with the turn; a repeat gets a silent turn."""
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
        team = team_of(body, context, event)
        thread_ts = event.get("thread_ts") or event.get("ts")
        if not thread_ts:
            return  # no timestamp: nothing to thread the answer under (never a "…:None" conversation)
        conv = thread_conversation(team, channel, str(thread_ts))
        text = strip_mention(event.get("text") or "", bot_user)
        msg = Incoming(channel="slack", conversation_id=conv, user_id=event["user"], text=text, directed=True, once=self._delivery_keys(body, event))
        await self._converse(msg, Place(channel, thread_ts), user=event["user"])

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: dict[str, Any]) -> None:
        bot_user = context.get("bot_user_id")
        if not self._is_human(event, bot_user):
            return
        channel = str(event.get("channel") or "")
        ts = str(event.get("ts") or "")
        thread_ts = event.get("thread_ts")
        in_thread = bool(thread_ts) and thread_ts != ts
        text = event.get("text") or ""
        team = team_of(body, context, event)
        if event.get("channel_type") == "im" or channel.startswith("D"):
            conv, place, directed = dm_conversation(team, channel), Place(channel, thread_ts if in_thread else None), True
        else:
            if bot_user and f"<@{bot_user}" in text:
                return  # the app_mention event answers it
            if in_thread:
                conv = thread_conversation(team, channel, str(thread_ts))
                state = await self.conversations.state(conv)
                if state is None and not (bot_user and event.get("parent_user_id") == bot_user):
                    return  # somebody else's thread
                # Our thread: mid-conversation every reply is for us; after the end, only a clear new
                # SCIM problem (or the feedback answer) gets a response. A thread under our own message
                # whose conversation the store lost is ours too (the runtime says it was lost).
                directed = state is None or state.active
                place = Place(channel, thread_ts)
            elif channel in self.settings.slack_channel_ids and ts:
                conv, place, directed = thread_conversation(team, channel, ts), Place(channel, ts), False
            else:
                return
        msg = Incoming(channel="slack", conversation_id=conv, user_id=event["user"], text=text, directed=directed, once=self._delivery_keys(body, event))
        await self._converse(msg, place, user=event["user"])

    # ---- slash command --------------------------------------------------------------------------

    async def _on_command(self, ack: Any, body: dict[str, Any], command: dict[str, Any], respond: Any, context: dict[str, Any]) -> None:
        await ack()
        text = " ".join((command.get("text") or "").split())
        sub = text.lower()
        user, channel = command["user_id"], command["channel_id"]
        team = command.get("team_id") or team_of(body, context, {})
        log.info("slack command", extra={"user": pseudonymise(user), "sub": sub if sub in ("help", "ticket", "reset", "") else "text"})
        try:
            if sub in ("help", "ticket", "reset") or not text:
                await self._command_ephemeral(sub, team, channel, user, respond)
                return
            started = await self._start(team, channel, user, respond)
            if started is not None:
                conv, place = started
                msg = Incoming(channel="slack", conversation_id=conv, user_id=user, text=text, directed=True)
                await self._converse(msg, place, user=user, respond=respond)
        except SlackClientError as exc:
            await self._failed(exc, None, user, respond, what="command")
        except Exception as exc:  # tell the admin instead of failing silently
            log.error("slack command failed", extra={"error": type(exc).__name__, "user": pseudonymise(user)})
            await self._respond(respond, bk.notice(self.conversations.say("channel-error")))

    async def _command_ephemeral(self, sub: str, team: str, channel: str, user: str, respond: Any) -> None:
        """`/scim-help` alone, `help`, `ticket`, `reset`: answered privately via the response_url."""
        conv = None if not sub else await self._last_conversation(team, channel, user)
        if conv is None and sub == "ticket":
            await self._respond(respond, bk.notice(self.conversations.say("channel-no-conversation", command=COMMAND)))
            return
        if conv is None:
            conv, words = await self._slash_home(team, channel, user), ("help" if sub == "help" else "")
        else:
            words = {"help": "help", "ticket": "show ticket", "reset": "start over"}[sub]
        turn = await self.conversations.handle(Incoming(channel="slack", conversation_id=conv, user_id=user, text=words, directed=True))
        await self._respond_turn(respond, turn)

    async def _slash_home(self, team: str, channel: str, user: str) -> str:
        if channel.startswith("D"):
            return dm_conversation(team, await self._open_dm(user))
        return slash_conversation(team, channel, user)

    async def _last_conversation(self, team: str, channel: str, user: str) -> str | None:
        if channel.startswith("D"):
            channel = await self._open_dm(user)
            return await self.conversations.get_record(LAST_RECORD, f"{team}:{channel}:{user}") or dm_conversation(team, channel)
        return await self.conversations.get_record(LAST_RECORD, f"{team}:{channel}:{user}")

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
        and says so. A second attempt at the same request finds the root its first attempt posted."""
        if channel.startswith("D"):
            dm = await self._open_dm(user)
            return dm_conversation(team, dm), Place(dm, None)
        job = CURRENT_JOB.get()
        if job is not None and job.recovering:
            root_ts = await self._posted_before(Place(channel), job, "root")
            if root_ts:
                return thread_conversation(team, channel, root_ts), Place(channel, root_ts)
        root = bk.notice_markup(f":wrench: {bk.mention(user)} is troubleshooting SCIM provisioning with me — follow along in the thread.")
        try:
            ts = await self._post(Place(channel), root, job=job, part="root")
        except SlackApiError as exc:
            if error_code(exc) not in _CANNOT_POST:
                raise
            dm = await self._open_dm(user)
            await self._respond(respond, bk.notice_markup(f"I can't post in this channel (invite me with `/invite @scim-help`), so I'll continue in our DM: {bk.channel_link(dm)}."))
            return dm_conversation(team, dm), Place(dm, None)
        return thread_conversation(team, channel, ts), Place(channel, ts)

    # ---- buttons --------------------------------------------------------------------------------

    async def _on_link(self, ack: Any) -> None:
        await ack()  # a URL button: Slack opens the link, there is nothing to do

    async def _on_choice(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: dict[str, Any]) -> None:
        await ack()
        container, message = body.get("container") or {}, body.get("message") or {}
        message_ts = str(container.get("message_ts") or "")
        action_id, clicked_block = str(action.get("action_id") or ""), str(action.get("block_id") or "")
        user = (body.get("user") or {}).get("id")
        claim_ts = message_ts or str(action.get("action_ts") or "")
        # One turn per button (double clicks, Slack retries), and one answer per question: a fast click
        # on a second button of the same block, before its buttons disappear, is dropped too. The keys are
        # claimed with the turn itself (Incoming.once, one commit), so a click whose turn failed — a store
        # outage, a worker killed — is answered when its inbox entry is processed again, not dropped as
        # already handled.
        once: tuple[str, ...] = (f"slack-action:{claim_ts}:{action_id}", f"slack-answer:{claim_ts}:{clicked_block.split('|', 1)[0]}")
        team = team_of(body, context, {})
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        value = str(action.get("value") or "")
        ephemeral = bool(container.get("is_ephemeral"))
        container_thread = container.get("thread_ts") or message.get("thread_ts")
        conv = bk.conversation_from_block_id(clicked_block)
        if conv is None and channel and message_ts:
            conv = thread_conversation(team, channel, container_thread) if container_thread else (dm_conversation(team, channel) if channel.startswith("D") else None)
        ref = parse_conversation(conv)
        if conv is None or ref is None or ref.team != team or not value or not user:
            log.warning("slack click without a conversation", extra={"user": pseudonymise(user)})
            return
        label = ((action.get("text") or {}).get("text")) or value
        if ref.kind == "slash":
            # The picker of a bare /scim-help: choosing a symptom starts a real conversation (a new DM
            # thread), so that start is claimed first and happens once, and the picker shows the choice.
            if not await self._claim(*once):
                log.info("slack click already handled", extra={"user": pseudonymise(user)})
                return
            await self._mark_answered(channel, message_ts, message, clicked_block, label, user, ephemeral, respond)
            started = await self._start(team, ref.channel, user, respond)
            if started is None:
                return
            conv, place = started
            once = ()
        elif ref.kind == "dm":
            place = Place(ref.channel, container_thread if (not ephemeral and channel == ref.channel) else None)
        else:
            place = ref.place or Place(ref.channel)
        msg = Incoming(channel="slack", conversation_id=conv, user_id=user, choice=value, directed=True, once=once)
        turn = await self._converse(msg, place, user=user, respond=respond)
        if once and turn is not None and not turn.duplicate:
            # The answer shown and the buttons removed once the click counted: a quick second answer to the
            # same question, dropped by the engine, leaves the first one on screen.
            await self._mark_answered(channel, message_ts, message, clicked_block, label, user, ephemeral, respond)
        elif once and turn is not None:
            log.info("slack click already handled", extra={"user": pseudonymise(user)})

    async def _mark_answered(
        self, channel: str, ts: str, message: dict[str, Any], block_id: str, label: str, user: str | None, ephemeral: bool, respond: Any
    ) -> None:
        try:
            if message.get("blocks"):
                new_blocks = bk.answered(message["blocks"], block_id, label, user)
            else:
                new_blocks = [bk.context(":white_check_mark: " + self.conversations.say("you-chose", label=f"*{bk.escape(bk.plain(label))}*"))]
            text = message.get("text") or self.conversations.say("you-chose", label=bk.escape(bk.plain(label)))
            if ephemeral or not ts:
                await respond(blocks=new_blocks, text=text, replace_original=True)
            else:
                await self.client.chat_update(channel=channel, ts=ts, blocks=new_blocks, text=text)
        except Exception as exc:  # the answer still counts; only the cosmetic update failed
            log.warning("slack message update failed", extra={"error": error_code(exc)})

    # ---- the conversation ------------------------------------------------------------------------

    async def _converse(self, msg: Incoming, place: Place, *, user: str | None, respond: Any = None) -> Turn | None:
        """One turn, then its messages. For an inbox entry the messages are written to the outbox with
        the conversation (one commit) before they are posted, so a process killed in between leaves them
        to be posted by whoever takes the entry over; a turn that cannot reach the store is left for a
        later attempt instead of answered with an apology."""
        # From the message's own fields: Incoming has replaced any lone surrogate the event carried.
        msg.remember = self._remember(msg.conversation_id, msg.user_id)
        job = CURRENT_JOB.get()
        async with self._serial(msg.conversation_id):
            try:
                turn, outbox = await self._turn(msg, place, user, job)
            except (StoreUnavailable, TimeoutError) as exc:
                if retry_later():
                    log.warning("slack turn postponed: store unavailable", extra={"conversation": msg.conversation_id, "error": type(exc).__name__})
                    return None
                self._turn_failed(msg, exc, user)
                await self._tell(place, user, self.conversations.say("channel-error"), respond)
                return None
            except Exception as exc:
                self._turn_failed(msg, exc, user)
                await self._tell(place, user, self.conversations.say("channel-error"), respond)
                return None
            if outbox is not None:
                await self._deliver(outbox, job, respond)
            return turn

    async def _turn(self, msg: Incoming, place: Place, user: str | None, job: Job | None) -> tuple[Turn, Outbox | None]:
        async with self.conversations.deferred() as deferred:
            turn = await self.conversations.handle(msg)
            outbox = None if turn.silent else Outbox(place, self._render(turn), user)
            records = [(OUTBOX, job.entry.id, outbox.dump())] if (job is not None and outbox is not None and outbox.messages) else []
            await deferred.commit(records)
        if records and job is not None:
            job.outboxed = True
        return turn, outbox

    @staticmethod
    def _turn_failed(msg: Incoming, exc: BaseException, user: str | None) -> None:
        log.error("engine turn failed", extra={"conversation": msg.conversation_id, "error": type(exc).__name__, "user": pseudonymise(user)})
