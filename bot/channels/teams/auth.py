"""Is this request from the Bot Framework? Bearer tokens on `/api/messages`, checked without ever blocking.

Bot Framework signs the tokens it sends a bot with keys it publishes: an OpenID configuration
(`openid_metadata_url` of the Teams SDK's cloud environment) names a JWKS whose keys carry the channels
that endorse them. Neither SDK fetches those keys in a way a server can afford (README: Teams, measured):
botbuilder and the Teams SDK call a blocking HTTP client on the event loop, the Agents SDK one without a
useful timeout behind a lock. So `SigningKeys` does it here, with aiohttp:

- fetched in the background (at start-up, then every `REFRESH_EVERY`), each fetch bounded by `FETCH_TIMEOUT`;
- kept in memory; a request whose key id is not known starts at most one refresh (and no more often than
  `MIN_REFETCH` apart) and waits for it at most `UNKNOWN_KEY_WAIT` seconds — so a forged token whose key
  host does not answer costs about a second of that one request, and nothing else;
- a token is checked before any key is looked up for everything that needs no key (scheme, algorithm,
  issuer), so most forgeries never cause a fetch at all.

Every failure is `Unauthorized` (the endpoint answers 401); its message names the check, never the token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from microsoft_teams.api.auth.cloud_environment import PUBLIC

log = logging.getLogger("scim_help.teams")

OPENID_METADATA_URL = PUBLIC.openid_metadata_url
ISSUER = PUBLIC.token_issuer  # https://api.botframework.com
FETCH_TIMEOUT = 5.0
UNKNOWN_KEY_WAIT = 1.0
MIN_REFETCH = 60.0
REFRESH_EVERY = 12 * 3600.0
LEEWAY = 300  # seconds of clock skew accepted on exp/nbf, as Bot Framework's own validators do
MAX_DOCUMENT_BYTES = 512 * 1024


class Unauthorized(Exception):
    pass


@dataclass
class _Key:
    key: Any
    endorsements: frozenset[str] = frozenset()


@dataclass
class SigningKeys:
    """The Bot Framework's published signing keys, refreshed in the background."""

    metadata_url: str = OPENID_METADATA_URL
    keys: dict[str, _Key] = field(default_factory=dict)
    fetched_at: float = 0.0
    _last_attempt: float = float("-inf")
    _refresh: asyncio.Task | None = None
    _periodic: asyncio.Task | None = None

    async def get(self, kid: str) -> _Key | None:
        """The key with this id. Unknown: one bounded refresh, waited for `UNKNOWN_KEY_WAIT` at most."""
        found = self.keys.get(kid)
        if found is not None:
            return found
        task = self.refresh_soon()
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), UNKNOWN_KEY_WAIT)
            except TimeoutError:
                pass
        return self.keys.get(kid)

    def refresh_soon(self) -> asyncio.Task | None:
        """The refresh in progress, or a new one unless the last attempt was under MIN_REFETCH ago."""
        if self._refresh is not None and not self._refresh.done():
            return self._refresh
        if time.monotonic() - self._last_attempt < MIN_REFETCH:
            return None
        self._last_attempt = time.monotonic()
        self._refresh = asyncio.get_running_loop().create_task(self._fetch(), name="teams-signing-keys")
        return self._refresh

    async def _fetch(self) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                metadata = await _get_json(session, self.metadata_url)
                jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
                if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                    raise ValueError("OpenID metadata names no jwks_uri")
                keys = _parse_jwks(await _get_json(session, jwks_uri))
        except Exception as exc:  # any failure keeps the keys we have
            log.warning(
                "teams: could not fetch the Bot Framework signing keys (%s); keeping %d known key(s)",
                type(exc).__name__,
                len(self.keys),
            )
            return
        self.keys = keys
        self.fetched_at = time.monotonic()
        log.info("teams: Bot Framework signing keys refreshed (%d keys)", len(keys))

    def start(self) -> None:
        """Fetch now and every REFRESH_EVERY seconds, in the background, until `close`."""
        if self._periodic is None or self._periodic.done():
            self._periodic = asyncio.get_running_loop().create_task(self._run_periodic(), name="teams-keys-refresh")

    async def _run_periodic(self) -> None:
        while True:
            self._last_attempt = float("-inf")
            task = self.refresh_soon()
            if task is not None:
                await asyncio.shield(task)
            await asyncio.sleep(REFRESH_EVERY)

    async def close(self) -> None:
        for task in (self._periodic, self._refresh):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, allow_redirects=False) as resp:
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        return json.loads(body)


def _parse_jwks(document: Any) -> dict[str, _Key]:
    keys: dict[str, _Key] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or entry.get("kty") != "RSA":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm="RS256").key
        except (jwt.PyJWKError, ValueError, TypeError, KeyError):
            continue
        endorsements = entry.get("endorsements")
        names = frozenset(e for e in endorsements if isinstance(e, str)) if isinstance(endorsements, list) else frozenset()
        keys[entry["kid"]] = _Key(key, names)
    if not keys:
        raise ValueError("JWKS holds no usable RSA key")
    return keys


def bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
        raise Unauthorized("no bearer token")
    return token.strip()


class BotFrameworkAuth:
    """Checks the token on one request against the app id and the activity it came with."""

    def __init__(self, app_id: str, keys: SigningKeys) -> None:
        self.app_id = app_id
        self.keys = keys

    async def verify(self, header: str, channel_id: object) -> dict[str, Any]:
        """The token's claims; Unauthorized for anything short of a valid Bot Framework token."""
        token = bearer(header)
        try:
            head = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("not a JWT") from None
        if head.get("alg") != "RS256" or not isinstance(head.get("kid"), str):
            raise Unauthorized("unexpected algorithm or no key id")
        if unverified.get("iss") != ISSUER:
            raise Unauthorized("issuer is not the Bot Framework")
        found = await self.keys.get(head["kid"])
        if found is None:
            raise Unauthorized("signing key not published")
        if found.endorsements and channel_id not in found.endorsements:
            raise Unauthorized("signing key not endorsed for this channel")
        try:
            return jwt.decode(
                token,
                found.key,
                algorithms=["RS256"],
                audience=self.app_id,
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(type(exc).__name__) from None
