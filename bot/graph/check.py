"""`scim-help graph check`: verify the tenant connection and every permission, and say what is missing.

Gets a token (client credentials, as the bot does), lists the application permissions it carries, then
makes each Graph call the bot makes once and reports ok / the missing permission / why it failed. Exit
code 0 when everything works, 1 when something is missing or failing, 2 when the settings are invalid or
incomplete. Prints no secret; a UPN only when the operator gave it or the app's assignments name it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, Awaitable, Callable, TextIO

from bot.graph.client import CALLS, GraphClient
from bot.graph.errors import GraphError
from bot.graph.token import TokenSource, token_roles

CALL_TIMEOUT = 15.0
_LABELS = {
    "job": "provisioning job",
    "assignments": "app assignments",
    "user": "user",
    "member-of": "direct groups",
    "transitive-member-of": "nested groups",
    "logs": "provisioning logs",
}


def run_graph_check(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from bot.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not settings.graph_enabled:
        print(
            "not connected: set SCIM_HELP_GRAPH_TENANT_ID, SCIM_HELP_GRAPH_CLIENT_ID, SCIM_HELP_GRAPH_CLIENT_SECRET and "
            "SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID (README: Microsoft Graph)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_check(settings, getattr(args, "upn", None), out))


async def _check(settings: Any, upn: str | None, out: TextIO) -> int:
    from bot.graph.tls import ssl_context

    ctx = ssl_context()
    tokens = TokenSource(
        settings.graph_tenant_id,
        settings.graph_client_id,
        settings.graph_client_secret.get_secret_value(),
        authority=settings.graph_authority,
        graph_url=settings.graph_url,
        ssl_ctx=ctx,
    )
    client = GraphClient(settings.graph_url, settings.graph_service_principal_id, tokens, ctx)
    print(
        f"scim-help graph check: tenant {settings.graph_tenant_id}, app {settings.graph_client_id}, "
        f"service principal {settings.graph_service_principal_id}",
        file=out,
    )
    print(f"  authority {settings.graph_authority}, Graph {settings.graph_url}", file=out)
    try:
        try:
            token = await tokens.token(time.monotonic() + CALL_TIMEOUT)
        except GraphError as exc:
            _row(out, "token", f"FAILED: {_why(exc)}")
            print("cannot go further without a token", file=out)
            return 1
        roles = token_roles(token)
        _row(out, "token", "ok" + (f" (application permissions: {', '.join(sorted(roles)) or 'none'})" if roles is not None else ""))

        missing: dict[str, str] = {}
        failing: list[str] = []

        async def probe(call: str, run: Callable[[], Awaitable[str]]) -> Any:
            try:
                detail = await run()
            except GraphError as exc:
                if exc.kind == "forbidden":
                    missing.setdefault(CALLS[call].permission, _LABELS[call])
                    _row(out, _LABELS[call], f"MISSING {CALLS[call].permission} (403)")
                else:
                    failing.append(_LABELS[call])
                    _row(out, _LABELS[call], f"FAILED: {_why(exc)}")
                return None
            _row(out, _LABELS[call], "ok" + (f": {detail}" if detail else ""))
            return detail

        def deadline() -> float:
            return time.monotonic() + CALL_TIMEOUT

        async def job() -> str:
            jobs = await client.jobs(deadline())
            if not jobs:
                return "no provisioning job on this service principal"
            status = (jobs[0].get("status") or {}) if isinstance(jobs[0], dict) else {}
            last = status.get("lastExecution") or {}
            return f"status {status.get('code')}, last run {last.get('state') or 'none'}" + (
                f", quarantine {status['quarantine'].get('reason')}" if status.get("quarantine") else ""
            )

        assigned: list[dict[str, Any]] = []

        async def assignments() -> str:
            assigned.extend(await client.assigned_to(deadline()))
            groups = sum(1 for a in assigned if a.get("principalType") == "Group")
            return f"{len(assigned)} assigned ({groups} group(s), {len(assigned) - groups} other)"

        await probe("job", job)
        await probe("assignments", assignments)
        who = upn or next((str(a["principalId"]) for a in assigned if a.get("principalType") == "User" and a.get("principalId")), None)
        user_id: str | None = None
        if who is None:
            for call in ("user", "member-of", "transitive-member-of"):
                _row(out, _LABELS[call], "not tested: no user to read (give --upn)" + _by_roles(call, roles))
                if roles is not None and not CALLS[call].granted(roles):
                    missing.setdefault(CALLS[call].permission, _LABELS[call])
        else:
            async def user() -> str:
                nonlocal user_id
                found = await client.user(who, deadline())
                user_id = str(found.get("id") or "") or None
                return str(found.get("userPrincipalName") or who)

            async def member_of() -> str:
                return f"{len(await client.member_of(who, deadline()))} group(s)"

            async def transitive() -> str:
                return f"{len(await client.transitive_member_of(who, deadline()))} group(s)"

            await probe("user", user)
            await probe("member-of", member_of)
            await probe("transitive-member-of", transitive)

        async def logs() -> str:
            if user_id:
                entries = await client.provisioning(user_id, deadline(), top=1)
            else:
                entries = await client._collection("logs", "/v1.0/auditLogs/provisioning", deadline(), params={"$top": "1"}, pages=1)
            return f"{len(entries)} recent entr{'y' if len(entries) == 1 else 'ies'} read"

        await probe("logs", logs)

        if missing:
            print("missing application permissions (grant them, then admin consent):", file=out)
            for perm, what in missing.items():
                print(f"  {perm}  — for {what}", file=out)
        if failing:
            print(f"failing: {', '.join(failing)}", file=out)
        if not missing and not failing:
            print("connection ok: every permission scim-help needs is granted", file=out)
            return 0
        return 1
    finally:
        await client.close()


def _row(out: TextIO, label: str, text: str) -> None:
    print(f"  {label:<18} {text}", file=out)


def _by_roles(call: str, roles: set[str] | None) -> str:
    if roles is None:
        return ""
    return "; the token grants it" if CALLS[call].granted(roles) else f"; the token lacks {CALLS[call].permission}"


def _why(exc: GraphError) -> str:
    parts = [exc.kind]
    if exc.status:
        parts.append(f"HTTP {exc.status}")
    if exc.detail:
        parts.append(exc.detail)
    return ", ".join(parts)
