"""The troubleshooting walk over the pack: start a symptom or topic, take what the report already says,
pick the next check by likelihood, conclude a cause, give its resolution, move on when it did not help.

No symptom, topic or cause is named here; the pack says which checks exist, what each answer means and
how likely each cause is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.engine.context import Ctx, clip
from bot.engine.planner import Planner, utility
from bot.events import Reply, Step
from bot.redact import scrub_secrets
from bot.state import Finding, Pending, Pin, State, Then
from bot.understand.reading import Evidence, Reading
from knowledge.schema import Answer, Cause, Check

if TYPE_CHECKING:
    from bot.engine.core import Dialogue


class Diagnosis:
    def __init__(self, d: Dialogue):
        self.d = d
        kb = d.kb
        # (flow, cause) -> the (check, answer) of that flow that confirms the cause: where evidence lands.
        self.confirming: dict[tuple[str, str], tuple[Check, Answer]] = {}
        for flow in kb.flows.values():
            for cid in flow.checks:
                check = kb.checks[cid]
                for ans in check.answers:
                    if ans.confirms:
                        self.confirming.setdefault((flow.id, ans.confirms), (check, ans))
        self.planner = Planner(lambda flow: kb.flows[flow].ask_first)

    # ---- starting --------------------------------------------------------------------------------

    def start(self, ctx: Ctx, flow_id: str, reading: Reading | None = None, announced: bool = False) -> None:
        """Walk `flow_id`, taking what `reading` (the report) already says. `announced`: the pasted
        error that led here was already named to the admin."""
        s = ctx.state
        kb, w = self.d.kb, self.d.words
        flow = kb.flows[flow_id]
        if flow_id in kb.topics:
            s.topic, s.symptom = flow_id, None
        else:
            s.symptom, s.topic = flow_id, None
        s.clarify = []
        s.phase = "checking"
        ctx.add(Reply(kind="info", text=w.say("topic-start" if flow_id in kb.topics else "flow-start", s.idp, title=w.word(flow.title, s.idp), summary=w.word(flow.summary, s.idp))))
        if reading is not None:
            self.take_report(ctx, reading, announce_errors=not announced)
        self.advance(ctx)

    def flow_for_cause(self, cause: str, preferred: str | None) -> str | None:
        """A flow in which `cause` can be found: the preferred one when it lists the cause."""
        flows = [f for f in self.d.kb.flows.values() if any(c.cause == cause for c in f.causes)]
        ids = [f.id for f in flows]
        if preferred in ids:
            return preferred
        return ids[0] if ids else None

    def take_report(self, ctx: Ctx, r: Reading, announce_errors: bool = True) -> list[str]:
        """Record what a message already answers: pasted errors, plain statements, answers to open checks.
        Returns the findings noted, and tells the admin what was understood."""
        s = ctx.state
        flow = self.d.kb.flows.get(s.flow or "")
        if flow is None:
            return []
        noted: list[str] = []
        # A pasted error first: it is exact. Then what the message answers in so many words; a cause
        # read from a plain statement last, and only when no answer in the same message rules it out
        # ("test connection succeeds, credentials are fine" is not a credentials problem).
        for ev in r.evidence:
            if ev.via in ("statement", "setting"):
                continue
            note = self._take_evidence(ctx, ev)
            if note and announce_errors:
                ctx.add(Reply(kind="info", text=note))
        confirmed = self._confirmed_causes(s)
        for ca in r.answers:
            if ca.check not in flow.checks or s.finding_for(ca.check):
                continue
            answer = self.d.kb.answer(ca.check, ca.answer)
            if answer is None or answer.kind == "unsure":
                continue
            if set(answer.rules_out) & confirmed:
                continue  # the message already pins that cause; a vaguer phrase must not undo it
            if answer.confirms:
                confirmed.add(answer.confirms)
            self.record(s, self.d.kb.checks[ca.check], answer, "report", None)
            noted.append(_lower_first(self.d.words.finding(answer, s.idp)).rstrip("."))
        ruled_out = {c for f in s.findings for c in (self.d.kb.answer(f.check, f.answer) or _NO_ANSWER).rules_out}
        # `confirmed` now holds every cause pinned or confirmed so far, this message's answers included.
        for ev in r.evidence:
            if ev.via not in ("statement", "setting") or ev.cause in ruled_out:
                continue
            if ev.via == "setting" and ev.cause in confirmed:
                continue  # its own check is in this flow and was recorded above
            if ev.via == "statement" and confirmed and ev.cause not in confirmed:
                # An answer in so many words already settles a cause ("we changed the department": Cato does
                # not take it); the model's reading of another cause would only contradict it.
                continue
            note = self._take_evidence(ctx, ev)
            if note:
                noted.append(_lower_first(note).rstrip("."))
        if noted:
            ctx.add(Reply(kind="info", text=self.d.words.say("already-known", s.idp, findings="; ".join(noted))))
        return noted

    def _take_evidence(self, ctx: Ctx, ev: Evidence) -> str | None:
        s = ctx.state
        w = self.d.words
        if ev.cause is None:
            return None
        entry = self.d.kb.errors.get(ev.error or "")
        if s.idp in (None, self.d.kb.generic_idp) and entry is not None and entry.idp in self.d.kb.idps:
            # An error only one IdP's console shows names the IdP, more surely than a vague "custom app".
            s.idp = entry.idp
        target = self.confirming.get((s.flow or "", ev.cause))
        if ev.rules_out:
            return None  # statements against a cause arrive as check answers (Reading.answers)
        if target is not None and ev.via != "setting":
            # A console option's state is not another check's answer: it stands as a pin below.
            check, answer = target
            if s.finding_for(check.id):
                return None
            source = "report" if ev.via == "statement" else "signature"
            self.record(s, check, answer, source, ev.matched if source == "signature" else None)
        elif any(c.cause == ev.cause for c in self.d.kb.flows[s.flow or ""].causes):
            if any(p.cause == ev.cause for p in s.pinned):
                return None
            s.pinned.append(Pin(cause=ev.cause, matched=clip(scrub_secrets(ev.matched), 200), source=ev.source))
        else:
            return None
        if ev.via in ("statement", "setting"):
            return w.cause_title(self.d.kb.causes[ev.cause], s.idp)  # listed with what the message told
        return w.say("error-recognised", s.idp, source=ev.source or "", text=clip(ev.matched, 90))

    # ---- findings and weights --------------------------------------------------------------------

    def record(self, s: State, check: Check, answer: Answer, source: str, said: str | None, ref: str | None = None) -> None:
        s.findings = [f for f in s.findings if f.check != check.id]
        s.findings.append(
            Finding(
                check=check.id,
                answer=answer.id,
                finding=self.d.words.finding(answer, s.idp),
                source=source,
                said=clip(scrub_secrets(said), 500) if said else None,
                ref=ref,
            )
        )

    def _confirmed_causes(self, s: State) -> set[str]:
        out = {p.cause for p in s.pinned}
        for f in s.findings:
            a = self.d.kb.answer(f.check, f.answer)
            if a and a.confirms:
                out.add(a.confirms)
        return out

    def weights(self, s: State) -> tuple[dict[str, float], str | None]:
        """Current cause weights (ruled-out and tried causes removed) and a confirmed cause, if any."""
        weights = {w.cause: w.weight for w in self.d.kb.causes_for(s.flow or "", s.idp)}
        confirmed: str | None = None
        for pin in s.pinned:
            if pin.cause in weights and pin.cause not in s.tried and confirmed is None:
                confirmed = pin.cause
        for f in s.findings:
            ans = self.d.kb.answer(f.check, f.answer)
            if ans is None:
                continue
            for cid in ans.rules_out:
                weights[cid] = 0.0
            for cid, factor in ans.boost.items():
                if cid in weights:
                    weights[cid] *= factor
            if ans.confirms and ans.confirms in weights and confirmed is None and ans.confirms not in s.tried:
                confirmed = ans.confirms
        for cid in s.tried:
            weights[cid] = 0.0
        if confirmed and weights.get(confirmed, 0) == 0:
            # A later answer ruled out what an earlier one confirmed: trust neither blindly, keep checking.
            confirmed = None
        return weights, confirmed

    def next_check(self, s: State, weights: dict[str, float]) -> Check | None:
        """The check after which the fewest questions are expected (bot/engine/planner.py); the flow's
        `ask_first` checks before any other while they can still settle a cause. Checks this IdP's
        console does not have are left out; one the connected tenant can answer goes first."""
        flow = self.d.kb.flows[s.flow or ""]
        checks = self.d.kb.checks_for(flow.id, s.idp)
        asked = frozenset(c.id for c in checks if s.finding_for(c.id))
        looker = self.d.looker
        if looker is not None:
            total = sum(weights.values()) or 1.0
            # A check the connected tenant can answer costs the admin nothing: look those up before
            # asking anything, even the flow's ask-first question — likeliest first.
            free = [
                (u, -order, c)
                for order, c in enumerate(checks)
                if c.id not in asked and c.id not in s.looked and looker.can_look(s, c.id) and (u := utility(c, weights, total)) > 0
            ]
            if free:
                return max(free, key=lambda t: t[:2])[2]
        return self.planner.pick(flow.id, checks, weights, asked)

    @staticmethod
    def _applies(check: Check, idp: str | None) -> bool:
        return check.applies_to(idp)

    # ---- moving on -------------------------------------------------------------------------------

    def advance(self, ctx: Ctx) -> None:
        s = ctx.state
        weights, confirmed = self.weights(s)
        if confirmed:
            self.conclude(ctx, confirmed, confirmed=True)
            return
        check = self.next_check(s, weights)
        if check is not None:
            self.d.prompts.check.ask(ctx, check)
            return
        remaining = [c for c, wt in sorted(weights.items(), key=lambda kv: -kv[1]) if wt > 0]
        if remaining:
            # Nothing left to ask: try the likeliest. A topic with one cause was settled by recognising it.
            only = s.topic is not None and len(self.d.kb.flows[s.topic].causes) == 1
            self.conclude(ctx, remaining[0], confirmed=only)
            return
        if self.offer_other_flows(ctx):
            return
        self.d.handoff.escalate(ctx, "escalate-no-cause", self.d.words.say("ticket.why-no-cause", s.idp))

    def offer_other_flows(self, ctx: Ctx) -> bool:
        """Every cause of this symptom is ruled out or tried: the report may have named the wrong symptom
        (admins often describe what they expected rather than what they see). Offer the others once,
        keeping every finding; the checks are shared, so none is asked twice."""
        s = ctx.state
        if s.repicked or s.flow is None:
            return False
        s.repicked = True
        others = [f for f in self.d.kb.symptoms if f != s.flow]
        s.cause = None
        self.d.prompts.clarify.ask(ctx, others, text="other-symptom")
        return True

    def conclude(self, ctx: Ctx, cause_id: str, confirmed: bool, announce: bool = True) -> None:
        s = ctx.state
        cause = self.d.kb.causes[cause_id]
        s.cause = cause_id
        s.cause_confirmed = confirmed
        if s.questions_to_cause is None:
            s.questions_to_cause = s.questions
        res = cause.resolution
        if s.idp is None and self.d.words.idp_specific(res.summary, res.steps, res.verify, res.notes, cause.title):
            self.d.prompts.idp.ask(ctx, Then(kind="cause", id=cause_id))
            return
        ctx.add(self.resolution_reply(s, cause, confirmed))
        if cause.as_designed and confirmed:
            # Established by the checks: nothing is broken, so nothing to try and no ticket unless asked.
            self.d.handoff.close_answered(ctx)
            return
        if res.escalate:
            title = self.d.words.cause_title(cause, s.idp)
            self.d.handoff.escalate(ctx, None, self.d.words.say("escalate-support-case", s.idp, title=title))
            return
        s.phase = "resolving"
        self.d.prompts.fixed.ask(ctx)

    def resolution_reply(self, s: State, cause: Cause, confirmed: bool) -> Reply:
        w, idp = self.d.words, s.idp
        res = cause.resolution
        lead = "cause-found" if confirmed else "cause-likely"
        if cause.as_designed and confirmed:
            lead = "as-designed"
        title = w.cause_title(cause, idp)
        text = f"{w.say(lead, idp, title=title)}\n{w.word(cause.summary, idp)}\n\n{w.word(res.summary, idp)}"
        notes = self.d.kb.notes(res, idp)
        after = w.say("verify", idp, text=w.word(res.verify, idp))
        if notes:
            after += "\n\n" + "\n".join(f"• {n}" for n in notes)
        steps = [Step(text=st.text, path=st.path) for st in self.d.kb.steps(res, idp)]
        return Reply(kind="resolution", title=title, text=text, steps=steps, after=after)

    def not_fixed(self, ctx: Ctx) -> None:
        s = ctx.state
        if s.cause and s.cause not in s.tried:
            s.tried.append(s.cause)
        s.cause = None
        s.cause_confirmed = False
        s.pending = None
        weights, _ = self.weights(s)
        if any(wt > 0 for wt in weights.values()):
            ctx.add(Reply(kind="info", text=self.d.words.say("next-cause", s.idp)))
            self.advance(ctx)
        elif not self.offer_other_flows(ctx):
            self.d.handoff.escalate(ctx, "escalate-not-fixed", self.d.words.say("ticket.why-not-fixed", s.idp, tried=self.tried_titles(s)))

    def tried_titles(self, s: State) -> str:
        return "; ".join(self.d.words.cause_title(self.d.kb.causes[c], s.idp) for c in s.tried if c in self.d.kb.causes)

    def resume(self, ctx: Ctx, then: Then | None) -> None:
        """Carry on with what was waiting behind a prompt (the IdP question)."""
        s = ctx.state
        kb = self.d.kb
        if then and then.kind == "check" and then.id in kb.checks and kb.checks[then.id].applies_to(s.idp):
            self.d.prompts.check.ask(ctx, kb.checks[then.id])
        elif then and then.kind == "cause" and then.id in kb.causes:
            self.conclude(ctx, then.id, confirmed=s.cause_confirmed, announce=False)
        elif then and then.kind == "field":
            self.d.handoff.carry_on(ctx)
        elif s.flow:
            self.advance(ctx)
        else:
            self.d.prompts.repeat(ctx)


class _NoAnswer:
    rules_out: list[str] = []


_NO_ANSWER = _NoAnswer()


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


__all__ = ["Diagnosis", "Pending"]
