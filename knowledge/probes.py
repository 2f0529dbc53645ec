"""Probes: how a check of the pack is answered by looking at the tenant instead of asking the admin.

`knowledge/probes.yaml` keeps this as data, keyed by check id: which Graph reads a check needs, and rules
that map what was read (named *facts*, below) onto one of the check's answers, with the one line the admin
is shown and the source quoted in the ticket. The first rule whose `when` holds wins; a rule without
`answer` says what was found but leaves the check to the admin. Sentences live here, never in Python.

`load_probes()` validates the file like the rest of the pack (`file:line: path: message`): every check and
answer exists in the loaded pack, every fact is known and belongs to a read the probe declares, every value
is one the fact can take, every `{placeholder}` names a fact.

The facts are the vocabulary between this file and `bot/graph/facts.py`, which computes them from Graph's
documented response shapes (a test keeps the two in step).
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from knowledge.loader import _raise_problems, _read_yaml, _validate
from knowledge.schema import Bundle, Id, Problem, Strict, Text

DEFAULT_PROBES = Path(__file__).with_name("probes.yaml")

Read = Literal["job", "logs", "user", "membership"]
FactName = Annotated[str, StringConstraints(pattern=r"^[a-z]+\.[a-z_]+$")]
Scalar = str | bool | int | None

CAUSE = "<cause>"  # the fact's values are cause ids of the pack
TOPIC = "<topic>"  # the fact's values are topic ids of the pack
ANY = "<any>"  # free text: usable in `says`, not in `when`

# fact -> (the read that provides it, the values it can take).
FACTS: dict[str, tuple[str, tuple[Any, ...] | str]] = {
    # GET servicePrincipals/{sp}/synchronization/jobs — status.code, status.quarantine, status.lastExecution
    "job.found": ("job", (True, False)),
    "job.status": ("job", ("NotConfigured", "NotRun", "Active", "Paused", "Quarantine")),
    "job.quarantined": ("job", (True, False)),
    "job.quarantine_reason": ("job", ANY),
    "job.error": ("job", ANY),
    "job.error_cause": ("job", CAUSE),
    "job.last_state": ("job", ("Succeeded", "Failed", "EntryLevelErrors", None)),
    "job.initial_done": ("job", (True, False, None)),
    "job.when": ("job", ANY),
    "job.template": ("job", ANY),
    # GET users/{upn}
    "user.upn": ("user", ANY),
    "user.found": ("user", (True, False)),
    "user.enabled": ("user", (True, False, None)),
    "user.has_mail": ("user", (True, False, None)),
    # appRoleAssignedTo against users/{upn}/memberOf and /transitiveMemberOf
    "member.assigned": ("membership", ("direct", "group", "nested", "none")),
    "member.groups": ("membership", ANY),
    "member.direct_groups": ("membership", ANY),
    # GET auditLogs/provisioning for the user, newest entry of this app
    "log.found": ("logs", (True, False)),
    "log.status": ("logs", ("success", "failure", "skipped", "warning", None)),
    "log.error": ("logs", ANY),
    "log.cause": ("logs", CAUSE),
    "log.topic": ("logs", TOPIC),
    "log.in_scope": ("logs", (True, False, None)),
    "log.sent_email": ("logs", (True, False, None)),
    "log.action": ("logs", ANY),
    "log.when": ("logs", ANY),
    "log.id": ("logs", ANY),
}
# Reads about one user need a UPN first; `user.upn` is available to all of them.
USER_READS = ("logs", "user", "membership")

MESSAGES = (
    "need-upn",  # no UPN known yet
    "unauthorized",  # 401
    "forbidden",  # 403: {permission} {what}
    "not-found",  # 404: {what}
    "throttled",  # 429 beyond the budget: {seconds}
    "timeout",  # {seconds}
    "unreachable",  # {detail}
    "bad-response",  # {detail}
    "token",  # the authority refused: {detail}
    "user-not-found",  # {upn}
)
MESSAGE_FIELDS = {"permission", "what", "seconds", "detail", "upn"}


class Rule(Strict):
    # fact -> value, or a list of values any of which will do. All must hold. Empty: always.
    when: dict[FactName, Scalar | list[Scalar]] = Field(default_factory=dict)
    # The check's answer Graph established; left out: found something, but it does not settle the check.
    answer: Id | None = None
    # One line for the admin: what was looked at and what was found. {job.status}-style placeholders.
    says: Text
    # Which source the ticket quotes for this finding.
    ref: Read | None = None


class Probe(Strict):
    reads: list[Read] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)
    # Said when no rule holds (the check is then asked as usual).
    otherwise: Text


class ProbeFile(Strict):
    version: Literal[1]
    # How each source is quoted in the ticket (placeholders: facts of that read, and {now}).
    refs: dict[Read, Text]
    # The lines said when looking fails (placeholders: MESSAGE_FIELDS).
    messages: dict[str, Text]
    probes: dict[Id, Probe]


def placeholders(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def probe_problems(spec: ProbeFile, bundle: Bundle) -> list[Problem]:
    problems: list[Problem] = []
    causes = set(bundle.causes)
    topics = set(getattr(bundle, "topics", {}) or {})
    for mid in MESSAGES:
        if mid not in spec.messages:
            problems.append((("messages",), f"message '{mid}' is missing"))
    for mid, text in spec.messages.items():
        if mid not in MESSAGES:
            problems.append((("messages", mid), f"unknown message '{mid}' (known: {', '.join(MESSAGES)})"))
        for name in placeholders(text):
            if name not in MESSAGE_FIELDS:
                problems.append((("messages", mid), f"unknown placeholder {{{name}}} (known: {', '.join(sorted(MESSAGE_FIELDS))})"))
    for read, text in spec.refs.items():
        for name in placeholders(text):
            if name != "now" and not _fact_in(name, [read]):
                problems.append((("refs", read), f"placeholder {{{name}}} is not a fact of the '{read}' read"))
    for read in ("job", "logs", "user", "membership"):
        if read not in spec.refs:
            problems.append((("refs",), f"ref '{read}' is missing"))

    for cid, probe in spec.probes.items():
        check = bundle.checks.get(cid)
        if check is None:
            problems.append((("probes", cid), f"unknown check '{cid}'"))
            continue
        answers = {a.id for a in check.answers}
        for ri, rule in enumerate(probe.rules):
            at = ("probes", cid, "rules", ri)
            if rule.answer is not None and rule.answer not in answers:
                problems.append((at + ("answer",), f"check '{cid}' has no answer '{rule.answer}' (it has {', '.join(sorted(answers))})"))
            if rule.ref is not None and rule.ref not in probe.reads:
                problems.append((at + ("ref",), f"ref '{rule.ref}' is not among this probe's reads"))
            for fact, want in rule.when.items():
                if fact not in FACTS:
                    problems.append((at + ("when", fact), f"unknown fact '{fact}'"))
                    continue
                needs, allowed = FACTS[fact]
                if not _fact_in(fact, probe.reads):
                    problems.append((at + ("when", fact), f"fact '{fact}' needs the '{needs}' read, which this probe does not declare"))
                if allowed == ANY:
                    problems.append((at + ("when", fact), f"fact '{fact}' is free text: use it in `says`, not in `when`"))
                    continue
                for value in want if isinstance(want, list) else [want]:
                    if allowed == CAUSE:
                        if value is not None and value not in causes:
                            problems.append((at + ("when", fact), f"unknown cause '{value}'"))
                    elif allowed == TOPIC:
                        if value is not None and value not in topics:
                            problems.append((at + ("when", fact), f"unknown topic '{value}'"))
                    elif not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
                        shown = ", ".join("null" if a is None else str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
                        problems.append((at + ("when", fact), f"'{fact}' is never {value!r} (it is one of: {shown})"))
            for name in placeholders(rule.says):
                if name not in FACTS:
                    problems.append((at + ("says",), f"unknown placeholder {{{name}}}"))
                elif not _fact_in(name, probe.reads):
                    problems.append((at + ("says",), f"placeholder {{{name}}} needs the '{FACTS[name][0]}' read"))
        for name in placeholders(probe.otherwise):
            if name not in FACTS or not _fact_in(name, probe.reads):
                problems.append((("probes", cid, "otherwise"), f"placeholder {{{name}}} is not a fact this probe reads"))
    return problems


def _fact_in(fact: str, reads: Sequence[str]) -> bool:
    entry = FACTS.get(fact)
    if entry is None:
        return False
    if fact == "user.upn":
        return any(r in USER_READS for r in reads)
    return entry[0] in reads


def load_probes(bundle: Bundle, path: str | os.PathLike[str] | None = None) -> ProbeFile:
    """Load and validate the probes against a loaded pack. Raises knowledge.loader.KnowledgeError."""
    file = Path(path) if path else DEFAULT_PROBES
    data, positions = _read_yaml(file)
    spec = _validate(ProbeFile, data, positions)
    _raise_problems(probe_problems(spec, bundle), positions)
    return spec
