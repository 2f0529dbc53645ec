"""Keeping secrets and personal data where they belong.

- `scrub_secrets` runs on every piece of user text before it is stored (transcript, ticket): admins paste
  SCIM bearer tokens, JWTs, Entra client secrets and passwords while debugging, and those must never reach
  a ticket or a log. It is idempotent: scrubbing scrubbed text changes nothing.
- `scrub_opaque` is the part of it whose patterns need a minimum length (a token, a JWT, a client secret,
  a UUID-form token): text cut short first would leave the start of such a secret too short to be
  recognised, so it runs on a message before anything truncates it (`shield`, called by the runtime
  before the engine sees a message).
- `mask_upns` replaces emails/UPNs with a short stable hash: UPNs belong in a ticket's UPN field only,
  never in a stored transcript. `for_transcript` is everything a transcript line needs, in the right
  order: scrub, mask, then cut.
- `pseudonymise` turns identifiers (user ids, UPNs) into short stable hashes for logs and metrics;
  `scrub_pii` masks emails/UPNs and secrets for anything that is logged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.events import Incoming

SECRET = "[redacted secret]"

# Words that describe a credential rather than being one ("the token is invalid", "password was reset"):
# a value that is one of these stays, so the admin's account of the problem survives in the transcript.
_DESCRIPTIVE = (
    "invalid|expired|wrong|incorrect|correct|valid|not|missing|empty|blank|required|set|unset|ok|okay|fine|"
    "rejected|revoked|rotated|reset|changed|renewed|regenerated|the|a|an|still|now|also|same|different|new|"
    "old|there|here|working|broken|failing|good|bad|right|none|null|unknown|being|in|on|for|from|of|"
    "to|and|or|but|it|that|this|my|our|your|their|its|no|yes|too|already|never|always|saved|stored|used"
)
_NOT_SCRUBBED = r"(?!\[redacted)"  # never scrub the marker itself: scrubbing twice changes nothing
_VALUE = rf"{_NOT_SCRUBBED}(?!(?i:{_DESCRIPTIVE})\b)(\"[^\"]+\"|'[^']+'|\S+)"
_KEY = (
    r"secret[ _-]?token|api[ _-]?token|access[ _-]?token|refresh[ _-]?token|bearer[ _-]?token|client[ _-]?secret|"
    r"api[ _-]?key|token|password|passwd|passphrase|pwd|secret"
)
# A value that looks like a password: six or more characters, a letter and a digit or symbol ("hunter3").
_PASSWORDISH = r"(?=\S*[A-Za-z])(?=\S*[\d!#$%^&*+=?~])\S{6,}"
_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# Labels that make a UUID an identifier, not a secret ("secret for tenant 72f988bf-…").
_ID_LABEL = re.compile(r"(?i)\b(?:tenant|client|app|application|object|directory|subscription|resource|correlation|request|trace|id)\b\W{0,3}$")


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    # Replace only this group (the value after "password is"); None: the whole match.
    group: int | None = None
    # True when the pattern needs a minimum length, so it must run before text is cut.
    opaque: bool = False
    # Keep the match when this is found just before the group (a UUID labelled "tenant id").
    unless: re.Pattern[str] | None = None


_RULES: tuple[_Rule, ...] = (
    # "Authorization: Bearer abc..." and bare "Bearer abc..."
    _Rule(re.compile(rf"(?i:\bbearer\s+){_NOT_SCRUBBED}[A-Za-z0-9._~+/=-]{{8,}}"), opaque=True),
    # JWTs (three base64url segments)
    _Rule(re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), opaque=True),
    # Microsoft Entra client secrets: three characters, a digit, "Q~", then the rest ("Xk78Q~Zc1Yq.Ab3d…").
    _Rule(re.compile(r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{8,}"), opaque=True),
    # Slack tokens and app tokens
    _Rule(re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]{10,}"), opaque=True),
    # A UUID-form token: a UUID with "token", "secret", "key", "password"… shortly before it on the line,
    # unless it is labelled as an identifier (`unless`).
    _Rule(
        re.compile(rf"(?i:\b(?:token|secret|key|password|passwd|bearer|credential)s?\b)[^\n]{{0,40}}?\b({_UUID})\b"),
        group=1,
        opaque=True,
        unless=_ID_LABEL,
    ),
    # "password: x", "token = x", "the secret is x", "password for the tenant is x"
    _Rule(re.compile(rf"(?i:\b(?:{_KEY})(?:(?:\s+(?!is\b|was\b)[\w'-]+){{1,5}}?\s+(?:is|was)\s+|\s*(?:is|was|=|:)\s*)){_VALUE}"), group=1),
    # "the password hunter3 does not work": a key, then directly a password-like value
    _Rule(re.compile(rf"(?i:\b(?:{_KEY})\s+){_NOT_SCRUBBED}({_PASSWORDISH})"), group=1),
    # long opaque strings (hex or base64) such as SCIM tokens pasted on their own
    _Rule(re.compile(r"\b[A-Fa-f0-9]{32,}\b"), opaque=True),
    _Rule(re.compile(r"(?<![A-Za-z0-9/+@.])(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{40,}={0,2}"), opaque=True),
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _any(rules: tuple[_Rule, ...]) -> re.Pattern[str]:
    # All of them in one pass: most messages hold no secret and are returned after a single search.
    return re.compile("|".join(f"(?:{r.pattern.pattern})" for r in rules))


# What every secret above needs somewhere in the text (a key word, a token's prefix, a long run of token
# characters): a cheap first look that lets the ordinary message (and every log field) through at once.
_CANDIDATE = re.compile(r"(?i:bearer|token|secret|passw|passphrase|pwd|key|credential)|eyJ|Q~|xox|xapp|[A-Za-z0-9+/_-]{32}")
_ANY_SECRET = _any(_RULES)
_OPAQUE = tuple(r for r in _RULES if r.opaque)
_ANY_OPAQUE = _any(_OPAQUE)


def _apply(rule: _Rule, text: str) -> str:
    if rule.group is None:
        return rule.pattern.sub(SECRET, text)
    group = rule.group  # narrowed to int for the closure below

    def one(m: re.Match[str]) -> str:
        start, end = m.span(group)
        if rule.unless is not None and rule.unless.search(m.string[m.start() : start]):
            return m.group(0)
        return m.string[m.start() : start] + SECRET + m.string[end : m.end()]

    return rule.pattern.sub(one, text)


MAX_PASSES = 256


def _scrub(text: str, rules: tuple[_Rule, ...], any_of: re.Pattern[str]) -> str:
    if not _CANDIDATE.search(text) or not any_of.search(text):
        return text
    # Until nothing changes: one match can hide the next (UUIDs in a row after one "token:" come off one
    # per pass, each "[redacted secret]" keying the next), and scrubbing scrubbed text must change nothing.
    # Every pass that changes something removes a secret, so the bound is only a guard.
    for _ in range(MAX_PASSES):
        before = text
        for rule in rules:
            text = _apply(rule, text)
        if text == before or not any_of.search(text):
            break
    return text


def scrub_secrets(text: str) -> str:
    """Every secret form we know, replaced by SECRET. Idempotent."""
    return _scrub(text, _RULES, _ANY_SECRET)


def scrub_opaque(text: str) -> str:
    """Only the secrets recognised by their length and shape: safe to run on anything, before any cut."""
    return _scrub(text, _OPAQUE, _ANY_OPAQUE)


def shield(msg: Incoming) -> Incoming:
    """The message with opaque secrets removed from its text, before anything (the engine's transcript, a
    500-character cut) can truncate one. Words stay as they are: the engine still reads "the token is
    invalid"; `scrub_secrets` takes the rest when the text is stored."""
    if not msg.text:
        return msg
    clean = scrub_opaque(msg.text)
    return msg if clean == msg.text else msg.model_copy(update={"text": clean})


def find_emails(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for m in _EMAIL.finditer(text):
        seen.setdefault(m.group(0).strip(".").lower(), None)
    return list(seen)


def mask_upns(text: str) -> str:
    """Emails/UPNs replaced by `<email:hash>` (the hash the logs use for the same address)."""
    if "@" not in text:
        return text
    return _EMAIL.sub(lambda m: "<email:" + (pseudonymise(m.group(0).lower()) or "") + ">", text)


def for_transcript(text: str, limit: int) -> str:
    """A line fit to store in a transcript: secrets scrubbed and UPNs masked first, then cut to `limit`
    characters (whitespace collapsed). For the engine's transcript lines."""
    text = " ".join(mask_upns(scrub_secrets(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# A web chat conversation id as the browser holds it (bot/channels/web.py): the key to a conversation, so
# never logged. The store and the engine know the conversation by a shorter keyed hash, which stays.
_WEB_ID = re.compile(r"\bweb:[A-Za-z0-9_-]{36,64}(?![A-Za-z0-9_-])")


def scrub_pii(text: str) -> str:
    """For anything that is logged: secrets, emails/UPNs, and web chat ids."""
    text = mask_upns(scrub_secrets(text))
    return _WEB_ID.sub("web:[id]", text) if "web:" in text else text


def pseudonymise(value: str | None) -> str | None:
    if value is None:
        return None
    return hashlib.blake2s(value.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
