"""Sending to Teams: the Bot Connector REST API through the Teams SDK's `ApiClient`.

One HTTP client (httpx, keep-alive, `SEND_TIMEOUT` per call) for the process; an `ApiClient` per service
URL. Service URLs reach this module only after `service_url.allowed` passed them. With MicrosoftAppId the
SDK's `TokenManager` (MSAL) supplies the bot's token; it is imported only then, at start-up (it brings
FastAPI along, which the unauthenticated mode does not need). Conversation and activity ids are percent-encoded into
the URL path: they come from the activity, and a `/`, `?` or `#` in one must not change the request.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

from microsoft_teams.api import Account, ApiClient, ConversationAccount

# The package root re-exports these through a dynamically built __all__ that mypy cannot follow.
from microsoft_teams.api.activities import MessageActivityInput
from microsoft_teams.api.auth.cloud_environment import PUBLIC
from microsoft_teams.api.models import Attachment
from microsoft_teams.common.http import Client, ClientOptions

from bot.settings import Settings

log = logging.getLogger("scim_help.teams")

SEND_TIMEOUT = 10.0  # per call: a service URL that never answers holds a turn this long, not 300 s
MAX_CLIENTS = 64


def _token_provider(settings: Settings) -> Any:
    if not settings.microsoft_app_id:
        return None
    from microsoft_teams.api.auth.credentials import ClientCredentials, ManagedIdentityCredentials

    with warnings.catch_warnings():
        # microsoft_teams.apps announces its preview features (an ExperimentalWarning) on import.
        warnings.simplefilter("ignore")
        from microsoft_teams.apps.token_manager import TokenManager
        from microsoft_teams.apps.token_provider import AppTokenProvider

    tenant = settings.microsoft_app_tenant_id if settings.microsoft_app_type == "SingleTenant" else None
    credentials: Any
    if settings.microsoft_app_type == "UserAssignedMSI":
        credentials = ManagedIdentityCredentials(client_id=settings.microsoft_app_id, tenant_id=tenant)
    else:
        secret = settings.microsoft_app_password.get_secret_value() if settings.microsoft_app_password else ""
        credentials = ClientCredentials(client_id=settings.microsoft_app_id, client_secret=secret, tenant_id=tenant)
    return AppTokenProvider(TokenManager(credentials=credentials, cloud=PUBLIC), PUBLIC)


def message(attachment: dict | None = None, *, text: str | None = None, incoming: dict | None = None) -> MessageActivityInput:
    """A message activity: one card (attachment dict from bot.render.cards) or plain text, addressed as an
    answer to the `incoming` activity when given."""
    activity = MessageActivityInput(text=text or "")
    if attachment is not None:
        content = attachment["content"]
        activity.attachments = [Attachment(content_type=attachment["contentType"], content=content)]
        # The model allows extra fields (model_config extra="allow"); its type declares no `summary`.
        activity.summary = content.get("fallbackText") or None  # type: ignore[attr-defined]
    else:
        activity.text_format = "plain"
    if incoming is not None:
        _address(activity, incoming)
    return activity


def _dict_at(incoming: dict, key: str) -> dict[str, Any]:
    value = incoming.get(key)
    return value if isinstance(value, dict) else {}


# A display name is only a courtesy in a reply; copied at any length, a sender's 30,000-character name
# made the reply itself larger than Teams takes (413 MessageSizeTooBig), so the answer was never sent.
NAME_MAX = 256


def _name(account: dict[str, Any]) -> str | None:
    name = account.get("name")
    return name[:NAME_MAX] if isinstance(name, str) else None


def _address(activity: MessageActivityInput, incoming: dict) -> None:
    """From the bot, to the user, in the incoming activity's conversation (as Teams expects)."""
    bot, user, conv = (_dict_at(incoming, k) for k in ("recipient", "from", "conversation"))
    if isinstance(bot.get("id"), str):
        activity.from_ = Account(id=bot["id"], name=_name(bot))
    if isinstance(user.get("id"), str):
        activity.recipient = Account(id=user["id"], name=_name(user))
    if isinstance(conv.get("id"), str):
        activity.conversation = ConversationAccount(id=conv["id"])


class Connector:
    """Send, update and post proactively; every call may raise (the caller decides what it means)."""

    def __init__(self, settings: Settings) -> None:
        self._http: Client | None = None
        # Built here, at start-up: importing the token manager takes ~0.4 s, never inside a turn.
        self._tokens: Any = _token_provider(settings)
        self._clients: OrderedDict[str, ApiClient] = OrderedDict()

    def _client(self, service_url: str) -> ApiClient:
        client = self._clients.get(service_url)
        if client is not None:
            self._clients.move_to_end(service_url)
            return client
        if self._http is None:
            self._http = Client(ClientOptions(timeout=SEND_TIMEOUT))
        client = ApiClient(service_url, self._http, cloud=PUBLIC, token_provider=self._tokens)
        self._clients[service_url] = client
        if len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return client

    async def send(self, service_url: str, conversation_id: str, activity: MessageActivityInput, *, reply_to: str | None = None) -> str | None:
        """Post into the conversation — as a reply to activity `reply_to` when given, as Bot Framework bots
        answer a message — and return the new activity's id (for a later update)."""
        conversations = self._client(service_url).conversations
        if reply_to:
            sent = await conversations.reply_to_activity(quote(conversation_id, safe=""), reply_to, activity)
        else:
            sent = await conversations.create_activity(quote(conversation_id, safe=""), activity)
        return sent.id if sent.id and sent.id != "DO_NOT_USE_PLACEHOLDER_ID" else None

    async def update(self, service_url: str, conversation_id: str, activity_id: str, activity: MessageActivityInput) -> None:
        conversations = self._client(service_url).conversations
        await conversations.update_activity(quote(conversation_id, safe=""), quote(activity_id, safe=""), activity)

    async def close(self) -> None:
        http, self._http = self._http, None
        self._clients.clear()
        if http is not None:
            await http.http.aclose()
