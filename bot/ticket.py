"""The support ticket, prefilled from what the conversation learned.

Rendered as Markdown (to paste into the support form) and carried as a `Ticket` model (JSON). Every label
and heading comes from the pack (`ticket.*` messages, the escalation fields' labels), so each view of the
ticket — Markdown, Slack, Teams, web — reads the same words. Only what the admin established goes in: a
finding with the admin's own words when they typed the answer, never a skip, a question or the bot's
sentences; the transcript shows what the admin saw (button labels, not ids). All text in it was scrubbed
of secrets when it entered the conversation; it is scrubbed again here because a ticket leaves our hands.
"""

from __future__ import annotations

from bot.events import Ticket, TicketStep
from bot.redact import scrub_secrets
from bot.state import State
from knowledge.schema import Bundle

TRANSCRIPT_LINES = 12
# Label key -> the pack's message id; the four fields' labels come from the escalation fields.
TICKET_LABELS = {
    "header": "ticket.header",
    "symptom": "ticket.symptom",
    "topic": "ticket.topic",
    "cause": "ticket.cause",
    "tried": "ticket.tried",
    "why": "ticket.why",
    "steps": "ticket.steps",
    "ruled_out": "ticket.ruled-out",
    "attach": "ticket.attach",
    "transcript": "ticket.transcript",
    "not_provided": "ticket.not-provided",
}


def build_ticket(state: State, bundle: Bundle) -> Ticket:
    idp_id = state.idp
    say = lambda mid, **kw: bundle.message(mid, idp_id, **kw)  # noqa: E731 - a local shorthand
    steps = []
    for f in state.findings:
        check = bundle.checks.get(f.check)
        title = bundle.word(check.title, idp_id) if check else f.check
        how = {"asked": "", "report": say("ticket.from-report"), "signature": say("ticket.pasted"), "graph": say("ticket.looked-up")}[f.source]
        answer = f.finding + (f" ({how})" if how else "")
        if f.ref:
            answer += f" [{f.ref}]"
        if f.said and f.source == "asked":
            answer += " — " + say("ticket.admin-said", text=_clip(f.said, 200))
        steps.append(TicketStep(check=title, answer=scrub_secrets(answer)))
    for pin in state.pinned:
        cause = bundle.causes.get(pin.cause)
        what = bundle.word(cause.title, idp_id) if cause else pin.cause
        steps.append(TicketStep(check=what, answer=scrub_secrets(f"{say('ticket.pasted')}: “{_clip(pin.matched, 200)}”")))

    flow = bundle.flows.get(state.flow or "")
    cause = bundle.causes.get(state.cause or "")
    idp = bundle.idps.get(idp_id or "")
    transcript = [f"{line.who}: {_clip(line.text, 300)}" for line in state.transcript[-TRANSCRIPT_LINES:]]
    ticket = Ticket(
        account=state.account,
        idp=_idp_display(state, bundle),
        idp_id=idp.id if idp else None,
        upns=list(state.upns),
        groups=list(state.groups),
        symptom=state.symptom,
        topic=state.topic,
        symptom_title=bundle.word(flow.title, idp_id) if flow else None,
        cause=state.cause,
        cause_title=bundle.word(cause.title, idp_id) if cause else None,
        steps=steps,
        ruled_out=[bundle.word(bundle.causes[c].title, idp_id) for c in _ruled_out(state, bundle) if c in bundle.causes],
        resolution_tried=[bundle.word(bundle.causes[c].title, idp_id) for c in state.tried if c in bundle.causes],
        why=state.escalation_reason,
        attachments=[*bundle.pack.escalation.include, *bundle.attachments(idp_id)],
        transcript=[scrub_secrets(t) for t in transcript],
        labels={**{k: bundle.message(m, idp_id) for k, m in TICKET_LABELS.items()}, **field_labels(bundle, idp_id)},
    )
    return ticket.model_copy(update={"body": render_markdown(ticket, state, bundle)})


def _idp_display(state: State, bundle: Bundle) -> str | None:
    """The IdP as the admin named it ("JumpCloud"), with the pack's name when that says more."""
    idp = bundle.idps.get(state.idp or "")
    if state.idp_named and idp and state.idp_named.casefold() != idp.name.casefold():
        return state.idp_named if state.idp != bundle.generic_idp else state.idp_named
    if state.idp_named and not idp:
        return state.idp_named
    return idp.name if idp else None


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


def field_labels(bundle: Bundle, idp: str | None = None) -> dict[str, str]:
    """The ticket fields' labels, as every view of the ticket shows them."""
    return {f.id: bundle.word(f.label, idp) for f in bundle.pack.escalation.fields}


def render_markdown(ticket: Ticket, state: State, bundle: Bundle) -> str:
    idp = state.idp
    say = lambda mid, **kw: bundle.message(mid, idp, **kw)  # noqa: E731 - a local shorthand
    none = f"_{say('ticket.not-provided')}_"
    labels = field_labels(bundle, idp)
    values = {
        "account": ticket.account,
        "idp": ticket.idp,
        "upns": ", ".join(ticket.upns),
        "groups": ", ".join(ticket.groups),
    }
    lines = [f"## {say('ticket.header')}", ""]
    lines += [f"- **{labels[f.id]}:** {values[f.id] or none}" for f in bundle.pack.escalation.fields]
    lines.append(f"- **{say('ticket.topic' if ticket.topic else 'ticket.symptom')}:** {ticket.symptom_title or none}")
    if ticket.cause_title:
        how = say("ticket.cause-confirmed") if state.cause_confirmed else say("ticket.cause-likely")
        lines.append(f"- **{say('ticket.cause')}:** {ticket.cause_title} ({how})")
    if ticket.resolution_tried:
        lines.append(f"- **{say('ticket.tried')}:** {'; '.join(ticket.resolution_tried)}")
    if ticket.why:
        lines.append(f"- **{say('ticket.why')}:** {ticket.why}")
    lines += ["", f"### {say('ticket.steps')}"]
    if ticket.steps:
        lines += [f"{i}. **{s.check}:** {s.answer}" for i, s in enumerate(ticket.steps, 1)]
    else:
        lines.append(f"_{say('ticket.no-steps')}_")
    if ticket.ruled_out:
        lines += ["", f"### {say('ticket.ruled-out')}", *[f"- {c}" for c in ticket.ruled_out]]
    # What the playbook asks every ticket to include, then the screens to attach for this IdP.
    lines += ["", f"### {say('ticket.attach')}", *[f"- {item}" for item in ticket.attachments]]
    if ticket.transcript:
        lines += ["", f"### {say('ticket.transcript')}", "```", *ticket.transcript, "```"]
    return scrub_secrets("\n".join(lines))


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
