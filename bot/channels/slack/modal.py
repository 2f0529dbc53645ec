"""The escalation hand-off: *Review & send to helpdesk* opens a modal prefilled from the ticket draft;
*Send* posts the ticket to the escalation channel with a link back to the thread, and replies in the
thread with the text to paste into Cato Support plus a button to the portal.

Everything the admin typed into the modal is user-provided: `bot.render.blocks` escapes it (no links,
mentions or mrkdwn links injected into the helpdesk's channel).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackClientError

from bot.channels.slack.core import retry_later
from bot.channels.slack.ids import ConversationRef, Place, parse_conversation, team_of
from bot.channels.slack.posting import Posting, error_code
from bot.events import Ticket
from bot.redact import find_emails, pseudonymise, scrub_secrets
from bot.render import blocks as bk
from bot.render.text import Say
from bot.service import StoreUnavailable

if TYPE_CHECKING:
    from bot.service import Conversations

log = logging.getLogger("scim_help.slack")


class Escalation(Posting):
    async def _on_handoff(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: dict[str, Any]) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        conv = bk.conversation_from_block_id(action.get("block_id"))
        ref = parse_conversation(conv)
        if conv is None or ref is None or ref.team != team_of(body, context, {}):
            return
        state = await self.conversations.state(conv)
        if state is None:
            await self._tell(None, user, self.conversations.say("channel-expired"), respond)
            return
        ticket = self.conversations.draft_ticket(state)
        container, message = body.get("container") or {}, body.get("message") or {}
        meta = {
            "c": conv,
            "ch": container.get("channel_id"),
            "ts": None if container.get("is_ephemeral") else container.get("message_ts"),
            "th": container.get("thread_ts") or message.get("thread_ts"),
            "d": _digest(ticket.body),
        }
        view = bk.escalation_modal(ticket, private_metadata=json.dumps(meta), channel_label="the helpdesk channel", say=self.conversations.say)
        try:
            await self.client.views_open(trigger_id=body.get("trigger_id"), view=view)
        except SlackClientError as exc:
            await self._failed(exc, ref.place, user, respond, what="views.open")

    async def _on_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]) -> None:
        data, errors = validate_submission(view_values(view), self.conversations.say)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = (body.get("user") or {}).get("id")
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        conv = meta.get("c") if isinstance(meta, dict) else None
        ref = parse_conversation(conv)
        if conv is None or ref is None or ref.team != team_of(body, context, {}):
            return
        place = ref.place or Place(ref.channel)
        if ref.kind == "dm" and meta.get("th"):
            place = Place(ref.channel, meta["th"])
        try:
            state = await self.conversations.state(conv)
        except (StoreUnavailable, TimeoutError) as exc:
            if retry_later():  # nothing claimed yet: the inbox tries this submission again
                log.warning("slack submission postponed: store unavailable", extra={"error": type(exc).__name__})
                return
            raise
        ticket_text = data["body"]
        symptom = None
        if state is not None:
            draft = self.conversations.draft_ticket(state)
            symptom = draft.symptom_title
            if _digest(draft.body) == meta.get("d") and ticket_text.strip() == _clip_input(draft.body).strip():
                # The text was not edited: rebuild it so it agrees with the (possibly edited) fields.
                ticket_text = _rerender(self.conversations, state, draft, data)
        ticket_text = scrub_secrets(ticket_text)
        # Claimed only now, after the reads that can meet a store outage: an outage before this point leaves
        # the submission to the inbox's retry instead of marking it handled (Slack never sends it again).
        if not await self._claim(f"slack-view:{view.get('id')}"):
            return
        if await self._post_escalation(ref, meta, place, user, data, symptom, ticket_text):
            await self._confirm_handoff(place, user, ticket_text)

    async def _post_escalation(
        self, ref: ConversationRef, meta: dict[str, Any], place: Place, user: str | None, data: dict[str, Any], symptom: str | None, text: str
    ) -> bool:
        if not self.escalation_channel:
            return True
        permalink = await self._permalink(ref, meta)
        post = bk.escalation_post(
            user_id=user, account=data["account"], idp=data["idp"], upns=data["upns"], groups=data["groups"], symptom=symptom, body=text, permalink=permalink,
            say=self.conversations.say, labels=self.conversations.ticket_labels(),
        )
        try:
            await self.client.chat_postMessage(channel=self.escalation_channel, blocks=post.blocks, text=post.text, unfurl_links=False, unfurl_media=False)
        except SlackClientError as exc:
            await self._failed(exc, place, user, None, what="chat.postMessage(escalation)")
            return False
        log.info("slack escalation posted", extra={"conversation": meta.get("c"), "user": pseudonymise(user)})
        return True

    async def _confirm_handoff(self, place: Place, user: str | None, text: str) -> None:
        confirmation = bk.handoff_confirmation(
            body=text, support_url=self.conversations.support_url, portal_label=self.portal_label, channel_id=self.escalation_channel,
            say=self.conversations.say, guidance=self.conversations.escalation_guidance,
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
            log.warning("slack permalink failed", extra={"error": error_code(exc)})
            return None


# ---- modal input -------------------------------------------------------------------------------------


def view_values(view: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    state = ((view.get("state") or {}).get("values")) or {}
    for block_id, actions in state.items():
        element = (actions or {}).get("value") or {}
        out[block_id] = str(element.get("value") or "")
    return out


def submission_errors(body: dict[str, Any], say: Say) -> dict[str, str]:
    """For the HTTP handler: the errors Slack shows in the modal, answered before anything is recorded."""
    view = body.get("view") or {}
    if view.get("callback_id") != bk.ESCALATION_CALLBACK:
        return {}
    return validate_submission(view_values(view), say)[1]


def validate_submission(values: dict[str, str], say: Say) -> tuple[dict[str, Any], dict[str, str]]:
    """Clean the modal's fields; errors are keyed by input block id (Slack's `response_action: errors`)."""
    errors: dict[str, str] = {}
    account = " ".join(values.get("account", "").split())
    if not account:
        errors["account"] = say("handoff-account-required")
    elif len(account) > 120:
        errors["account"] = say("handoff-account-too-long", max=120)
    elif scrub_secrets(account) != account:
        errors["account"] = say("handoff-account-secret")
    idp = " ".join(values.get("idp", "").split())[:120]
    upns, upn_error = _upns(values.get("upns", ""), say)
    if upn_error:
        errors["upns"] = upn_error
    groups = [g.strip() for g in re.split(r"[\n;]+", values.get("groups", "")) if g.strip()]
    if len(groups) > 30:
        errors["groups"] = say("handoff-groups-too-many", max=30)
    elif any(len(g) > 120 for g in groups):
        errors["groups"] = say("handoff-group-too-long", max=120)
    body = values.get("body", "").strip()
    if not body:
        errors["body"] = say("handoff-body-empty")
    elif len(body) > bk.INPUT_MAX:
        errors["body"] = say("handoff-body-too-long", max=bk.INPUT_MAX)
    return {"account": account, "idp": idp, "upns": upns, "groups": groups, "body": body}, errors


def _upns(raw: str, say: Say) -> tuple[list[str], str | None]:
    upns: list[str] = []
    bad: list[str] = []
    for item in re.split(r"[\s,;]+", raw):
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
        return upns, say("handoff-upn-invalid", value=shown)
    if len(upns) > 50:
        return upns, say("handoff-upns-too-many", max=50)
    return upns, None


def _clip_input(text: str) -> str:
    return bk.clip(text, bk.INPUT_MAX)


def _digest(text: str) -> str:
    return hashlib.blake2s(_clip_input(text).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _rerender(conversations: Conversations, state: Any, draft: Ticket, data: dict[str, Any]) -> str:
    edited = draft.model_copy(
        update={"account": data["account"], "idp": data["idp"] or None, "upns": data["upns"], "groups": data["groups"]}
    )
    try:
        return conversations.ticket_markdown(edited, state)
    except Exception:  # fall back to the text the admin saw
        return data["body"]
