"""Read-only Microsoft Graph v1.0 client: exactly the calls issue #16 names, nothing else.

    GET /v1.0/servicePrincipals/{sp}/synchronization/jobs
    GET /v1.0/auditLogs/provisioning?$filter=sourceIdentity/id eq '{user id}'   (newest first)
    GET /v1.0/servicePrincipals/{sp}/appRoleAssignedTo
    GET /v1.0/users/{userPrincipalName}
    GET /v1.0/users/{userPrincipalName}/memberOf
    GET /v1.0/users/{userPrincipalName}/transitiveMemberOf

Every call runs against a deadline (the whole turn's budget): the HTTP timeout is what is left of it, a
429 is retried after its `Retry-After` only when that still fits, and collections follow
`@odata.nextLink` (same origin only, so the bearer token never leaves for another host) until the last
page, the page cap or the deadline. Failures are `GraphError`s with the missing permission named on 403.
Nothing here logs a token, a UPN or a response body.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from bot.graph.errors import GraphError
from bot.graph.token import TokenSource

log = logging.getLogger("scim_help.graph")

MAX_PAGES = 20
# A 429 is retried at most this many times per call, and only when its Retry-After fits the deadline.
MAX_RETRIES = 2


@dataclass(frozen=True)
class Call:
    """One of the Graph calls, and the application permissions that allow it: any one of `allowed` (each a
    set that must be granted together). The first is the least privileged, named when a 403 comes back."""

    name: str
    what: str  # "the provisioning job", for messages
    allowed: tuple[frozenset[str], ...]

    @property
    def permission(self) -> str:
        return " and ".join(sorted(self.allowed[0]))

    def granted(self, roles: set[str]) -> bool:
        return any(need <= roles for need in self.allowed)


def _any(*names: str) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(n.split("+")) for n in names)


# Least privileged first (Microsoft Graph permissions reference for each API).
CALLS: dict[str, Call] = {
    c.name: c
    for c in (
        Call("job", "the provisioning job", _any("Synchronization.Read.All", "Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy")),
        Call("logs", "the provisioning logs", _any("AuditLog.Read.All+Directory.Read.All")),
        Call("assignments", "the app's user and group assignments", _any("Application.Read.All", "Directory.Read.All", "Application.ReadWrite.All", "Directory.ReadWrite.All")),
        Call("user", "the user", _any("User.Read.All", "Directory.Read.All", "User.ReadWrite.All", "Directory.ReadWrite.All")),
        Call("member-of", "the user's direct groups", _any("Directory.Read.All", "Directory.ReadWrite.All")),
        Call("transitive-member-of", "the user's groups, nested ones included", _any("User.Read.All", "Directory.Read.All", "GroupMember.Read.All", "Group.Read.All")),
    )
}


class GraphClient:
    def __init__(self, base_url: str, service_principal_id: str, tokens: TokenSource, ssl_ctx: ssl.SSLContext):
        self.base = base_url.rstrip("/")
        self.sp = service_principal_id
        self.tokens = tokens
        self._ssl = ssl_ctx
        self._origin = _origin(self.base)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> GraphClient:
        """The client for the tenant the SCIM_HELP_GRAPH_* settings name (they must be set), with its own
        token source; both trust the system store plus SSL_CERT_FILE (bot/graph/tls.py)."""
        from bot.graph.tls import ssl_context

        assert settings.graph_client_secret is not None and settings.graph_tenant_id and settings.graph_client_id
        ctx = ssl_context()
        tokens = TokenSource(
            settings.graph_tenant_id,
            settings.graph_client_id,
            settings.graph_client_secret.get_secret_value(),
            authority=settings.graph_authority,
            graph_url=settings.graph_url,
            ssl_ctx=ctx,
        )
        return cls(settings.graph_url, str(settings.graph_service_principal_id), tokens, ctx)

    # ---- the calls ------------------------------------------------------------------------------

    async def jobs(self, deadline: float) -> list[dict[str, Any]]:
        return await self._collection("job", f"/v1.0/servicePrincipals/{_seg(self.sp)}/synchronization/jobs", deadline)

    async def provisioning(self, user_id: str, deadline: float, top: int = 20) -> list[dict[str, Any]]:
        """The newest provisioning log entries about one user (first page only: newest first)."""
        params = {
            "$filter": f"sourceIdentity/id eq '{user_id.replace(chr(39), chr(39) * 2)}'",
            "$orderby": "activityDateTime desc",
            "$top": str(top),
        }
        return await self._collection("logs", "/v1.0/auditLogs/provisioning", deadline, params=params, pages=1)

    async def recent_provisioning(self, deadline: float, top: int = 1) -> list[dict[str, Any]]:
        """The newest provisioning log entries of the tenant, whoever they are about (first page only)."""
        return await self._collection("logs", "/v1.0/auditLogs/provisioning", deadline, params={"$top": str(top)}, pages=1)

    async def assigned_to(self, deadline: float) -> list[dict[str, Any]]:
        return await self._collection("assignments", f"/v1.0/servicePrincipals/{_seg(self.sp)}/appRoleAssignedTo", deadline)

    async def user(self, upn: str, deadline: float) -> dict[str, Any]:
        params = {"$select": "id,userPrincipalName,displayName,accountEnabled,mail"}
        return await self._get("user", f"{self.base}/v1.0/users/{_seg(upn)}", deadline, params)

    async def member_of(self, upn: str, deadline: float) -> list[dict[str, Any]]:
        return await self._collection("member-of", f"/v1.0/users/{_seg(upn)}/memberOf", deadline, params={"$select": "id,displayName"})

    async def transitive_member_of(self, upn: str, deadline: float) -> list[dict[str, Any]]:
        return await self._collection(
            "transitive-member-of", f"/v1.0/users/{_seg(upn)}/transitiveMemberOf", deadline, params={"$select": "id,displayName"}
        )

    # ---- plumbing -------------------------------------------------------------------------------

    async def _collection(
        self, call: str, path: str, deadline: float, params: dict[str, str] | None = None, pages: int = MAX_PAGES
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = self.base + path
        for page in range(pages):
            assert url is not None
            body = await self._get(call, url, deadline, params if page == 0 else None)
            value = body.get("value")
            if not isinstance(value, list):
                raise GraphError("bad-response", call, "no value list in the answer")
            items.extend(v for v in value if isinstance(v, dict))
            url = body.get("@odata.nextLink")
            if not url:
                break
            if not isinstance(url, str) or _origin(url) != self._origin:
                raise GraphError("bad-response", call, "a next page link to another host")
        return items

    async def _get(self, call: str, url: str, deadline: float, params: dict[str, str] | None) -> dict[str, Any]:
        spec = CALLS[call]
        for attempt in range(MAX_RETRIES + 1):
            token = await self.tokens.token(deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GraphError("timeout", call, "no time left in this turn")
            session = await self._open()
            started = time.monotonic()
            try:
                async with session.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=remaining),
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    if status == 200:
                        try:
                            body = await resp.json(content_type=None)
                        except ValueError:
                            raise GraphError("bad-response", call, "the answer is not JSON", status=status) from None
                        if not isinstance(body, dict):
                            raise GraphError("bad-response", call, "the answer is not a JSON object", status=status)
                        _trace(call, status, started)
                        return body
                    code = await _error_code(resp)
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except TimeoutError:
                _trace(call, None, started, "timeout")
                raise GraphError("timeout", call, "Microsoft Graph did not answer in time") from None
            except aiohttp.ClientSSLError as exc:
                _trace(call, None, started, "tls")
                raise GraphError("unreachable", call, "TLS: " + _ssl_reason(exc)) from None
            except aiohttp.ClientError as exc:
                _trace(call, None, started, type(exc).__name__)
                raise GraphError("unreachable", call, type(exc).__name__) from None
            _trace(call, status, started, code)
            if status == 429:
                wait = retry_after if retry_after is not None else 1.0
                if attempt < MAX_RETRIES and time.monotonic() + wait < deadline - 0.05:
                    await asyncio.sleep(wait)
                    continue
                raise GraphError("throttled", call, code, status=status, retry_after=wait)
            if status == 401:
                raise GraphError("unauthorized", call, code, status=status)
            if status == 403:
                raise GraphError("forbidden", call, code, status=status, permission=spec.permission)
            if status == 404:
                raise GraphError("not-found", call, code, status=status)
            if status >= 500:
                raise GraphError("unreachable", call, f"HTTP {status}", status=status)
            raise GraphError("bad-response", call, code or f"HTTP {status}", status=status)
        raise GraphError("throttled", call, "", status=429)  # not reached

    async def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl, limit=16), trust_env=False)
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _seg(value: str) -> str:
    """One URL path segment (a UPN may hold '#', as guests' #EXT# does)."""
    return quote(value, safe="@.-_")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


async def _error_code(resp: aiohttp.ClientResponse) -> str:
    """Graph's `error.code` ("Authorization_RequestDenied"), never the message or the body."""
    try:
        body = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:80] if isinstance(code, str) else ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _ssl_reason(exc: BaseException) -> str:
    text = str(exc)
    return "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text else type(exc).__name__


def _trace(call: str, status: int | None, started: float, error: str | None = None) -> None:
    log.debug("graph call", extra={"call": call, "status": status, "ms": round((time.monotonic() - started) * 1000, 1), "error": error or None})
