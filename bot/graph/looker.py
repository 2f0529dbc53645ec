"""The engine's hook into Microsoft Graph: answer a check by looking instead of asking.

    looker = Looker.from_settings(settings, bundle)        # None when the tenant is not connected
    if looker and looker.can_look(state, check_id):
        look = await looker.look(state, check_id)           # never raises; bounded by `budget` seconds
        # look.answer: the check's answer id Graph established, or None (could not tell: ask as usual)
        # look.says:   one line for the admin: what was looked at and what was found, or why looking failed
        # look.ref:    the source for the ticket (job status, or the log entry's id and time)
        # look.needs:  "upn" when a UPN of an affected user is needed first

What to read for a check and what the result means are data (knowledge/probes.yaml); this file only runs
the reads the probe declares, turns the answers into facts (bot/graph/facts.py) and applies the rules.
Reads run concurrently against one deadline for the whole look; a successful read is kept in memory for
`cache_ttl` seconds so the next check of the same conversation does not read it again. Nothing read is
stored anywhere else: what reaches the conversation is the Look (the answer id, one line and the ref).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.graph import facts as F
from bot.graph.client import CALLS, GraphClient
from bot.graph.errors import GraphError
from knowledge.probes import FACTS, USER_READS, ProbeFile, Rule, load_probes

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.state import State
    from knowledge.schema import Bundle

log = logging.getLogger("scim_help.graph")

BUDGET = 3.0  # seconds one look may wait on Graph (a chat turn must stay quick)
CACHE_TTL = 60.0
CACHE_SIZE = 256
ENTRA = "entra"
# When several reads failed, the line names the most fundamental reason.
_FATAL = ("token", "unauthorized", "unreachable", "timeout")
_SEVERITY = ["token", "unauthorized", "unreachable", "timeout", "forbidden", "throttled", "not-found", "bad-response"]


@dataclass(frozen=True)
class Look:
    answer: str | None  # the check's answer id Graph established, or None (could not tell)
    says: str  # one line for the admin: what was looked at and what was found (or why looking failed)
    ref: str | None = None  # source for the ticket: job status, or the log entry's activity id and time
    needs: str | None = None  # "upn" when a UPN of an affected user is needed before this can be looked up


class _Facts(dict):
    """fact name -> value, only for the reads that succeeded."""


class _NS:
    """A read's facts for str.format ("{job.status}"); a missing one reads as "none"."""

    def __init__(self, values: dict[str, Any]):
        self._values = values

    def __getattr__(self, name: str) -> str:
        value = self._values.get(name)
        if value is None:
            return F.NONE
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


class Looker:
    def __init__(
        self,
        bundle: Bundle,
        probes: ProbeFile,
        client: GraphClient | None,
        budget: float = BUDGET,
        cache_ttl: float = CACHE_TTL,
    ):
        self.bundle = bundle
        self.spec = probes
        self.client = client
        self.budget = budget
        self.cache_ttl = cache_ttl
        self._cache: OrderedDict[tuple[str, ...], tuple[float, Any]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, bundle: Bundle, budget: float = BUDGET) -> Looker | None:
        """The Looker for a connected tenant; None when the Graph settings are unset (today's behaviour)."""
        if not settings.graph_enabled:
            return None
        return cls(bundle, load_probes(bundle), GraphClient.from_settings(settings), budget=budget)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    # ---- the engine's interface ------------------------------------------------------------------

    def can_look(self, state: State, check_id: str) -> bool:
        return self.client is not None and state.idp == ENTRA and check_id in self.spec.probes

    async def look(self, state: State, check_id: str) -> Look | None:
        """Never raises. None when this check cannot be looked up at all (see `can_look`)."""
        if not self.can_look(state, check_id):
            return None
        started = time.monotonic()
        outcome = "error"
        try:
            look = await asyncio.wait_for(self._look(state, check_id), self.budget + 0.25)
            outcome = "answered" if look.answer else ("needs-upn" if look.needs else "not-settled")
            return look
        except TimeoutError:
            outcome = "timeout"
            return Look(None, self._message("timeout", seconds=_secs(self.budget)))
        except Exception:  # a bug here must cost a question, never the turn
            log.exception("graph look failed", extra={"check": check_id})
            return Look(None, self._message("bad-response", detail="unexpected error"))
        finally:
            log.info("graph look", extra={"check": check_id, "outcome": outcome, "ms": round((time.monotonic() - started) * 1000, 1)})

    # ---- one look -----------------------------------------------------------------------------------

    async def _look(self, state: State, check_id: str) -> Look:
        probe = self.spec.probes[check_id]
        upn = state.upns[0] if state.upns else None
        deadline = time.monotonic() + self.budget
        reads = [r for r in probe.reads if upn or r not in USER_READS]
        facts, errors = await self._read(reads, upn, deadline)

        for rule in probe.rules:
            if self._holds(rule, facts):
                return self._conclude(rule, facts)
        errors.sort(key=lambda e: _SEVERITY.index(e.kind) if e.kind in _SEVERITY else 99)
        if errors and errors[0].kind in _FATAL:
            return self._failure(errors[0])  # a UPN would not help: every read would fail the same way
        if upn is None and any(r in USER_READS for r in probe.reads):
            # The user's side may still settle it: say why the rest failed, and ask for a UPN.
            says = self._failure(errors[0]).says if errors else self._message("need-upn")
            return Look(None, says, needs="upn")
        if facts.get("user.found") is False:
            return Look(None, self._message("user-not-found", upn=upn or ""))
        if errors:
            return self._failure(errors[0])
        return Look(None, probe.otherwise.format_map(self._namespaces(facts)))

    def _holds(self, rule: Rule, facts: _Facts) -> bool:
        for fact, want in rule.when.items():
            if fact not in facts:
                return False  # not read (no UPN, or the read failed): this rule cannot be decided
            value = facts[fact]
            options = want if isinstance(want, list) else [want]
            if not any(value is o or (type(value) is type(o) and value == o) for o in options):
                return False
        return True

    def _conclude(self, rule: Rule, facts: _Facts) -> Look:
        ns = self._namespaces(facts)
        says = rule.says.format_map(ns)
        ref = None
        if rule.ref is not None:
            ref = self.spec.refs[rule.ref].format_map({**ns, "now": _now()})
        return Look(rule.answer, says, ref)

    def _namespaces(self, facts: _Facts) -> dict[str, _NS]:
        groups: dict[str, dict[str, Any]] = {"job": {}, "user": {}, "member": {}, "log": {}}
        for name, value in facts.items():
            prefix, _, attr = name.partition(".")
            groups.setdefault(prefix, {})[attr] = value
        return {k: _NS(v) for k, v in groups.items()}

    def _failure(self, err: GraphError) -> Look:
        what = CALLS[err.call].what if err.call in CALLS else "Microsoft Graph"
        if err.kind == "forbidden":
            says = self._message("forbidden", permission=err.permission or "a read permission", what=what)
        elif err.kind == "throttled":
            says = self._message("throttled", seconds=_secs(err.retry_after or 0))
        elif err.kind == "timeout":
            says = self._message("timeout", seconds=_secs(self.budget))
        elif err.kind == "not-found":
            says = self._message("not-found", what=what)
        elif err.kind == "unauthorized":
            says = self._message("unauthorized")
        else:
            says = self._message(err.kind, detail=err.detail or err.kind)
        log.warning("graph read failed", extra={"call": err.call, "kind": err.kind, "status": err.status, "detail": err.detail or None})
        return Look(None, says)

    def _message(self, mid: str, **fields: Any) -> str:
        return self.spec.messages[mid].format_map(_Defaults(fields))

    # ---- reads ------------------------------------------------------------------------------------

    async def _read(self, reads: Sequence[str], upn: str | None, deadline: float) -> tuple[_Facts, list[GraphError]]:
        assert self.client is not None
        client = self.client
        facts = _Facts()
        errors: list[GraphError] = []

        async def attempt(key: tuple[str, ...], fetch: Callable[[], Awaitable[Any]]) -> Any:
            try:
                return await self._cached(key, fetch)
            except GraphError as exc:
                if not (exc.kind == "not-found" and key[0] == "user"):
                    errors.append(exc)
                raise

        wants_user = upn is not None and any(r in ("user", "membership", "logs") for r in reads)
        tasks: dict[str, asyncio.Task[Any]] = {}
        if "job" in reads:
            tasks["job"] = asyncio.ensure_future(attempt(("job",), lambda: client.jobs(deadline)))
        if wants_user:
            assert upn is not None
            key = upn.lower()
            tasks["user"] = asyncio.ensure_future(attempt(("user", key), lambda: client.user(upn, deadline)))
            if "membership" in reads:
                tasks["assignments"] = asyncio.ensure_future(attempt(("assignments",), lambda: client.assigned_to(deadline)))
                tasks["member-of"] = asyncio.ensure_future(attempt(("member-of", key), lambda: client.member_of(upn, deadline)))
                tasks["transitive"] = asyncio.ensure_future(
                    attempt(("transitive-member-of", key), lambda: client.transitive_member_of(upn, deadline))
                )
        done = dict(zip(tasks, await asyncio.gather(*tasks.values(), return_exceptions=True)))

        if "job" in done and not isinstance(done["job"], BaseException):
            self._put(facts, "job", F.job_facts(F.pick_job(done["job"]), self.bundle))
        user: dict[str, Any] | None = None
        if "user" in done:
            result = done["user"]
            if isinstance(result, GraphError) and result.kind == "not-found":
                self._put(facts, "user", F.user_facts(upn or "", None))
            elif not isinstance(result, BaseException):
                user = result
                self._put(facts, "user", F.user_facts(upn or "", user))
        if upn is not None and "user.upn" not in facts:
            facts["user.upn"] = upn
        user_id = str(user.get("id")) if user and user.get("id") else None

        if user_id and "membership" in reads:
            parts = [done.get(k) for k in ("assignments", "member-of", "transitive")]
            if not any(isinstance(p, BaseException) or p is None for p in parts):
                self._put(facts, "member", F.membership_facts(user_id, *parts))  # type: ignore[arg-type]
        if user_id and "logs" in reads:
            try:
                entries = await attempt(("logs", user_id), lambda: client.provisioning(user_id, deadline))
            except GraphError:
                pass
            else:
                self._put(facts, "log", F.log_facts(F.latest_entry(entries, client.sp), self.bundle))
        return facts, errors

    @staticmethod
    def _put(facts: _Facts, prefix: str, values: dict[str, Any]) -> None:
        for attr, value in values.items():
            name = f"{prefix}.{attr}"
            if name in FACTS:
                facts[name] = value

    async def _cached(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        value = await fetch()
        self._cache[key] = (time.monotonic() + self.cache_ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return value


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _secs(value: float) -> str:
    return f"{value:g}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

