"""Microsoft Teams channel: Bot Framework activities at `/api/messages` <-> the channel-neutral engine.

The only package that imports the Teams SDK (`microsoft_teams.*`, a test checks it): the renderer
(`bot/render/cards.py`) produces plain Adaptive Card dicts and the engine, store and server know nothing
about Bot Framework.

- `endpoint`: the HTTP route — reading, authenticating, checking `serviceUrl`, admission — and `channel`.
- `intake`: bounded body reading and per-client limits, before any capacity is taken.
- `auth`: Bot Framework tokens and their signing keys, fetched in the background, never blocking.
- `service_url`: where replies may go, parsed once with the HTTP client's own parser.
- `bot`: what an activity means for the conversation (welcome, messages, clicks, the hand-off).
- `activity`: reading ids, mentions and text out of the activity JSON.
- `connector`: sending, updating and posting through the Teams SDK's `ApiClient`.

Conversation ids are `teams:{tenant}:{conversation.id}`; a channel reply chain's id keeps its
`;messageid=` suffix, so every thread is its own conversation. Logs carry pseudonymised ids only: no
message text, names, UPNs or tokens.
"""

from bot.channels.teams.activity import clean_text, conversation_id, conversation_link, escalation_channel_id
from bot.channels.teams.endpoint import MAX_ACTIVITIES_IN_PROGRESS, MAX_ACTIVITIES_WAITING, ROUTE, TEAMS_ENDPOINT, TeamsEndpoint, channel

__all__ = [
    "MAX_ACTIVITIES_IN_PROGRESS",
    "MAX_ACTIVITIES_WAITING",
    "ROUTE",
    "TEAMS_ENDPOINT",
    "TeamsEndpoint",
    "clean_text",
    "conversation_id",
    "conversation_link",
    "channel",
    "escalation_channel_id",
]
