"""The support ticket, prefilled from what the conversation learned.

Rendered as Markdown (to paste into the Cato support form) and carried as a `Ticket` model (JSON). All
text in it was scrubbed of secrets when it entered the conversation; it is scrubbed again here because a
ticket leaves our hands.
"""

from __future__ import annotations

from bot.events import Ticket, TicketStep
from bot.redact import scrub_secrets
from bot.state import State
from knowledge.schema import Bundle

TRANSCRIPT_LINES = 12


def build_ticket(state: State, bundle: Bundle) -> Ticket:
    checks, causes, symptoms, idps = bundle.checks, bundle.causes, bundle.symptoms, bundle.idps
    steps = []
    for f in state.findings:
        check = checks.get(f.check)
        title = check.title if check else f.check
        how = {"asked": "", "report": " (from the admin's report)", "signature": " (pasted error)"}[f.source]
        answer = f.finding + how
        if f.said:
            answer += f' — admin said: "{_clip(f.said, 200)}"'
        steps.append(TicketStep(check=title, answer=scrub_secrets(answer)))

    ruled_out = _ruled_out(state, bundle)
    symptom = symptoms.get(state.symptom or "")
    cause = causes.get(state.cause or "")
    idp = idps.get(state.idp or "")
    transcript = [f"{line.who}: {_clip(line.text, 300)}" for line in state.transcript[-TRANSCRIPT_LINES:]]
    ticket = Ticket(
        account=state.account,
        idp=idp.name if idp else None,
        idp_id=idp.id if idp else None,
        upns=list(state.upns),
        groups=list(state.groups),
        symptom=state.symptom,
        symptom_title=symptom.title if symptom else None,
        cause=state.cause,
        cause_title=cause.title if cause else None,
        steps=steps,
        ruled_out=[causes[c].title for c in ruled_out if c in causes],
        resolution_tried=[causes[c].title for c in state.tried if c in causes],
        transcript=[scrub_secrets(t) for t in transcript],
    )
    return ticket.model_copy(update={"body": render_markdown(ticket, state, bundle)})


def _ruled_out(state: State, bundle: Bundle) -> list[str]:
    out: list[str] = []
    for f in state.findings:
        ans = bundle.answer(f.check, f.answer)
        for cid in ans.rules_out if ans else []:
            if cid not in out:
                out.append(cid)
    return out


def missing_fields(state: State, bundle: Bundle) -> list[str]:
    """Ticket fields still to ask for, in the pack's order."""
    have = {
        "account": bool(state.account),
        "idp": bool(state.idp),
        "upns": bool(state.upns),
        "groups": bool(state.groups),
    }
    return [f.id for f in bundle.pack.escalation.fields if not have[f.id] and f.id not in state.skipped]


def render_markdown(ticket: Ticket, state: State, bundle: Bundle) -> str:
    esc = bundle.pack.escalation
    none = "_not provided_"
    lines = [
        "## SCIM provisioning issue — prepared with scim-help",
        "",
        f"- **Account name / number:** {ticket.account or none}",
        f"- **Identity provider:** {ticket.idp or none}",
        f"- **Affected user UPNs:** {', '.join(ticket.upns) if ticket.upns else none}",
        f"- **IdP groups:** {', '.join(ticket.groups) if ticket.groups else none}",
        f"- **Symptom:** {ticket.symptom_title or none}",
    ]
    if ticket.cause_title:
        how = "confirmed by the checks below" if state.cause_confirmed else "most likely, not confirmed"
        lines.append(f"- **Suspected cause:** {ticket.cause_title} ({how})")
    if ticket.resolution_tried:
        lines.append(f"- **Resolution tried without success:** {'; '.join(ticket.resolution_tried)}")
    if state.escalation_reason:
        lines.append(f"- **Why escalated:** {state.escalation_reason}")
    lines += ["", "### Troubleshooting steps taken"]
    if ticket.steps:
        lines += [f"{i}. **{s.check}:** {s.answer}" for i, s in enumerate(ticket.steps, 1)]
    else:
        lines.append("_No checks were completed._")
    if ticket.ruled_out:
        lines += ["", "### Causes ruled out", *[f"- {c}" for c in ticket.ruled_out]]
    lines += ["", "### Please attach", *[f"- {item}" for item in esc.include]]
    if ticket.transcript:
        lines += ["", "### Conversation (last messages)", "```", *ticket.transcript, "```"]
    return scrub_secrets("\n".join(lines))


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
