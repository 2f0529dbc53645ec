"""The troubleshooting conversation: one turn = one reading of the message, one decision, state saved.

    triage -> [clarifying] -> checking -> resolving -> (fixed: closed) | (not fixed: checking ...)
                                 \\-> escalating (ticket fields, one at a time) -> closed (ticket + feedback)

The engine parses no text: `bot.understand.Reader` turns each message, given what is pending, into one
`Reading`, and the prompt kinds in bot/engine/prompts.py act on it. Nothing here names a symptom, cause
or IdP, or says a sentence of its own: the pack holds them. Each turn runs under the store's
per-conversation lock and ends with the state saved, so concurrent messages are serialised and a restart
resumes the conversation.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from bot.engine.choices import Prompts
from bot.engine.context import Ctx, clip
from bot.engine.diagnose import Diagnosis
from bot.engine.handoff import Handoff
from bot.engine.words import Words
from bot.events import Choice, Incoming, Phase, Reply, Turn
from bot.outcome import OUTCOME_KIND, Ending, Outcome, recorded
from bot.redact import pseudonymise, scrub_secrets
from bot.state import Finding, Line, State, Then
from bot.store.base import Held, Store
from bot.understand import Reader
from bot.understand.reading import Context, Reading
from knowledge.schema import Bundle

log = logging.getLogger("scim_help.engine")

MAX_TEXT = 4000  # longer messages are cut before anything else looks at them
TRANSCRIPT_KEEP = 60
# How long a delivery key (Incoming.once) is remembered: platforms retry within minutes, a day is ample.
ONCE_TTL = 24 * 3600
# Commands that win over anything else the message says; "help" and "ticket" only when nothing else is.
STRONG_COMMANDS = ("escalate", "restart", "cancel")


class Looker(Protocol):
    """Looks a check's answer up instead of asking (bot/graph): see bot/graph/looker.py."""

    def can_look(self, state: State, check_id: str) -> bool: ...

    async def look(self, state: State, check_id: str): ...  # -> Look | None


class Dialogue:
    """The engine's parts, wired once per pack: what each part needs from the others goes through here."""

    def __init__(self, bundle: Bundle, reader: Reader, support_url: str | None, looker: Looker | None = None):
        self.kb = bundle
        self.reader = reader
        self.words = Words(bundle)
        self.support_url = support_url or bundle.pack.escalation.portal_url
        self.looker = looker
        self.prompts = Prompts(self)
        self.diagnosis = Diagnosis(self)
        self.handoff = Handoff(self)

    def flow_choices(self, s: State) -> list[Choice]:
        return [Choice(id=f.id, label=self.words.word(f.title, s.idp)) for f in self.kb.pack.symptoms]

    def context(self, s: State | None, directed: bool) -> Context:
        if s is None or not s.active and not (s.pending and s.pending.kind == "feedback"):
            return Context(addressed=directed, open_checks=tuple(self.kb.checks))
        flow = self.kb.flows.get(s.flow or "")
        open_checks = tuple(c for c in (flow.checks if flow else self.kb.checks) if not s.finding_for(c))
        return Context(
            pending=self.prompts.spec(s),
            symptom=s.symptom,
            topic=s.topic,
            idp=s.idp,
            open_checks=open_checks,
            addressed=directed,
        )

    # ---- one typed message -----------------------------------------------------------------------

    def on_text(self, ctx: Ctx, r: Reading) -> None:
        s = ctx.state
        strong = next((c for c in r.commands if c in STRONG_COMMANDS), None)
        if strong:
            if s.flow is None and (r.symptom or r.topic) and strong == "escalate":
                self._take_opening(ctx, r)
            self.handoff.command(ctx, strong, r)
            return
        if r.commands and r.act not in ("answer", "report", "info"):
            self.handoff.command(ctx, r.commands[0], r)
            return
        prompt = self.prompts.current(s)
        if prompt is None or s.phase in ("triage", "off-topic"):
            self.triage(ctx, r)
            return
        known_idp = s.idp
        self.handoff.harvest(s, r)
        if r.act == "complaint" or self._idp_corrected(known_idp, r):
            self.on_complaint(ctx, r, known_idp)
            return
        if self._switched(ctx, r):
            return
        if prompt.on_reading(ctx, r):
            return
        if self._new_evidence(ctx, r):
            return
        if r.act == "question":
            prompt.explain(ctx)
        elif r.act == "fixed" and s.flow and s.phase in ("checking", "resolving"):
            self.handoff.resolved(ctx)
        elif r.act == "still-broken" and s.phase == "resolving" and not self._new_problem(s, r):
            self.diagnosis.not_fixed(ctx)
        elif s.pending and s.pending.kind == "feedback":
            self.restart(ctx, r)  # anything else after the end is a new problem report
        elif r.act == "aside":
            # Not an answer: acknowledged, and counted as a try, so chatter cannot keep a question open.
            if s.pending is not None:
                s.pending.reasks += 1
            ctx.add(Reply(kind="info", text=self.words.say("aside", s.idp)))
            prompt.again(ctx)
        elif self._new_problem(s, r):
            self.prompts.switch.ask(ctx, r.topic or r.symptom or "")
        else:
            prompt.reask(ctx, self.words.say("reask-answer", s.idp))

    def _new_problem(self, s: State, r: Reading) -> bool:
        """A message that clearly describes another problem than the one being walked."""
        flow = r.topic or r.symptom
        return bool(r.in_domain and flow and flow in self.kb.flows and flow != s.flow and s.pending and s.pending.kind != "switch")

    def _idp_corrected(self, known: str | None, r: Reading) -> bool:
        return bool(r.entities.idp and known and r.entities.idp != known and r.act in ("info", "complaint"))

    def on_complaint(self, ctx: Ctx, r: Reading, known_idp: str | None) -> None:
        """A complaint or correction is never an answer: acknowledge it and act on what it says."""
        s = ctx.state
        new_idp = r.entities.idp
        if new_idp and new_idp != known_idp:
            s.idp = new_idp
            s.idp_named = r.entities.idp_named or s.idp_named
            # The pack's name for a known vendor; for "another IdP", the name the admin used.
            name = self.kb.idps[new_idp].name if new_idp != self.kb.generic_idp else (s.idp_named or self.kb.idps[new_idp].name)
            ctx.add(Reply(kind="info", text=self.words.say("complaint-idp", new_idp, idp=name)))
            self._show_again(ctx)
            return
        if self._new_evidence(ctx, r):
            return
        ctx.add(Reply(kind="info", text=self.words.say("complaint", s.idp)))
        p = s.pending
        if p is not None and p.kind in ("check", "fixed") and not s.idp_named:
            # The commonest reason a step does not match the screen: another IdP's console.
            self.prompts.idp.ask(ctx, Then(kind="check", id=p.id) if p.kind == "check" else Then(kind="cause", id=s.cause))
            return
        self.prompts.repeat(ctx)

    def _show_again(self, ctx: Ctx) -> None:
        """Show the current step again (in the wording of the IdP just learned)."""
        s = ctx.state
        p = s.pending
        if p is not None and p.kind == "fixed" and s.cause:
            self.diagnosis.conclude(ctx, s.cause, confirmed=s.cause_confirmed, announce=False)
        elif p is not None and p.kind == "check" and p.id in self.kb.checks:
            check = self.kb.checks[p.id]
            if self.diagnosis._applies(check, s.idp):
                self.prompts.check.ask(ctx, check)
            else:
                s.pending = None
                self.diagnosis.advance(ctx)
        else:
            self.prompts.repeat(ctx)

    def _switched(self, ctx: Ctx, r: Reading) -> bool:
        """A pasted error that pins a cause or topic another flow stands for: the error is the stronger
        evidence, so the conversation moves there, keeping the checks done (they are shared)."""
        s = ctx.state
        for ev in r.evidence:
            if ev.via in ("statement", "setting") or ev.rules_out:
                continue
            target = ev.topic if ev.topic in self.kb.flows else None
            if target is None and ev.cause:
                here = any(c.cause == ev.cause for c in self.kb.flows[s.flow or ""].causes) if s.flow else False
                if here:
                    continue
                target = self.diagnosis.flow_for_cause(ev.cause, r.symptom)
            if target and target != s.flow:
                src = ev.source or ""
                ctx.add(Reply(kind="info", text=self.words.say("error-other-flow", s.idp, source=src, text=clip(ev.matched, 90), title=self.words.word(self.kb.flows[target].title, s.idp))))
                s.pending = None
                s.cause = None
                self.diagnosis.start(ctx, target, r, announced=True)
                return True
        return False

    def _new_evidence(self, ctx: Ctx, r: Reading) -> bool:
        """New information mid-conversation (a pasted error, a plain statement, answers to other checks):
        use it, then carry on from what it changes."""
        s = ctx.state
        if not s.flow or not (r.evidence or r.answers):
            return False
        before = (len(s.findings), len(s.pinned))
        self.diagnosis.take_report(ctx, r)
        if (len(s.findings), len(s.pinned)) == before:
            return False
        if s.phase == "resolving":
            _, confirmed = self.diagnosis.weights(s)
            if confirmed == s.cause:
                self.prompts.fixed.again(ctx)
                return True
            s.cause = None
        s.pending = None
        self.diagnosis.advance(ctx)
        return True

    # ---- opening -----------------------------------------------------------------------------------

    def triage(self, ctx: Ctx, r: Reading) -> None:
        s = ctx.state
        self.handoff.harvest(s, r)
        flow = self._opening_flow(r)
        if flow:
            self.diagnosis.start(ctx, flow, r)
            return
        if r.in_domain:
            # A SCIM problem whose symptom is unclear: the picker, likeliest first.
            ranked = [x.symptom for x in r.symptoms if x.symptom in self.kb.symptoms]
            ranked += [sid for sid in self.kb.symptoms if sid not in ranked]
            self.prompts.clarify.ask(ctx, ranked, unsure=False)
            return
        s.phase = "off-topic"
        s.pending = None
        s.outcome = "off-topic"
        ctx.add(Reply(kind="off-topic", text=self.words.say("off-topic", s.idp), choices=self.flow_choices(s)))

    def _opening_flow(self, r: Reading) -> str | None:
        if r.topic and r.topic in self.kb.flows:
            return r.topic
        if r.symptom and r.symptom in self.kb.flows:
            return r.symptom
        cause = r.cause
        if cause and r.in_domain:
            return self.diagnosis.flow_for_cause(cause, None)
        return None

    def _take_opening(self, ctx: Ctx, r: Reading) -> None:
        """An opening that ends "… talk to a human": keep what it says for the ticket."""
        s = ctx.state
        self.handoff.harvest(s, r)
        flow = self._opening_flow(r)
        if flow in self.kb.topics:
            s.topic = flow
        elif flow:
            s.symptom = flow
        if flow:
            self.diagnosis.take_report(ctx, r)

    def restart(self, ctx: Ctx, r: Reading | None) -> None:
        old = ctx.state
        fresh = State(id=old.id, channel=old.channel, episode=old.episode + 1, turns=old.turns)
        fresh.transcript = old.transcript[-4:]
        ctx.state = fresh
        ctx.started = True
        if r is not None:
            self.triage(ctx, r)
            return
        ctx.add(Reply(kind="greeting", text=self.words.say("restart", None), choices=self.flow_choices(fresh)))

    # ---- a button ----------------------------------------------------------------------------------

    def on_choice(self, ctx: Ctx, choice: str) -> None:
        s = ctx.state
        if choice.startswith("cmd:"):
            self.handoff.command(ctx, choice[4:])
            return
        if choice in self.kb.flows and s.phase in ("triage", "clarifying", "off-topic", "closed"):
            s.pending = None
            self.diagnosis.start(ctx, choice, None)
            return
        prompt = self.prompts.current(s)
        if prompt is None or not prompt.on_choice(ctx, choice):
            ctx.add(Reply(kind="info", text=self.words.say("stale-click", s.idp)))
            self.prompts.repeat(ctx)


class Engine:
    def __init__(
        self,
        bundle: Bundle,
        store: Store,
        ttl: int = 24 * 3600,
        support_url: str | None = None,
        reader: Reader | None = None,
        looker: Looker | None = None,
    ):
        self.kb = bundle
        self.store = store
        self.ttl = ttl
        self.reader = reader or Reader(bundle)
        self.d = Dialogue(bundle, self.reader, support_url, looker)
        self.support_url = self.d.support_url

    # ---- entry points --------------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> Turn:
        async with self.store.hold(msg.conversation_id, claims=msg.once, claim_ttl=ONCE_TTL) as held:
            if not held.fresh:
                log.info("turn skipped: redelivered message", extra={"conversation": msg.conversation_id, "channel": msg.channel})
                return Turn(conversation_id=msg.conversation_id, phase=_phase_of(held.data), silent=True, duplicate=True)
            state = State.model_validate_json(held.data) if held.data else None
            # Taken before the turn changes the state: what its episode had recorded when it was saved.
            before = Outcome.of(state) if recorded(state) else None
            turn, state = await self._turn(state, msg)
            if not turn.silent:
                for record in msg.remember:
                    held.put_record(*record)
            if state is not None:
                state.updated_at = time.time()
                held.save(state.model_dump_json(), self.ttl)  # written as the lock is given back
                if recorded(state):
                    turn.ending = self._record_outcome(held, state, before)
        log.info(
            "turn",
            extra={
                "conversation": msg.conversation_id,
                "channel": msg.channel,
                "user": pseudonymise(msg.user_id),
                "phase": turn.phase,
                "symptom": turn.symptom,
                "cause": turn.cause,
                "silent": turn.silent,
            },
        )
        return turn

    async def state(self, conversation_id: str) -> State | None:
        raw = await self.store.load(conversation_id)
        return State.model_validate_json(raw) if raw else None

    def draft_ticket(self, s: State):
        from bot.ticket import build_ticket

        return build_ticket(s, self.kb)

    @staticmethod
    def _record_outcome(held: Held, state: State, before: Outcome | None) -> Ending:
        """The episode's outcome, written with the conversation (one commit: never one without the other),
        and what was recorded for the episode before: the stored state's, as both are saved together, so no
        record needs to be read back."""
        now = Outcome.of(state)
        held.put_record(OUTCOME_KIND, now.key, now.model_dump_json())
        return Ending(now=now, before=before if before is not None and before.episode == now.episode else None)

    # ---- one turn ----------------------------------------------------------------------------

    def _read(self, state: State | None, text: str, directed: bool) -> Reading:
        return self.reader.read(text, self.d.context(state, directed))

    async def _turn(self, state: State | None, msg: Incoming) -> tuple[Turn, State | None]:
        text = (msg.text or "")[:MAX_TEXT]
        choice = (msg.choice or "").strip()[:200] or None
        active = state is not None and state.active
        reading = self._read(state, text, msg.directed) if text.strip() and not choice else None
        feedback = state is not None and state.pending is not None and state.pending.kind == "feedback"
        if state is None or not active:
            if choice:
                fresh = state is None or choice in self.kb.flows
            else:
                fresh = not (feedback and reading is not None and self._feedback_reply(reading))
        else:
            fresh = False
        if fresh and not msg.directed and not choice:
            # Ambient helpdesk message: speak only when sure it is ours.
            if reading is None or not (reading.in_domain and reading.confident):
                return Turn(conversation_id=msg.conversation_id, phase="off-topic", silent=True), state
        if fresh:
            previous = state
            state = State(id=msg.conversation_id, channel=msg.channel)
            if previous is not None:
                state.episode = previous.episode + 1
                state.turns = previous.turns
            if reading is not None and previous is not None:
                reading = self._read(None, text, msg.directed)  # read afresh: nothing is pending any more
            ctx = Ctx(state, started=True, directed=msg.directed, reading=reading)
        else:
            assert state is not None
            ctx = Ctx(state, directed=msg.directed, reading=reading)

        ctx.state.turns += 1
        if reading is not None:
            self._say_admin(ctx.state, text)
            self.d.on_text(ctx, reading)
        elif choice:
            self._say_admin(ctx.state, self._choice_label(ctx.state, choice))
            self.d.on_choice(ctx, choice)
        else:
            self.d.handoff.help(ctx, greeting=True)
        await self._look(ctx)
        # Commands such as "start over" replace the state: always keep what the context ends with.
        for r in ctx.replies:
            self._say_bot(ctx.state, r)
        return self._result(ctx), ctx.state

    def _feedback_reply(self, r: Reading) -> bool:
        return r.reply is not None and r.reply.option in ("yes", "no") and r.act in ("answer", "unclear", "fixed")

    async def _look(self, ctx: Ctx) -> None:
        """Checks the tenant can answer are looked up instead of asked (bot/graph), before the turn ends."""
        looker = self.d.looker
        s = ctx.state
        for _ in range(8):
            p = s.pending
            if looker is None or p is None or p.kind != "check" or not p.id or p.id in s.looked:
                return
            if not looker.can_look(s, p.id):
                return
            s.looked.append(p.id)
            look = await looker.look(s, p.id)
            if look is None:
                return
            check = self.kb.checks[p.id]
            answer = self.kb.answer(p.id, look.answer) if look.answer else None
            if answer is not None or (look.needs == "upn" and not s.upns):
                # The question put this turn is answered by looking, or waits for a UPN to look with:
                # take it back, so the admin is not asked what the tenant can tell.
                ctx.replies = [r for r in ctx.replies if not (r.kind == "question" and any(c.id.startswith(f"{p.id}:") for c in r.choices))]
                s.questions -= 1
            said = Reply(kind="info", text=look.says)
            asked = next((i for i, r in enumerate(ctx.replies) if r.kind == "question" and any(c.id.startswith(f"{p.id}:") for c in r.choices)), None)
            if asked is not None:
                ctx.replies.insert(asked, said)  # why it is asked after all, just before the question
            else:
                ctx.add(said)
            if answer is None:
                if look.needs == "upn" and not s.upns:
                    s.looked.remove(p.id)  # look again once a UPN is known
                    self.d.prompts.field.ask(ctx, "upns", then=Then(kind="check", id=p.id))
                elif asked is None:
                    self.d.prompts.check.again(ctx)
                return
            self.d.diagnosis.record(s, check, answer, "graph", None, ref=look.ref)
            s.pending = None
            self.d.diagnosis.advance(ctx)

    def _choice_label(self, s: State, choice: str) -> str:
        """What the admin saw on the button they clicked, for the transcript (never a raw id)."""
        prompt = self.d.prompts.current(s)
        last = choice.rpartition(":")[2]
        if prompt is not None:
            try:
                for o in prompt.spec(s).options:
                    if o.id == last:
                        return f"[{o.label}]"
            except (KeyError, AssertionError):
                pass
        if choice in self.kb.flows:
            return f"[{self.d.words.word(self.kb.flows[choice].title, s.idp)}]"
        return "[button]"

    def _result(self, ctx: Ctx) -> Turn:
        s = ctx.state
        probing = asking = None
        p = s.pending
        if p and p.kind == "check" and p.id:
            probing = self.kb.checks[p.id].tests
        elif p and p.kind == "field":
            asking = p.id
        elif p and p.kind == "idp":
            asking = "idp"
        ticket = next((r.ticket for r in ctx.replies if r.ticket), None)
        return Turn(
            conversation_id=s.id,
            replies=ctx.replies,
            phase=s.phase,
            symptom=s.symptom,
            topic=s.topic,
            probing=probing,
            cause=s.cause,
            asking=asking,
            ticket=ticket,
            started=ctx.started,
        )

    # ---- transcript --------------------------------------------------------------------------

    def _say_admin(self, s: State, text: str) -> None:
        # Scrubbed before it is cut, so a secret straddling the cut is never stored in part.
        s.transcript.append(Line(who="admin", text=clip(scrub_secrets(text), 500)))
        del s.transcript[:-TRANSCRIPT_KEEP]

    def _say_bot(self, s: State, r: Reply) -> None:
        summary = r.title or r.text.split("\n", 1)[0]
        s.transcript.append(Line(who="bot", text=clip(summary, 200)))
        del s.transcript[:-TRANSCRIPT_KEEP]


def _phase_of(raw: str | None) -> Phase:
    """The stored phase, for a turn that does not otherwise read the state."""
    return State.model_validate_json(raw).phase if raw else "off-topic"


__all__ = ["Engine", "Dialogue", "Finding"]
