"""Keeping secrets and personal data where they belong.

- `scrub_secrets` runs on every piece of user text before it is stored (transcript, ticket): admins paste
  SCIM bearer tokens, JWTs and passwords while debugging, and those must never reach a ticket or a log.
- `pseudonymise` turns identifiers (user ids, UPNs) into short stable hashes for logs and metrics.
- `scrub_pii` masks emails/UPNs for anything that is logged.
"""

from __future__ import annotations

import hashlib
import re

SECRET = "[redacted secret]"

_PATTERNS: list[re.Pattern[str]] = [
    # "Authorization: Bearer abc..." and bare "Bearer abc..."
    re.compile(r"(?i:\bbearer\s+[A-Za-z0-9._~+/=-]{8,})"),
    # JWTs (three base64url segments)
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    # key: value / key=value for secret-ish keys (flags are scoped, `(?i:...)`, so _ANY_SECRET can join them)
    re.compile(
        r"(?i:\b(secret[ _-]?token|api[ _-]?token|access[ _-]?token|client[ _-]?secret|token|password|passwd|pwd|secret|api[ _-]?key)"
        r"(\s*(?:is|was|=|:)\s*)(\"[^\"]+\"|'[^']+'|\S+))"
    ),
    # Slack tokens and app tokens
    re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]{10,}"),
    # long opaque strings (hex or base64) such as SCIM tokens pasted on their own
    re.compile(r"\b[A-Fa-f0-9]{32,}\b"),
    re.compile(r"(?<![A-Za-z0-9/+@.])(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{40,}={0,2}"),
]

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


# All of the above in one pass: most messages hold no secret and are returned after a single search.
_ANY_SECRET = re.compile("|".join(f"(?:{p.pattern})" for p in _PATTERNS))


def scrub_secrets(text: str) -> str:
    if not _ANY_SECRET.search(text):
        return text
    for pattern in _PATTERNS:
        if pattern.groups >= 3:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{SECRET}", text)
        else:
            text = pattern.sub(SECRET, text)
    return text


def find_emails(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for m in _EMAIL.finditer(text):
        seen.setdefault(m.group(0).strip(".").lower(), None)
    return list(seen)


def scrub_pii(text: str) -> str:
    return _EMAIL.sub(lambda m: "<email:" + pseudonymise(m.group(0).lower()) + ">", scrub_secrets(text))


def pseudonymise(value: str | None) -> str | None:
    if value is None:
        return None
    return hashlib.blake2s(value.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
