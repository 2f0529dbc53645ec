"""A conversation the store no longer has, told apart from a new one.

After a store loses conversations (Redis restarted without persistence, a TTL ran out), the next message
may be one that only makes sense inside a conversation: "yes", "not sure", the button of an old card.
Handled as a new conversation it reads as an off-topic message, and the admin is told it is not a SCIM
problem. `needs_conversation` recognises such a message; `lost_turn` is the answer that says what
happened instead.

This is the hook between the channels/runtime and the dialogue: `Runtime.handle` calls it before the
engine, with one extra store read only for messages that need a conversation. An engine that keeps its own
"was there a conversation" signal can call `needs_conversation` itself.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

from bot.events import Choice, Incoming, Reply, Turn

LOST = (
    "I don't have our earlier conversation any more: it expired, or it was lost when the service was "
    "restarted. Sorry about that. Please describe the problem again, or pick the symptom you see."
)

# Replies that answer a question and mean nothing on their own.
_ANSWERS = {
    "yes", "yeah", "yep", "yup", "y", "sure", "correct", "right", "ok", "okay", "k", "affirmative",
    "no", "nope", "nah", "n", "not really", "no it doesnt", "no it does not", "yes it does", "it does",
    "it doesnt", "it does not", "it did", "it didnt", "it did not", "yes it did", "no it didnt",
    "not sure", "unsure", "dunno", "i dont know", "idk", "no idea", "maybe",
    "skip", "none", "n a", "na", "nothing", "same", "same error", "same thing", "still the same",
    "done", "fixed", "fixed it", "it worked", "that worked", "worked", "that fixed it", "it works now",
    "still broken", "still not working", "didnt work", "did not work", "doesnt work", "does not work",
    "1", "2", "3", "4", "5",
}
# Choices that start something by themselves: a symptom id (any pack symptom) or a command.
_STARTS = ("cmd:",)
_WORDS = re.compile(r"[a-z0-9]+")


def needs_conversation(msg: Incoming, symptom_ids: Container[str]) -> bool:
    """True for a message addressed to the bot that only makes sense as an answer inside a conversation.
    (An ambient helpdesk-channel message is never one: it may be anybody's "yes".)"""
    if not msg.directed:
        return False
    if msg.choice:
        choice = msg.choice.strip()
        return not (choice.startswith(_STARTS) or choice in symptom_ids)
    words = _WORDS.findall((msg.text or "").lower().replace("'", "").replace("’", ""))
    return 0 < len(words) <= 5 and " ".join(words) in _ANSWERS


def lost_turn(msg: Incoming, symptoms: Iterable[tuple[str, str]]) -> Turn:
    """What to answer instead: the conversation is gone, start again (symptom buttons)."""
    choices = [Choice(id=sid, label=title) for sid, title in symptoms]
    return Turn(conversation_id=msg.conversation_id, replies=[Reply(kind="info", text=LOST, choices=choices)], phase="triage")
