"""The Slack channel: slack-bolt's listeners on the shared aiohttp server (HTTP mode) or over Socket Mode,
behind a durable inbox.

    ids.py        conversation ids and places (pure)
    payload.py    what a signed request may look like; what makes it a repeat
    inbox.py      record → acknowledge → process (here, or in processor processes); leases and taking
                  over a dead process's requests
    listeners.py  where the bot speaks; the turn and its outbox
    posting.py    the Web API client, posting, ephemeral notes, the outbox
    modal.py      the escalation hand-off modal and its post
    app.py        SlackBot, the HTTP endpoint, Socket Mode, `channel`: the one the settings ask for, and
                  `processor`: what a processor process runs

Correctness under Slack's delivery rules
- Requests are verified (signing secret, 5-minute timestamp window) before anything parses them.
- A request is acknowledged only once it is recorded in the store's inbox; a process killed after the
  ack leaves it there, and another process (or the restarted one) processes it. Slack's retries of an
  event (same `event_id`) and a signed request replayed inside its window (same timestamp and
  signature: a slash command sent three times) are recorded once.
- A turn's messages are committed with the conversation (the outbox) before they are posted, and carry
  message metadata, so a request taken over after a kill is answered once: from the outbox, skipping
  what Slack already has.
- A message that arrives both as `message` and `app_mention` is answered once (the mention is; the
  delivery keys are also written with the turn).

Conversation ids: `slack:{team}:{channel}:{thread_ts}` for a thread, `slack:{team}:{dm channel}:dm` for a
DM, `slack:{team}:{channel}:slash:{user}` for the picker a bare `/scim-help` shows. State lives in the
store, so conversations survive restarts.
"""

from bot.channels.slack.app import (
    EVENTS_PATH,
    InboxSocketModeHandler,
    SlackBot,
    SlackBotKey,
    SlackEvents,
    SlackSocket,
    channel,
    processor,
    start_socket_mode,
)
from bot.channels.slack.ids import (
    ConversationRef,
    Place,
    dm_conversation,
    parse_conversation,
    slash_conversation,
    strip_mention,
    thread_conversation,
)
from bot.channels.slack.listeners import COMMAND, LAST_RECORD
from bot.channels.slack.modal import validate_submission
from bot.channels.slack.payload import check_payload, dedupe_key
from bot.channels.slack.posting import DEFAULT_API_URL, make_client

__all__ = [
    "COMMAND",
    "DEFAULT_API_URL",
    "EVENTS_PATH",
    "LAST_RECORD",
    "ConversationRef",
    "InboxSocketModeHandler",
    "Place",
    "SlackBot",
    "SlackBotKey",
    "SlackEvents",
    "SlackSocket",
    "channel",
    "check_payload",
    "dedupe_key",
    "dm_conversation",
    "make_client",
    "parse_conversation",
    "processor",
    "slash_conversation",
    "start_socket_mode",
    "strip_mention",
    "thread_conversation",
    "validate_submission",
]
