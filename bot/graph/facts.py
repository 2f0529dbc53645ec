"""From Graph's documented response shapes to the named facts that knowledge/probes.yaml reasons over.

Pure functions, no I/O: each takes what one read returned and gives its facts (see `knowledge.probes.FACTS`
for the vocabulary). Error codes are mapped to causes through the pack's error catalogue — the catalogue
entries (or, on a pack without one, the causes' exact signatures) that apply to Entra.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from knowledge.schema import Bundle

NONE = "none"  # how a missing value reads in a sentence or a ref


# ---- the error catalogue ------------------------------------------------------------------------------


def catalogue(bundle: Bundle, texts: Iterable[str | None], idp: str = "entra") -> tuple[str | None, str | None]:
    """(cause, topic) of the first catalogue entry that one of the texts matches, texts taken in order of
    authority: the error code before the prose around it."""
    find = getattr(bundle, "find_errors", None)  # the pack's `errors:` catalogue (schema v2)
    for text in texts:
        if not text:
            continue
        if find is not None:
            for entry in find(text, idp):
                cause, topic = getattr(entry, "cause", None), getattr(entry, "topic", None)
                if cause or topic:
                    return cause, topic
            continue
        low = text.lower()
        for cause in bundle.pack.causes:
            for sig in getattr(cause, "signatures", []):
                if sig.match == "exact" and sig.text.lower() in low:
                    return cause.id, None
    return None, None


def catalogue_cause(bundle: Bundle, texts: Iterable[str | None], idp: str = "entra") -> str | None:
    """The cause the catalogue gives the first text it recognises as pointing at a cause."""
    for text in texts:
        cause, _ = catalogue(bundle, [text], idp)
        if cause:
            return cause
    return None


# ---- GET servicePrincipals/{sp}/synchronization/jobs ----------------------------------------------------


def pick_job(jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The provisioning job: the one that is configured, when a service principal has several."""
    configured = [j for j in jobs if _get(j, "status", "code") not in (None, "NotConfigured")]
    return next(iter(configured or jobs), None)


def job_facts(job: dict[str, Any] | None, bundle: Bundle) -> dict[str, Any]:
    if job is None:
        return {"found": False, "status": NONE, "quarantined": False, "quarantine_reason": NONE, "error": NONE,
                "error_cause": None, "last_state": None, "initial_done": None, "when": NONE, "template": NONE}
    status = _obj(job.get("status")) or {}
    quarantine = _obj(status.get("quarantine"))
    last = _obj(status.get("lastExecution"))
    q_error = _obj(quarantine.get("error")) if quarantine else None
    l_error = _obj(last.get("error")) if last else None
    error = q_error or l_error or {}
    code = status.get("code")
    reason = quarantine.get("reason") if quarantine else None
    when = (last or {}).get("timeEnded") or (last or {}).get("timeBegan") or (quarantine or {}).get("currentBegan")
    return {
        "found": True,
        "status": str(code) if code else NONE,
        "quarantined": quarantine is not None or code == "Quarantine",
        "quarantine_reason": str(reason) if reason else NONE,
        "error": str(error.get("code")) if error.get("code") else NONE,
        "error_cause": catalogue_cause(bundle, [error.get("code"), reason, error.get("message")]),
        "last_state": str(last["state"]) if last and last.get("state") else None,
        # steadyStateFirstAchievedTime stays at 0001-01-01 until the initial cycle has finished.
        "initial_done": _initial_done(status),
        "when": str(when) if when else NONE,
        "template": str(job.get("templateId") or NONE),
    }


def _initial_done(status: dict[str, Any]) -> bool | None:
    first = status.get("steadyStateFirstAchievedTime")
    if not isinstance(first, str) or not first:
        return None
    return not first.startswith("0001-")


# ---- GET users/{upn} -----------------------------------------------------------------------------------


def user_facts(upn: str, user: dict[str, Any] | None) -> dict[str, Any]:
    if user is None:
        return {"upn": upn, "found": False, "enabled": None, "has_mail": None}
    enabled = user.get("accountEnabled")
    mail = user.get("mail")
    return {
        "upn": str(user.get("userPrincipalName") or upn),
        "found": True,
        "enabled": enabled if isinstance(enabled, bool) else None,
        "has_mail": bool(isinstance(mail, str) and mail.strip()),
    }


# ---- appRoleAssignedTo vs memberOf / transitiveMemberOf ------------------------------------------------------


def membership_facts(
    user_id: str, assignments: list[dict[str, Any]], member_of: list[dict[str, Any]], transitive: list[dict[str, Any]]
) -> dict[str, Any]:
    """How the user reaches the app: assigned directly, through a group they are a direct member of,
    only through a group nested inside an assigned group (not provisioned), or not at all."""
    assigned_users = {a.get("principalId") for a in assignments if a.get("principalType") == "User"}
    assigned_groups = {
        a.get("principalId"): str(a.get("principalDisplayName") or a.get("principalId"))
        for a in assignments
        if a.get("principalType") == "Group"
    }
    direct = {g.get("id"): str(g.get("displayName") or g.get("id")) for g in member_of if _is_group(g)}
    every = {g.get("id"): str(g.get("displayName") or g.get("id")) for g in transitive if _is_group(g)}
    via_direct = [assigned_groups[g] for g in direct if g in assigned_groups]
    via_nested = [assigned_groups[g] for g in every if g in assigned_groups and g not in direct]
    if user_id in assigned_users:
        kind, groups = "direct", via_direct
    elif via_direct:
        kind, groups = "group", via_direct
    elif via_nested:
        kind, groups = "nested", via_nested
    else:
        kind, groups = "none", []
    return {
        "assigned": kind,
        "groups": _names(groups),
        "direct_groups": _names(direct.values()),
    }


def _is_group(obj: dict[str, Any]) -> bool:
    kind = obj.get("@odata.type")
    return kind is None or kind == "#microsoft.graph.group"


def _names(names: Iterable[str], limit: int = 4) -> str:
    names = sorted(set(names))
    if not names:
        return NONE
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


# ---- GET auditLogs/provisioning ----------------------------------------------------------------------------


def latest_entry(entries: list[dict[str, Any]], service_principal_id: str) -> dict[str, Any] | None:
    """The newest entry about this app (entries of other apps provisioning the same user are ignored)."""
    mine = [e for e in entries if _entry_sp(e) in (None, service_principal_id.lower())]
    mine.sort(key=lambda e: str(e.get("activityDateTime") or ""), reverse=True)
    return mine[0] if mine else None


def _entry_sp(entry: dict[str, Any]) -> str | None:
    sp = entry.get("servicePrincipal")
    if isinstance(sp, list):  # typed as a collection in the reference, an object in its examples
        sp = sp[0] if sp else None
    sp_id = sp.get("id") if isinstance(sp, dict) else None
    return str(sp_id).lower() if sp_id else None


def log_facts(entry: dict[str, Any] | None, bundle: Bundle) -> dict[str, Any]:
    if entry is None:
        return {"found": False, "status": None, "error": NONE, "cause": None, "topic": None, "in_scope": None,
                "sent_email": None, "action": NONE, "when": NONE, "id": NONE}
    info = entry.get("provisioningStatusInfo") or entry.get("statusInfo") or {}
    info = info if isinstance(info, dict) else {}
    status = info.get("status")
    error = _obj(info.get("errorInformation")) or {}
    steps = [s for s in entry.get("provisioningSteps") or [] if isinstance(s, dict)]
    texts: list[str | None] = [error.get("errorCode"), error.get("reason")]
    for step in steps:
        if str(step.get("status", "")).lower() in ("failure", "skipped", "warning"):
            texts.append(step.get("description"))
            details = _obj(step.get("details")) or {}
            texts.extend(f"{k}: {v}" for k, v in details.items())
    scoping = [s for s in steps if str(s.get("provisioningStepType", "")).lower() == "scoping"]
    if not scoping:
        in_scope = None
    else:
        in_scope = all(str(s.get("status", "")).lower() == "success" for s in scoping)
    action = str(entry.get("provisioningAction") or entry.get("action") or NONE)
    props = [p for p in entry.get("modifiedProperties") or [] if isinstance(p, dict)]
    emails = [p for p in props if str(p.get("displayName", "")).lower().startswith("emails")]
    if any(str(p.get("newValue") or "").strip() for p in emails):
        sent_email: bool | None = True
    elif action.lower() == "create" and status == "success":
        sent_email = False  # a create exports every mapped attribute that has a value
    else:
        sent_email = None
    code = error.get("errorCode")
    if not code:
        code = next((str(v) for s in steps for k, v in (_obj(s.get("details")) or {}).items() if str(k).lower() == "skipreason"), None)
    cause, topic = catalogue(bundle, texts)
    return {
        "found": True,
        "status": str(status) if status in ("success", "failure", "skipped", "warning") else None,
        "error": str(code) if code else NONE,
        "cause": cause,
        "topic": topic,
        "in_scope": in_scope,
        "sent_email": sent_email,
        "action": action,
        "when": str(entry.get("activityDateTime") or NONE),
        "id": str(entry.get("id") or NONE),
    }


def _obj(value: Any) -> dict[str, Any] | None:
    """`value` when it is a JSON object, else None: Graph's shapes are documented, not guaranteed."""
    return value if isinstance(value, dict) else None


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj
