"""Reading a Bot Framework activity (the JSON Teams posts): who, where, what was said.

Plain functions over the activity dict as it arrived, so they cope with anything a client may send
(every field may be missing or of the wrong type) and need no SDK model.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote, unquote, urlencode

from bot.redact import pseudonymise

_AT = re.compile(r"<at\b[^>]*>(.*?)</at>", re.I | re.S)
_HTML_HINT = re.compile(r"</?(?:p|div|span|br|b|i|strong|em|at)\b", re.I)
_TAG = re.compile(r"<[^>]+>")
_COMMAND = re.compile(r"^/?scim[\s_-]?help\b[\s:,.-]*", re.I)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def conversation(activity: dict) -> dict:
    return _dict(activity.get("conversation"))


def raw_conversation_id(activity: dict) -> str | None:
    return _str(conversation(activity).get("id"))


def recipient_id(activity: dict) -> str | None:
    return _str(_dict(activity.get("recipient")).get("id"))


def tenant_of(activity: dict) -> str:
    tenant = _str(conversation(activity).get("tenantId"))
    if not tenant:
        tenant = _str(_dict(_dict(activity.get("channelData")).get("tenant")).get("id"))
    return tenant or "-"


def conversation_id(activity: dict) -> str:
    """Our store key for the Teams conversation / channel reply chain the activity belongs to."""
    return f"teams:{tenant_of(activity)}:{raw_conversation_id(activity)}"


def scope_of(activity: dict) -> str:
    """personal | groupChat | channel (the emulator and web chat count as personal)."""
    kind = conversation(activity).get("conversationType")
    if kind in ("groupChat", "channel"):
        return kind
    if kind is None and _dict(activity.get("channelData")).get("channel"):
        return "channel"
    return "personal"


def _bot_mentions(activity: dict) -> list[str]:
    """The display texts under which this activity @mentions the bot (empty when it does not)."""
    bot_id = recipient_id(activity)
    entities = activity.get("entities")
    names: list[str] = []
    for entity in entities if isinstance(entities, list) else []:
        entity = _dict(entity)
        if str(entity.get("type") or "").lower() != "mention":
            continue
        mentioned = _dict(entity.get("mentioned"))
        if bot_id and mentioned.get("id") == bot_id:
            inner = _AT.search(_str(entity.get("text")) or "")
            name = inner.group(1) if inner else (_str(mentioned.get("name")) or "")
            names.append(html.unescape(name).strip().lower())
    return names


def mentions_bot(activity: dict) -> bool:
    return bool(_bot_mentions(activity))


def clean_text(activity: dict) -> str:
    """The admin's words: without the bot's @mention, Teams' HTML and a leading `scim-help` command."""
    bot_names = set(_bot_mentions(activity))
    bot_name = _str(_dict(activity.get("recipient")).get("name"))
    if bot_name:
        bot_names.add(bot_name.strip().lower())
    text = _str(activity.get("text")) or ""

    def at(m: re.Match[str]) -> str:
        inner = html.unescape(_TAG.sub("", m.group(1))).strip()
        # A mention of the bot goes; other people's mentions keep their name as text.
        return " " if not inner or inner.lower() in bot_names else f" {inner} "

    text = _AT.sub(at, text)
    if _HTML_HINT.search(text):
        text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
        text = html.unescape(_TAG.sub("", text))
    text = re.sub(r"^[ \t]+", "", text.replace("\xa0", " ")).strip()
    m = _COMMAND.match(text)
    if m:
        text = text[m.end() :]
    return text.strip()


def channel_data_channel_id(activity: dict) -> str | None:
    return _str(_dict(_dict(activity.get("channelData")).get("channel")).get("id"))


def user_id(activity: dict) -> str | None:
    user = _dict(activity.get("from"))
    return _str(user.get("aadObjectId")) or _str(user.get("id"))


def user_name(activity: dict) -> str | None:
    return _str(_dict(activity.get("from")).get("name"))


def escalation_channel_id(value: str | None) -> str | None:
    """`SCIM_HELP_TEAMS_ESCALATION_CHANNEL` as a channel conversation id. Accepts the id itself
    (`19:…@thread.tacv2`) or a channel link copied from Teams ("Get link to channel")."""
    if not value or not value.strip():
        return None
    value = value.strip()
    m = re.search(r"/l/channel/([^/?#]+)", value)
    if m:
        value = unquote(m.group(1))
    return value.split(";", 1)[0]


def _channel_link(activity: dict, tenant: str) -> tuple[str, str | None]:
    data = _dict(activity.get("channelData"))
    channel, team = _dict(data.get("channel")), _dict(data.get("team"))
    base, _, rest = (raw_conversation_id(activity) or "").partition(";")
    names = [x for x in (_str(team.get("name")), _str(channel.get("name"))) if x]
    where = " › ".join(names) if names else "a Teams channel"
    m = re.match(r"messageid=(\d+)", rest)
    if not m:
        return where, None
    params = {"tenantId": tenant, "parentMessageId": m.group(1)}
    if _str(team.get("aadGroupId")):
        params["groupId"] = team["aadGroupId"]
    if _str(team.get("name")):
        params["teamName"] = team["name"]
    if _str(channel.get("name")):
        params["channelName"] = channel["name"]
    params["createdTime"] = m.group(1)
    return where, f"https://teams.microsoft.com/l/message/{quote(base, safe='')}/{m.group(1)}?{urlencode(params)}"


def conversation_link(activity: dict) -> tuple[str, str | None]:
    """(where the conversation is, in words; a Teams deep link to it when one can be derived).
    The words may hold names people chose (team, channel, group chat): render them as user text."""
    tenant = tenant_of(activity)
    scope = scope_of(activity)
    if scope == "channel":
        return _channel_link(activity, tenant)
    if scope == "groupChat":
        name = _str(conversation(activity).get("name"))
        where = f"the group chat “{name}”" if name else "a group chat"
        cid = raw_conversation_id(activity) or ""
        if cid.startswith("19:"):
            return where, f"https://teams.microsoft.com/l/chat/{quote(cid, safe='')}/conversations?{urlencode({'tenantId': tenant})}"
        return where, None
    # A personal chat with the bot is visible to the admin only: there is nothing to link to.
    return f"a personal chat with the bot (conversation {pseudonymise(conversation_id(activity))})", None


def log_extra(activity: dict, **more: Any) -> dict[str, Any]:
    return {
        "channel": "teams",
        "bf_channel": _str(activity.get("channelId")),
        "activity_type": _str(activity.get("type")),
        "conversation": pseudonymise(raw_conversation_id(activity)),
        **more,
    }
