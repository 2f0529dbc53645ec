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
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

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
    run = _GraphCheck.open(settings, out)
    try:
        return await run.all(upn)
    finally:
        await run.client.close()


class _GraphCheck:
    """One `graph check`: the token, then each Graph call once, collecting what is missing or failing."""

    def __init__(self, client: GraphClient, tokens: TokenSource, out: TextIO):
        self.client = client
        self.tokens = tokens
        self.out = out
        self.roles: set[str] | None = None
        self.missing: dict[str, str] = {}  # permission -> the call that needs it
        self.failing: list[str] = []
        self.assigned: list[dict[str, Any]] = []
        self.user_id: str | None = None

    @classmethod
    def open(cls, settings: Any, out: TextIO) -> _GraphCheck:
        client = GraphClient.from_settings(settings)
        print(
            f"scim-help graph check: tenant {settings.graph_tenant_id}, app {settings.graph_client_id}, "
            f"service principal {settings.graph_service_principal_id}",
            file=out,
        )
        print(f"  authority {settings.graph_authority}, Graph {settings.graph_url}", file=out)
        return cls(client, client.tokens, out)

    async def all(self, upn: str | None) -> int:
        if not await self.token():
            return 1
        await self.probe("job", self.job)
        await self.probe("assignments", self.assignments)
        who = upn or self.assigned_user()
        if who is None:
            self.no_user()
        else:
            await self.user_calls(who)
        await self.probe("logs", self.logs)
        return self.summary()

    async def token(self) -> bool:
        try:
            token = await self.tokens.token(time.monotonic() + CALL_TIMEOUT)
        except GraphError as exc:
            _row(self.out, "token", f"FAILED: {_why(exc)}")
            print("cannot go further without a token", file=self.out)
            return False
        self.roles = roles = token_roles(token)
        granted = f" (application permissions: {', '.join(sorted(roles)) or 'none'})" if roles is not None else ""
        _row(self.out, "token", "ok" + granted)
        return True

    async def probe(self, call: str, run: Callable[[], Awaitable[str]]) -> None:
        """Makes one call and prints its row: ok with what it read, the missing permission, or why it failed."""
        try:
            detail = await run()
        except GraphError as exc:
            if exc.kind == "forbidden":
                self.missing.setdefault(CALLS[call].permission, _LABELS[call])
                _row(self.out, _LABELS[call], f"MISSING {CALLS[call].permission} (403)")
            else:
                self.failing.append(_LABELS[call])
                _row(self.out, _LABELS[call], f"FAILED: {_why(exc)}")
            return
        _row(self.out, _LABELS[call], "ok" + (f": {detail}" if detail else ""))

    async def job(self) -> str:
        jobs = await self.client.jobs(_deadline())
        if not jobs:
            return "no provisioning job on this service principal"
        status = (jobs[0].get("status") or {}) if isinstance(jobs[0], dict) else {}
        last = status.get("lastExecution") or {}
        return f"status {status.get('code')}, last run {last.get('state') or 'none'}" + (
            f", quarantine {status['quarantine'].get('reason')}" if status.get("quarantine") else ""
        )

    async def assignments(self) -> str:
        self.assigned.extend(await self.client.assigned_to(_deadline()))
        groups = sum(1 for a in self.assigned if a.get("principalType") == "Group")
        return f"{len(self.assigned)} assigned ({groups} group(s), {len(self.assigned) - groups} other)"

    def assigned_user(self) -> str | None:
        """A user the app's assignments name, to test the per-user calls with when no --upn was given."""
        users = (a for a in self.assigned if a.get("principalType") == "User" and a.get("principalId"))
        return next((str(a["principalId"]) for a in users), None)

    def no_user(self) -> None:
        """No user to read: the per-user calls are judged by the token's permissions alone."""
        for call in ("user", "member-of", "transitive-member-of"):
            _row(self.out, _LABELS[call], "not tested: no user to read (give --upn)" + _by_roles(call, self.roles))
            if self.roles is not None and not CALLS[call].granted(self.roles):
                self.missing.setdefault(CALLS[call].permission, _LABELS[call])

    async def user_calls(self, who: str) -> None:
        async def user() -> str:
            found = await self.client.user(who, _deadline())
            self.user_id = str(found.get("id") or "") or None
            return str(found.get("userPrincipalName") or who)

        async def member_of() -> str:
            return f"{len(await self.client.member_of(who, _deadline()))} group(s)"

        async def transitive() -> str:
            return f"{len(await self.client.transitive_member_of(who, _deadline()))} group(s)"

        await self.probe("user", user)
        await self.probe("member-of", member_of)
        await self.probe("transitive-member-of", transitive)

    async def logs(self) -> str:
        if self.user_id:
            entries = await self.client.provisioning(self.user_id, _deadline(), top=1)
        else:
            entries = await self.client.recent_provisioning(_deadline(), top=1)
        return f"{len(entries)} recent entr{'y' if len(entries) == 1 else 'ies'} read"

    def summary(self) -> int:
        """Prints what is missing or failing; 0 when nothing is."""
        if self.missing:
            print("missing application permissions (grant them, then admin consent):", file=self.out)
            for perm, what in self.missing.items():
                print(f"  {perm}  — for {what}", file=self.out)
        if self.failing:
            print(f"failing: {', '.join(self.failing)}", file=self.out)
        if not self.missing and not self.failing:
            print("connection ok: every permission scim-help needs is granted", file=self.out)
            return 0
        return 1


def _deadline() -> float:
    return time.monotonic() + CALL_TIMEOUT


def _row(out: TextIO, label: str, text: str) -> None:
    print(f"  {label:<18} {text}", file=out)


def _by_roles(call: str, roles: set[str] | None) -> str:
    if roles is None:
        return ""
    return "; the token grants it" if CALLS[call].granted(roles) else f"; the token lacks {CALLS[call].permission}"


def _why(exc: GraphError) -> str:
    parts: list[str] = [exc.kind]
    if exc.status:
        parts.append(f"HTTP {exc.status}")
    if exc.detail:
        parts.append(exc.detail)
    return ", ".join(parts)
