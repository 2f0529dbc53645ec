"""Endings: resolved, answered as designed, or handed off to support with a prefilled ticket; the ticket
fields asked one at a time; the feedback question; help and the commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bot.engine.context import Ctx, clip
from bot.events import Choice, Reply
from bot.redact import scrub_secrets
from bot.state import State
from bot.ticket import build_ticket, field_labels, missing_fields
from bot.understand.reading import Reading

if TYPE_CHECKING:
    from bot.engine.core import Dialogue

MAX_UPNS = 50
MAX_GROUPS = 30


class Handoff:
    def __init__(self, d: Dialogue):
        self.d = d

    # ---- endings ---------------------------------------------------------------------------------

    def resolved(self, ctx: Ctx) -> None:
        self._close(ctx, "resolved", "fixed-thanks")

    def close_answered(self, ctx: Ctx) -> None:
        """The finding is that it works as designed: nothing to fix, and a ticket only if asked for."""
        self._close(ctx, "answered", "as-designed-close")

    def _close(self, ctx: Ctx, outcome: Literal["resolved", "answered"], message: str) -> None:
        s = ctx.state
        s.outcome = outcome
        s.phase = "closed"
        ctx.add(Reply(kind="info", text=self.d.words.say(message, s.idp)))
        self.d.prompts.feedback.ask(ctx)

    def escalate(self, ctx: Ctx, say: str | None, reason: str) -> None:
        """Hand off to support. `say`: the message id told to the admin before the intro (None: the
        intro alone); `reason`: the real reason, in the ticket's words, for "why escalated"."""
        s = ctx.state
        s.phase = "escalating"
        s.escalation_reason = s.escalation_reason or reason
        w = self.d.words
        intro_text = w.word(self.d.kb.pack.escalation.intro, s.idp)
        ctx.add(Reply(kind="info", text=f"{w.say(say, s.idp)} {intro_text}" if say else intro_text))
        self.carry_on(ctx)

    def carry_on(self, ctx: Ctx) -> None:
        missing = missing_fields(ctx.state, self.d.kb)
        if missing:
            self.d.prompts.field.ask(ctx, missing[0])
            return
        self.finish_ticket(ctx)

    def set_field(self, ctx: Ctx, field_id: str, value: str | tuple[str, ...]) -> None:
        s = ctx.state
        if field_id == "account" and isinstance(value, str):
            s.account = clip(scrub_secrets(value), 120)
        elif field_id == "upns":
            for upn in ([value] if isinstance(value, str) else value):
                if upn not in s.upns and len(s.upns) < MAX_UPNS:
                    s.upns.append(upn)
        elif field_id == "groups":
            groups = [value] if isinstance(value, str) else list(value)
            s.groups = [clip(scrub_secrets(g), 120) for g in groups][:MAX_GROUPS]
        then = s.pending.then if s.pending else None
        s.pending = None
        if then is not None and then.kind != "field":
            self.d.diagnosis.resume(ctx, then)  # asked for a lookup, not for the ticket
            return
        self.carry_on(ctx)

    def finish_ticket(self, ctx: Ctx) -> None:
        s = ctx.state
        ticket = build_ticket(s, self.d.kb)
        w = self.d.words
        s.outcome = "escalated"
        s.phase = "closed"
        ctx.add(
            Reply(
                kind="ticket",
                title=w.say("ticket-title", s.idp),
                text=w.word(self.d.kb.pack.escalation.guidance, s.idp),
                link=self.d.support_url,
                link_label=w.word(self.d.kb.pack.escalation.portal_label, s.idp),
                ticket=ticket,
                choices=[Choice(id="cmd:restart", label=w.say("start-over", s.idp))],
            )
        )
        self.d.prompts.feedback.ask(ctx)

    def show_ticket(self, ctx: Ctx) -> None:
        s = ctx.state
        ticket = build_ticket(s, self.d.kb)
        missing = missing_fields(s, self.d.kb)
        w = self.d.words
        if missing and s.phase != "closed":
            label = field_labels(self.d.kb, s.idp)
            labels = ", ".join(label[f] for f in missing)
            note = w.say("ticket-draft-missing", s.idp, missing=labels)
        else:
            note = w.say("ticket-draft-so-far", s.idp)
        ctx.add(Reply(kind="ticket", title=w.say("ticket-draft-title", s.idp), text=note, ticket=ticket))

    # ---- what the admin volunteers ---------------------------------------------------------------

    def harvest(self, s: State, r: Reading) -> None:
        """Facts for the ticket that the admin gives in any message."""
        e = r.entities
        if e.idp and not s.idp:
            s.idp = e.idp
        if e.idp_named and (not s.idp_named or e.idp == s.idp):
            s.idp_named = e.idp_named
        for upn in (*e.upns, *e.emails):
            if upn not in s.upns and len(s.upns) < MAX_UPNS:
                s.upns.append(upn)
        if e.account and not s.account:
            s.account = clip(scrub_secrets(e.account), 120)
        for g in e.groups:
            if g not in s.groups and len(s.groups) < MAX_GROUPS:
                s.groups.append(clip(g, 120))

    # ---- help and commands -----------------------------------------------------------------------

    def help(self, ctx: Ctx, greeting: bool = False) -> None:
        s = ctx.state
        picker = greeting or s.pending is None
        w = self.d.words
        text = f"{w.say('greeting' if greeting else 'help', s.idp)}\n{w.say('commands', s.idp)}"
        ctx.add(Reply(kind="greeting", text=text, choices=self.d.flow_choices(s) if picker else []))

    def command(self, ctx: Ctx, name: str, r: Reading | None = None) -> None:
        s = ctx.state
        w = self.d.words
        if name == "restart":
            self.d.restart(ctx, None)
        elif name == "help":
            self.help(ctx)
            if s.pending:
                self.d.prompts.repeat(ctx)
        elif name == "escalate":
            if s.phase == "closed" and s.outcome == "escalated":
                self.show_ticket(ctx)
                return
            reason = w.say("ticket.why-asked", s.idp, step=self._where(s))
            if s.tried:
                reason = f"{w.say('ticket.why-not-fixed', s.idp, tried=self.d.diagnosis.tried_titles(s))} {reason}"
            self.escalate(ctx, "escalate-asked", reason)
        elif name == "ticket":
            self.show_ticket(ctx)
            if s.pending and s.phase != "closed":
                self.d.prompts.repeat(ctx)
        elif name == "cancel":
            if s.active:
                s.outcome = "cancelled"
            s.phase = "closed"
            s.pending = None
            ctx.add(Reply(kind="info", text=w.say("cancelled", s.idp)))
        else:
            self.help(ctx)

    def _where(self, s: State) -> str:
        """Where the conversation stood when a human was asked for, for the ticket's "why escalated"."""
        w, kb = self.d.words, self.d.kb
        if s.pending and s.pending.kind == "check" and s.pending.id in kb.checks:
            return w.check_title(kb.checks[s.pending.id], s.idp)
        if s.cause and s.cause in kb.causes:
            return w.cause_title(kb.causes[s.cause], s.idp)
        flow = kb.flows.get(s.flow or "")
        return w.word(flow.title, s.idp) if flow else w.say("where-start", s.idp)
