"""What the bot does with an authenticated activity: the Teams conversation <-> the channel-neutral engine.

1. Redelivered messages are dropped: the activity id (and for a click, the card and choice) are the
   turn's delivery keys (`Incoming.once`), claimed with the conversation's lock and written with its
   state, like Slack's, so a worker killed mid-turn leaves them free and the redelivery is answered. The
   bot remembers where every Teams channel it hears from can be reached (for the escalation hand-off).
2. Messages: personal chats always get an answer; group chats and channels only when the bot is
   @mentioned (or for a click on one of its cards). A card click arrives as a message with empty text
   and `value` carrying the choice id; clicks are de-duplicated per (conversation, card, choice) and
   the clicked card is updated to show the chosen answer instead of its buttons.
3. Replies go out as Adaptive Cards (plain text on channels without cards). When a conversation ends in
   a support ticket and `SCIM_HELP_TEAMS_ESCALATION_CHANNEL` is set, the ticket is also posted to that
   channel with a link back.
"""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass

from bot.channels.teams import activity as act
from bot.channels.teams.connector import Connector, message
from bot.events import Incoming, Reply, Turn
from bot.redact import pseudonymise
from bot.render import cards
from bot.service import Conversations, StoreUnavailable

log = logging.getLogger("scim_help.teams")

REF_KIND = "teams-ref"
WELCOME_TTL = 600  # Teams sends both installationUpdate and conversationUpdate on install: greet once
CARD_CHANNELS = {"msteams", "emulator", "webchat", "directline", "agents"}
UPDATE_CHANNELS = {"msteams", "emulator"}  # channels where the bot can edit a card it sent

POST_FAILED = (
    "I couldn't post this ticket to the support team's Teams channel just now. Please open the "
    "case yourself with the ticket above."
)


@dataclass
class Delivery:
    """One authenticated activity and where its replies go."""

    activity: dict
    service_url: str

    @property
    def channel_id(self) -> str | None:
        value = self.activity.get("channelId")
        return value if isinstance(value, str) else None

    @property
    def activity_id(self) -> str | None:
        value = self.activity.get("id")
        return value if isinstance(value, str) and value else None

    @property
    def raw_conversation(self) -> str:
        return act.raw_conversation_id(self.activity) or ""


class TeamsBot:
    def __init__(self, conversations: Conversations, connector: Connector, escalation_channel: str | None) -> None:
        self.conversations = conversations
        self.connector = connector
        self.ttl = conversations.settings.conversation_ttl
        self.cards = conversations.side("teams-card")
        self.escalation_channel = escalation_channel
        self._refs_written: dict[str, str] = {}

    @property
    def support_url(self) -> str | None:
        return self.conversations.support_url

    # -- every activity ----------------------------------------------------------------------------

    async def on_activity(self, turn: Delivery) -> int:
        """Handle the activity; the HTTP status for Bot Framework (201, or 501 for an unknown invoke)."""
        activity = turn.activity
        kind = activity.get("type")
        try:
            await self._remember_channel(turn)
            if kind == "message":
                await self.on_message(turn)
            elif kind == "conversationUpdate":
                added = activity.get("membersAdded")
                bot_id = act.recipient_id(activity)
                if bot_id and isinstance(added, list) and any(isinstance(m, dict) and m.get("id") == bot_id for m in added):
                    await self._welcome(turn)
            elif kind == "installationUpdate" and activity.get("action") in ("add", "add-upgrade"):
                await self._welcome(turn)
            elif kind == "invoke":
                return 501  # Bot Framework's "not implemented": the bot answers no invokes
        except Exception as exc:
            await self._turn_failed(turn, exc)
        return 201

    async def _turn_failed(self, turn: Delivery, error: Exception) -> None:
        activity = turn.activity
        # The exception's message may quote what the admin wrote: log its type and frames only.
        log.error(
            "teams: turn failed (%s)\n%s",
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
            extra=act.log_extra(activity),
        )
        if activity.get("type") != "message":
            return
        if isinstance(error, StoreUnavailable):
            text = "I can't reach my conversation storage right now — please try again in a minute."
        else:
            text = "Sorry — something went wrong on my side. Please try again, or say start over."
        try:
            await self.connector.send(turn.service_url, turn.raw_conversation, message(text=text, incoming=activity), reply_to=turn.activity_id)
        except Exception as exc:
            log.error("teams: could not send the error notice (%s)", type(exc).__name__, extra=act.log_extra(activity))

    async def _remember_channel(self, turn: Delivery) -> None:
        """Keep where every Teams channel the bot hears from is, so it can post there later. Stored under
        the conversation's base id and the channel's id (`channelData.channel.id`): Teams makes them equal,
        the Agents Playground does not, and either may be what an admin configured."""
        activity = turn.activity
        if turn.channel_id != "msteams" or act.scope_of(activity) != "channel" or not turn.raw_conversation:
            return
        base = turn.raw_conversation.split(";", 1)[0]
        tenant = act.tenant_of(activity)
        ref = {
            "serviceUrl": turn.service_url,
            "conversation": base,
            "tenantId": None if tenant == "-" else tenant,
            "bot": act.recipient_id(activity),
        }
        data = json.dumps(ref, sort_keys=True)
        for key in {base, act.channel_data_channel_id(activity) or base}:
            if self._refs_written.get(key) == data:
                continue
            self._refs_written[key] = data
            await self.conversations.put_record(REF_KIND, key, data)
            log.info("teams: stored channel reference", extra=act.log_extra(activity, ref=pseudonymise(key)))

    async def _welcome(self, turn: Delivery) -> None:
        if not turn.raw_conversation:
            return
        cid = act.conversation_id(turn.activity)
        if not await self.conversations.claim(f"teams-welcome:{cid}", ttl=WELCOME_TTL):
            return
        result = await self.conversations.handle(Incoming(channel="teams", conversation_id=cid, user_id=act.user_id(turn.activity)))
        await self._send(turn, cid, list(result.replies))

    # -- messages --------------------------------------------------------------------------------------

    async def on_message(self, turn: Delivery) -> None:
        activity = turn.activity
        if not turn.raw_conversation:
            return
        choice = cards.choice_from_value(activity.get("value"))
        text: str | None = None
        if choice is None:
            typed = activity.get("text")
            if activity.get("value") is not None and not (isinstance(typed, str) and typed.strip()):
                return  # a submit from some other card: not ours
            if act.scope_of(activity) != "personal" and not act.mentions_bot(activity):
                return  # group chats and channels: only when addressed
            text = act.clean_text(activity)
        cid = act.conversation_id(activity)
        reply_to = activity.get("replyToId") if isinstance(activity.get("replyToId"), str) else None
        once = [f"teams-activity:{turn.channel_id}:{turn.raw_conversation}:{turn.activity_id}"] if turn.activity_id else []
        if choice is not None:
            once.append(f"teams-click:{cid}:{reply_to or '-'}:{choice}")
        result = await self.conversations.handle(
            Incoming(channel="teams", conversation_id=cid, user_id=act.user_id(activity), text=text, choice=choice, once=tuple(once))
        )
        if result.duplicate:
            log.info("teams: repeated activity or click ignored", extra=act.log_extra(activity))
            return
        if choice is not None:
            await self._mark_answered(turn, cid, reply_to, choice)
        if result.silent:
            return
        replies = list(result.replies)
        note = await self._maybe_escalate(turn, cid, result)
        if note is not None:
            at = next((i + 1 for i, r in enumerate(replies) if r.kind == "ticket"), len(replies))
            replies.insert(at, note)
        await self._send(turn, cid, replies)

    async def _mark_answered(self, turn: Delivery, cid: str, reply_to: str | None, choice: str) -> None:
        """Replace the clicked buttons with the chosen answer, so the card cannot be answered twice."""
        if not reply_to or turn.channel_id not in UPDATE_CHANNELS:
            return
        try:
            raw = await self.cards.load(cid, reply_to)
            if not raw:
                return
            updated = cards.mark_answered(json.loads(raw), choice)
            if updated is None:
                return
            update = message(cards.attachment(updated), incoming=turn.activity)
            await self.connector.update(turn.service_url, turn.raw_conversation, reply_to, update)
            await self.cards.save(cid, json.dumps(updated), reply_to)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.warning("teams: could not update the clicked card (%s)", type(exc).__name__, extra=act.log_extra(turn.activity))

    async def _send(self, turn: Delivery, cid: str, replies: list[Reply]) -> None:
        if not replies:
            return
        activity = turn.activity
        if turn.channel_id not in CARD_CHANNELS:
            for text in cards.render_texts(replies, support_url=self.support_url):
                await self.connector.send(turn.service_url, turn.raw_conversation, message(text=text, incoming=activity), reply_to=turn.activity_id)
            return
        for attachment in cards.render_replies(replies, support_url=self.support_url):
            sent = await self.connector.send(turn.service_url, turn.raw_conversation, message(attachment, incoming=activity), reply_to=turn.activity_id)
            if sent and turn.channel_id in UPDATE_CHANNELS and cards.has_choices(attachment["content"]):
                await self.cards.save(cid, json.dumps(attachment["content"]), sent)

    # -- escalation --------------------------------------------------------------------------------------

    async def _maybe_escalate(self, turn: Delivery, cid: str, result: Turn) -> Reply | None:
        """Post a finished ticket to the escalation channel once per episode; returns a note for the admin."""
        if not self.escalation_channel or result.phase != "closed":
            return None
        ticket_reply = next((r for r in result.replies if r.kind == "ticket" and r.ticket is not None), None)
        if ticket_reply is None:
            return None
        state = await self.conversations.state(cid)
        if state is None or state.outcome != "escalated":
            return None
        if not await self.conversations.claim(f"teams-escalation:{cid}:{state.episode}", ttl=self.ttl):
            return None
        activity = turn.activity
        raw = await self.conversations.get_record(REF_KIND, self.escalation_channel)
        if not raw:
            log.warning(
                "teams: cannot hand the ticket to the escalation channel: no conversation reference stored for it "
                "yet (add the app to that channel's team and @mention the bot there once)",
                extra=act.log_extra(activity, escalation_channel=pseudonymise(self.escalation_channel)),
            )
            return Reply(kind="info", text=self.conversations.say("handoff-no-channel"))
        where, link = act.conversation_link(activity)
        posted = cards.render_escalation(
            ticket_reply, support_url=self.support_url, raised_by=act.user_name(activity), where=where, link=link, say=self.conversations.say
        )
        try:
            service_url, channel = _reference(raw)
            for attachment in posted:
                # A new post in the channel (its base id, no `;messageid=`), not a reply in a thread.
                await self.connector.send(service_url, channel, message(attachment))
        except Exception as exc:
            log.error("teams: posting the ticket to the escalation channel failed (%s)", type(exc).__name__, extra=act.log_extra(activity))
            return Reply(kind="info", text=POST_FAILED)
        log.info("teams: ticket posted to the escalation channel", extra=act.log_extra(activity))
        return Reply(kind="info", text=self.conversations.say("handoff-posted"))


def _reference(raw: str) -> tuple[str, str]:
    """(service URL, channel id) of a stored channel reference; also reads the botbuilder-era format,
    whose `conversation` is an object."""
    ref = json.loads(raw)
    conv = ref["conversation"]
    channel = conv["id"] if isinstance(conv, dict) else conv
    service_url = ref["serviceUrl"]
    if not isinstance(channel, str) or not isinstance(service_url, str):
        raise ValueError("malformed channel reference")
    return service_url.rstrip("/"), channel.split(";", 1)[0]
