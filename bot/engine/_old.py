"""The troubleshooting conversation: a state machine walked over the knowledge pack.

    triage -> [clarifying] -> checking -> resolving -> (fixed: closed) | (not fixed: checking ...)
                                 \\-> escalating (ticket fields, one at a time) -> closed (ticket + feedback)

No symptom or cause is named in this file: which checks exist, what each answer means, which causes are
likely and how they are fixed all come from the pack. The engine knows no channel either; it takes an
`Incoming` and returns a `Turn`. Each turn runs under the store's per-conversation lock and ends with the
state saved, so concurrent messages are serialised and a restart resumes the conversation.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.answers import AnswerMatcher
from bot.classify import Classification, Classifier, SignatureHit
from bot.events import Choice, Incoming, Phase, Reply, Step, Ticket, Turn
from bot.redact import find_emails, pseudonymise, scrub_secrets
from bot.state import Finding, Line, Pending, State
from bot.store.base import Store
from bot.ticket import build_ticket, missing_fields
from knowledge.schema import Answer, Bundle, Cause, Check, Symptom

log = logging.getLogger("scim_help.engine")

MAX_TEXT = 4000  # longer messages are cut before anything else looks at them
MAX_REASKS = 3
TRANSCRIPT_KEEP = 60
OUTCOMES = "outcome"
# How long a delivery key (Incoming.once) is remembered: platforms retry within minutes, a day is ample.
ONCE_TTL = 24 * 3600


@dataclass
class _Ctx:
    """Per-turn scratch: the state being changed and the replies being collected."""

    state: State
    replies: list[Reply]
    started: bool = False
    # The opening message's classification when the ambient gate already computed it.
    classification: Classification | None = None
    directed: bool = True
    # The pasted error found in this turn's text, once looked for (False: not looked for yet).
    signature: SignatureHit | None | bool = False


class Engine:
    def __init__(self, bundle: Bundle, classifier: Classifier, store: Store, ttl: int = 24 * 3600, support_url: str | None = None):
        self.kb = bundle
        self.clf = classifier
        self.store = store
        self.ttl = ttl
        self.answers = AnswerMatcher(bundle)
        self.support_url = support_url or bundle.pack.escalation.portal_url
        self._symptoms = bundle.symptoms
        self._checks = bundle.checks
        self._causes = bundle.causes
        self._idps = bundle.idps
        # cause -> (check, answer) that confirms it, per symptom: where a pasted signature lands.
        self._confirming: dict[tuple[str, str], tuple[Check, Answer]] = {}
        for sym in bundle.pack.symptoms:
            for cid in sym.checks:
                check = self._checks[cid]
                for ans in check.answers:
                    if ans.confirms:
                        self._confirming.setdefault((sym.id, ans.confirms), (check, ans))

    # ---- entry points ------------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> Turn:
        async with self.store.hold(msg.conversation_id, claims=msg.once, claim_ttl=ONCE_TTL) as held:
            if not held.fresh:
                log.info("turn skipped: redelivered message", extra={"conversation": msg.conversation_id, "channel": msg.channel})
                return Turn(conversation_id=msg.conversation_id, phase=_phase_of(held.data), silent=True, duplicate=True)
            state = State.model_validate_json(held.data) if held.data else None
            turn, state = self._turn(state, msg)
            if not turn.silent:
                for record in msg.remember:
                    held.put_record(*record)
            if state is not None:
                state.updated_at = time.time()
                held.save(state.model_dump_json(), self.ttl)  # written as the lock is given back
                if state.outcome and turn.phase == "closed":
                    await self._record_outcome(state)
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

    async def _record_outcome(self, state: State) -> None:
        record = {
            "conversation": state.id,
            "episode": state.episode,
            "channel": state.channel,
            "symptom": state.symptom,
            "cause": state.cause,
            "outcome": state.outcome,
            "helpful": state.helpful,
            "questions_to_cause": state.questions_to_cause,
            "questions": state.questions,
            "turns": state.turns,
            "ended_at": time.time(),
        }
        await self.store.put_record(OUTCOMES, f"{state.id}#{state.episode}", json.dumps(record))

    # ---- one turn ----------------------------------------------------------------------------

    def _turn(self, state: State | None, msg: Incoming) -> tuple[Turn, State | None]:
        text = (msg.text or "")[:MAX_TEXT]
        choice = (msg.choice or "").strip()[:200] or None
        active = state is not None and state.phase not in ("closed", "off-topic")
        fresh = state is None or (
            not active and (choice in self._symptoms if choice else not self._is_feedback_text(state, text))
        )
        classification = None
        if fresh and not msg.directed and not choice:
            # Ambient helpdesk message: speak only when sure it is ours.
            classification = self.clf.classify(text)
            if not (classification.symptom or classification.clarify) or not self.clf.ambient_ok(classification):
                return Turn(conversation_id=msg.conversation_id, phase="off-topic", silent=True), state
        if fresh:
            previous = state
            state = State(id=msg.conversation_id, channel=msg.channel)
            if previous is not None:
                state.episode = previous.episode + 1
                state.turns = previous.turns
            ctx = _Ctx(state, [], started=True, classification=classification, directed=msg.directed)
        else:
            assert state is not None
            ctx = _Ctx(state, [], directed=msg.directed)

        state = ctx.state
        state.turns += 1
        if text.strip():
            self._say_admin(state, text)
        elif choice:
            self._say_admin(state, f"[clicked {choice}]")

        if choice:
            self._on_choice(ctx, choice)
        elif text.strip():
            self._on_text(ctx, text)
        else:
            self._help(ctx, greeting=True)
        # Commands such as "start over" replace the state: always keep what the context ends with.
        for r in ctx.replies:
            self._say_bot(ctx.state, r)
        return self._result(ctx), ctx.state

    def _result(self, ctx: _Ctx) -> Turn:
        s = ctx.state
        probing = None
        asking = None
        if s.pending and s.pending.kind == "check" and s.pending.id:
            probing = self._checks[s.pending.id].tests
        elif s.pending and s.pending.kind == "field":
            asking = s.pending.id
        elif s.pending and s.pending.kind == "idp":
            asking = "idp"
        ticket = next((r.ticket for r in ctx.replies if r.ticket), None)
        return Turn(
            conversation_id=s.id,
            replies=ctx.replies,
            phase=s.phase,
            symptom=s.symptom,
            probing=probing,
            cause=s.cause,
            asking=asking,  # type: ignore[arg-type]
            ticket=ticket,
            started=ctx.started,
        )

    # ---- dispatch ----------------------------------------------------------------------------

    def _on_choice(self, ctx: _Ctx, choice: str) -> None:
        s = ctx.state
        if choice.startswith("cmd:"):
            self._command(ctx, choice[4:])
            return
        if choice in self._symptoms and s.phase in ("triage", "clarifying", "off-topic", "closed"):
            self._start_symptom(ctx, choice, report="")
            return
        pending = s.pending
        if pending is None:
            self._stale(ctx)
            return
        if pending.kind == "check" and ":" in choice:
            check_id, _, answer_id = choice.partition(":")
            if check_id != pending.id:
                self._stale(ctx)
                return
            check = self._checks[check_id]
            answer = self.kb.answer(check_id, answer_id)
            if answer is None:
                self._stale(ctx)
                return
            self._record(s, check, answer, "asked", None)
            self._advance(ctx)
        elif pending.kind == "idp" and choice.startswith("idp:") and choice[4:] in self._idps:
            self._set_idp(ctx, choice[4:])
        elif pending.kind == "fixed" and choice in ("fixed:yes", "fixed:no"):
            self._on_fixed(ctx, choice == "fixed:yes")
        elif pending.kind == "field" and choice == "field:skip":
            self._skip_field(ctx)
        elif pending.kind == "feedback" and choice in ("helpful:yes", "helpful:no"):
            self._on_feedback(ctx, choice == "helpful:yes")
        else:
            self._stale(ctx)

    def _on_text(self, ctx: _Ctx, text: str) -> None:
        s = ctx.state
        command = self.answers.command(text)
        if command:
            self._command(ctx, command)
            return
        pending = s.pending
        if pending is not None and pending.kind in ("check", "idp", "fixed") and s.symptom and self._switch_on_signature(ctx, text):
            return
        if s.phase == "triage" or pending is None:
            self._triage(ctx, text)
        elif pending.kind == "clarify":
            self._on_clarify_text(ctx, text)
        elif pending.kind == "check":
            self._on_check_text(ctx, text)
        elif pending.kind == "idp":
            idp = self.clf.detect_idp(text) or self._idp_by_name(text)
            if idp:
                self._set_idp(ctx, idp)
            else:
                self._reask(ctx, "I didn't recognise that identity provider.")
        elif pending.kind == "fixed":
            polarity = self.answers.polarity(text)
            if polarity in ("yes", "no"):
                self._on_fixed(ctx, polarity == "yes")
            else:
                self._reask(ctx, "Sorry, I didn't catch that.")
        elif pending.kind == "field":
            self._on_field_text(ctx, text)
        elif pending.kind == "feedback":
            polarity = self.answers.polarity(text)
            if polarity in ("yes", "no"):
                self._on_feedback(ctx, polarity == "yes")
            else:
                # Anything else after the end is a new problem report.
                self._restart_with(ctx, text)
        else:
            self._triage(ctx, text)

    def _is_feedback_text(self, state: State, text: str) -> bool:
        return state.pending is not None and state.pending.kind == "feedback" and self.answers.polarity(text) in ("yes", "no")

    # ---- triage ------------------------------------------------------------------------------

    def _triage(self, ctx: _Ctx, text: str) -> None:
        s = ctx.state
        result = ctx.classification or self.clf.classify(text)
        self._harvest(s, text, result)
        offer = self.clf.offer(result) if ctx.directed else []
        if offer:
            s.phase = "clarifying"
            s.clarify = offer
            s.pending = Pending(kind="clarify")
            ctx.replies.append(self._clarify_reply(offer, unsure=True))
            return
        if result.symptom is None and not result.clarify:
            s.phase = "off-topic"
            s.pending = None
            s.outcome = "off-topic"
            ctx.replies.append(
                Reply(
                    kind="off-topic",
                    text=(
                        "That doesn't look like a SCIM provisioning problem between your identity provider and "
                        "the Cato Management Application, so I'll stay out of it. If it is one, describe what you "
                        "see — for example \"new users never show up in Cato\" — or pick a symptom."
                    ),
                    choices=self._symptom_choices(),
                )
            )
            return
        if result.clarify and not result.cause and len(result.clarify) > 1:
            s.phase = "clarifying"
            s.clarify = result.clarify[:3]
            s.pending = Pending(kind="clarify")
            ctx.replies.append(self._clarify_reply(s.clarify))
            return
        symptom = result.symptom or result.clarify[0]
        self._start_symptom(ctx, symptom, report=text, classification=result)

    def _harvest(self, s: State, text: str, result: Classification | None = None) -> None:
        """Facts for the ticket that the admin volunteers in any message."""
        if not s.idp:
            s.idp = (result.idp if result else None) or self.clf.detect_idp(text)
        for email in find_emails(text):
            if email not in s.upns and len(s.upns) < 50:
                s.upns.append(email)

    def _clarify_reply(self, options: list[str], unsure: bool = False) -> Reply:
        text = (
            "I'm not sure this is about SCIM provisioning into the Cato Management Application. If it is, which "
            "of these is closest to what you see? Otherwise just describe the problem again."
            if unsure
            else "I can help with that. Which of these is closest to what you see?"
        )
        return Reply(kind="clarify", text=text, choices=[Choice(id=sid, label=self._symptoms[sid].title) for sid in options])

    def _on_clarify_text(self, ctx: _Ctx, text: str) -> None:
        s = ctx.state
        result = self.clf.classify(text)
        pick = self._pick_option(text, s.clarify)
        if pick is None and result.symptom and not result.clarify and result.confidence >= 0.5:
            pick = result.symptom  # described again, clearly this time
        if pick is None and result.symptom is None and not result.clarify and len(text.split()) >= 4:
            self._triage(ctx, text)  # a new description: triage it afresh (it may well be off-topic)
            return
        if pick is None:
            s.pending = Pending(kind="clarify", reasks=(s.pending.reasks + 1) if s.pending else 1)
            ctx.replies.append(Reply(kind="info", text="Sorry, I'm still not sure which one you mean — please pick one."))
            ctx.replies.append(self._clarify_reply(s.clarify))
            return
        self._harvest(s, text, result)
        self._start_symptom(ctx, pick, report=text, classification=result)

    def _pick_option(self, text: str, options: list[str]) -> str | None:
        """ "2", "the second one", or an option's title typed back."""
        t = text.strip().lower().removeprefix("the ").strip(" .!")
        ordinals = (("1", "#1", "first", "1st"), ("2", "#2", "second", "2nd"), ("3", "#3", "third", "3rd"))
        for i, sid in enumerate(options):
            if i < len(ordinals) and (t in ordinals[i] or t.split(" ")[0] in ordinals[i][2:]):
                return sid
        titles = {sid: self._symptoms[sid].title.lower() for sid in options}
        best = process.extractOne(t, titles, scorer=fuzz.token_set_ratio, score_cutoff=85) if t else None
        return best[2] if best else None

    def _start_symptom(self, ctx: _Ctx, symptom_id: str, report: str, classification: Classification | None = None) -> None:
        s = ctx.state
        sym = self._symptoms[symptom_id]
        s.symptom = symptom_id
        s.clarify = []
        s.phase = "checking"
        ctx.replies.append(
            Reply(kind="info", text=f"Got it — **{sym.title}**. {sym.summary} Let's find the cause.")
        )
        if report:
            self._read_report(ctx, sym, report, classification)
        self._advance(ctx)

    def _read_report(self, ctx: _Ctx, sym: Symptom, report: str, classification: Classification | None) -> None:
        """Skip the checks the report already answered: a pasted signature, or a phrase such as
        "test connection succeeds"."""
        s = ctx.state
        hit = classification.signature if classification else self.clf.match_signature(report)
        noted = []
        if hit and (sym.id, hit.cause) in self._confirming and not _negated(report, hit.text):
            check, answer = self._confirming[(sym.id, hit.cause)]
            if not s.finding_for(check.id):
                self._record(s, check, answer, "signature", hit.text)
                noted.append(f"the message you pasted is {hit.source}'s \u201c{_clip(hit.text, 90)}\u201d")
        confirmed = {a.confirms for a in map(self._answer, s.findings) if a and a.confirms}
        for cid in sym.checks:
            check = self._checks[cid]
            if s.finding_for(cid):
                continue
            answer = self.answers.from_report(check, report)
            if answer is not None and set(answer.rules_out) & confirmed:
                continue  # the report already pins that cause; a vaguer phrase must not undo it
            if answer is not None and answer.kind != "unsure":
                if answer.confirms:
                    confirmed.add(answer.confirms)
                self._record(s, check, answer, "report", None)
                noted.append(answer.finding[0].lower() + answer.finding[1:].rstrip("."))
        if noted:
            ctx.replies.append(Reply(kind="info", text="From your message I can already tell: " + "; ".join(noted) + "."))

    # ---- checks ------------------------------------------------------------------------------

    def _record(self, s: State, check: Check, answer: Answer, source: str, said: str | None) -> None:
        s.findings = [f for f in s.findings if f.check != check.id]
        s.findings.append(
            Finding(
                check=check.id,
                answer=answer.id,
                finding=answer.finding,
                source=source,  # type: ignore[arg-type]
                said=scrub_secrets(said)[:500] if said else None,
            )
        )

    def _answer(self, f: Finding) -> Answer | None:
        return self.kb.answer(f.check, f.answer)

    def _weights(self, s: State) -> tuple[dict[str, float], str | None]:
        """Current cause weights (ruled-out and tried causes removed) and a confirmed cause, if any."""
        sym = self._symptoms[s.symptom or ""]
        weights = {w.cause: w.weight for w in sym.causes}
        confirmed: str | None = None
        for f in s.findings:
            ans = self._answer(f)
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
        if confirmed and weights.get(confirmed, 0) == 0 and confirmed not in s.tried:
            # A later answer ruled out what an earlier one confirmed: trust neither blindly, keep checking.
            confirmed = None
        return weights, confirmed

    def _next_check(self, s: State, weights: dict[str, float]) -> Check | None:
        sym = self._symptoms[s.symptom or ""]
        total = sum(weights.values()) or 1.0
        best: tuple[float, int, Check] | None = None
        for order, cid in enumerate(sym.checks):
            if s.finding_for(cid):
                continue
            check = self._checks[cid]
            confirmable = {a.confirms for a in check.answers if a.confirms}
            utility = sum(weights.get(c, 0.0) for c in confirmable) / total
            if not confirmable and any(weights.get(c, 0) > 0 for a in check.answers for c in a.boost):
                utility = 0.01  # narrows things down, but never settles anything: ask last
            if utility <= 0:
                continue
            # Likelihood first; the playbook's order breaks ties.
            key = (utility, -order)
            if best is None or key > best[:2]:
                best = (utility, -order, check)
        return best[2] if best else None

    def _advance(self, ctx: _Ctx) -> None:
        s = ctx.state
        weights, confirmed = self._weights(s)
        if confirmed:
            self._conclude(ctx, confirmed, confirmed=True)
            return
        check = self._next_check(s, weights)
        if check is not None:
            self._ask_check(ctx, check)
            return
        remaining = [c for c, w in sorted(weights.items(), key=lambda kv: -kv[1]) if w > 0]
        if remaining:
            # Nothing left to ask: the most likely cause still standing is worth trying.
            self._conclude(ctx, remaining[0], confirmed=False)
            return
        self._escalate(ctx, "The playbook's checks did not identify a cause.")

    def _needs_idp(self, s: State, variants: dict) -> bool:
        return not s.idp and bool(variants)

    def _ask_check(self, ctx: _Ctx, check: Check, reask: str | None = None) -> None:
        s = ctx.state
        s.phase = "checking"  # also while the IdP question that precedes the check is pending
        if self._needs_idp(s, check.variants):
            self._ask_idp(ctx, then=f"check:{check.id}")
            return
        is_new = not (s.pending and s.pending.kind == "check" and s.pending.id == check.id)
        if is_new:
            s.questions += 1
            s.pending = Pending(kind="check", id=check.id)
        v = check.variants.get(s.idp or "")
        text = (v.ask if v and v.ask else check.ask)
        look_for = v.look_for if v and v.look_for else check.look_for
        if look_for:
            text += "\n" + look_for
        if reask:
            text = f"{reask} {text}"
        ctx.replies.append(
            Reply(
                kind="question",
                title=check.title,
                text=text,
                path=(v.path if v and v.path else check.path),
                quote=check.quote,
                choices=[Choice(id=f"{check.id}:{a.id}", label=a.label) for a in check.answers],
            )
        )
        s.phase = "checking"

    def _on_check_text(self, ctx: _Ctx, text: str) -> None:
        s = ctx.state
        check = self._checks[s.pending.id]  # type: ignore[union-attr,index]
        self._harvest(s, text)
        hit = self._signature(ctx, text)
        target = self._confirming.get((s.symptom or "", hit.cause)) if hit else None
        if hit and target and target[0].id != check.id:
            # A pasted error that settles a different check than the one asked: it is stronger evidence
            # than any word of the reply that might look like an answer to this one.
            self._record(s, target[0], target[1], "signature", text)
            ctx.replies.append(Reply(kind="info", text=f"That message is {hit.source}'s \u201c{_clip(hit.text, 90)}\u201d."))
            self._advance(ctx)
            return
        answer = self.answers.match(check, text)
        if answer is None and target:
            answer = target[1]
        if answer is None:
            self._reask(ctx, "Sorry, I couldn't tell which answer that is.")
            return
        self._record(s, check, answer, "asked", text)
        self._advance(ctx)

    def _switch_on_signature(self, ctx: _Ctx, text: str) -> bool:
        """A pasted error that pins a cause of a different symptom than the one being checked: the report
        was misread, or the problem moved on. The error is the stronger evidence, so the conversation
        moves to that symptom; the findings so far are kept (checks are shared between symptoms)."""
        s = ctx.state
        hit = self._signature(ctx, text)
        if hit is None or (s.symptom or "", hit.cause) in self._confirming:
            return False
        other = self._symptom_confirming(hit.cause, text)
        if other is None:
            return False
        ctx.replies.append(
            Reply(kind="info", text=f"That message is {hit.source}'s \u201c{_clip(hit.text, 90)}\u201d, which belongs to a different symptom.")
        )
        s.pending = None
        self._harvest(s, text)
        self._start_symptom(ctx, other, report=text)
        return True

    def _signature(self, ctx: _Ctx, text: str) -> SignatureHit | None:
        """A pasted error in `text` that is not negated ("it does *not* say …"), looked for once per turn."""
        if ctx.signature is False:
            hit = self.clf.match_signature(text)
            ctx.signature = None if hit is None or _negated(text, hit.text) else hit
        return ctx.signature  # type: ignore[return-value]

    def _symptom_confirming(self, cause: str, text: str) -> str | None:
        """The symptom under which a check confirms `cause` (the classifier's pick when several do)."""
        options = [sym for (sym, c) in self._confirming if c == cause]
        if len(options) > 1:
            picked = self.clf.classify(text).symptom
            return picked if picked in options else options[0]
        return options[0] if options else None

    def _reask(self, ctx: _Ctx, why: str) -> None:
        s = ctx.state
        pending = s.pending
        if pending is None:
            self._help(ctx)
            return
        pending.reasks += 1
        hint = " Pick one of the buttons, or type \"start over\" or \"talk to a human\"." if pending.reasks >= 2 else ""
        if pending.kind == "check" and pending.id:
            if pending.reasks > MAX_REASKS:
                # Still unclear after several tries: treat it as "not sure" rather than loop forever.
                check = self._checks[pending.id]
                unsure = next((a for a in check.answers if a.kind == "unsure"), None)
                if unsure is not None:
                    self._record(s, check, unsure, "asked", None)
                    ctx.replies.append(Reply(kind="info", text="Let's mark that one as not sure and move on."))
                    self._advance(ctx)
                    return
            self._ask_check(ctx, self._checks[pending.id], reask=why + hint)
        elif pending.kind == "idp":
            ctx.replies.append(Reply(kind="info", text=why + hint))
            self._ask_idp(ctx, then=pending.then)
        elif pending.kind == "fixed":
            ctx.replies.append(self._fixed_question(why + hint))
        elif pending.kind == "field":
            ctx.replies.append(Reply(kind="info", text=why + hint))
            self._ask_field(ctx, pending.id or "account")

    def _stale(self, ctx: _Ctx) -> None:
        """A click on an old button (double click, or a question already answered)."""
        ctx.replies.append(Reply(kind="info", text="That question was already answered — here is where we are."))
        self._repeat_pending(ctx)

    def _repeat_pending(self, ctx: _Ctx) -> None:
        s = ctx.state
        p = s.pending
        if p is None:
            if s.phase == "closed":
                ctx.replies.append(Reply(kind="info", text="This conversation is closed. Describe a new problem to start again."))
            else:
                self._help(ctx)
        elif p.kind == "check" and p.id:
            self._ask_check(ctx, self._checks[p.id])
        elif p.kind == "clarify":
            ctx.replies.append(self._clarify_reply(s.clarify))
        elif p.kind == "idp":
            self._ask_idp(ctx, then=p.then)
        elif p.kind == "fixed":
            ctx.replies.append(self._fixed_question())
        elif p.kind == "field" and p.id:
            self._ask_field(ctx, p.id)
        elif p.kind == "feedback":
            ctx.replies.append(self._feedback_question())

    # ---- IdP ---------------------------------------------------------------------------------

    def _ask_idp(self, ctx: _Ctx, then: str | None) -> None:
        s = ctx.state
        s.pending = Pending(kind="idp", then=then, reasks=s.pending.reasks if s.pending and s.pending.kind == "idp" else 0)
        ctx.replies.append(
            Reply(
                kind="question",
                title="Identity provider",
                text="Which identity provider do you provision from? The steps differ between them.",
                choices=[Choice(id=f"idp:{i.id}", label=i.name) for i in self.kb.pack.idps],
            )
        )

    def _idp_by_name(self, text: str) -> str | None:
        t = text.strip().lower()
        for i, idp in enumerate(self.kb.pack.idps, 1):
            if t in (idp.id, idp.name.lower(), str(i)):
                return idp.id
        if t in ("other", "custom", "another", "something else"):
            return "other"
        return None

    def _set_idp(self, ctx: _Ctx, idp: str) -> None:
        s = ctx.state
        s.idp = idp
        then = s.pending.then if s.pending else None
        s.pending = None
        if then and then.startswith("check:"):
            self._ask_check(ctx, self._checks[then[6:]])
        elif then and then.startswith("cause:"):
            self._conclude(ctx, then[6:], confirmed=s.cause_confirmed, announce=False)
        elif then == "field":
            self._continue_escalation(ctx)
        else:
            self._advance(ctx)

    # ---- causes and resolutions ----------------------------------------------------------------

    def _conclude(self, ctx: _Ctx, cause_id: str, confirmed: bool, announce: bool = True) -> None:
        s = ctx.state
        cause = self._causes[cause_id]
        s.cause = cause_id
        s.cause_confirmed = confirmed
        if s.questions_to_cause is None:
            s.questions_to_cause = s.questions
        if self._needs_idp(s, cause.resolution.variants):
            self._ask_idp(ctx, then=f"cause:{cause_id}")
            return
        ctx.replies.append(self._resolution_reply(s, cause, confirmed))
        if cause.resolution.escalate:
            self._escalate(ctx, f"The resolution for \u201c{cause.title}\u201d is a support case.", intro=False)
            return
        s.phase = "resolving"
        s.pending = Pending(kind="fixed")
        ctx.replies.append(self._fixed_question())

    def _resolution_reply(self, s: State, cause: Cause, confirmed: bool) -> Reply:
        res = cause.resolution
        v = res.variants.get(s.idp or "")
        steps = v.steps if v and v.steps else res.steps
        verify = v.verify if v and v.verify else res.verify
        notes = v.notes if v and v.notes is not None else res.notes
        lead = "**Cause found:**" if confirmed else "**Most likely cause:**"
        text = f"{lead} {cause.title}.\n{cause.summary}\n\n{res.summary}"
        after = f"**How to verify:** {verify}"
        if notes:
            after += "\n\n" + "\n".join(f"• {n}" for n in notes)
        return Reply(
            kind="resolution",
            title=cause.title,
            text=text,
            steps=[Step(text=st.text, path=st.path) for st in steps],
            after=after,
        )

    def _fixed_question(self, prefix: str = "") -> Reply:
        return Reply(
            kind="question",
            title="Did that fix it?",
            text=(prefix + " " if prefix else "") + "Did that fix it? (It can take one provisioning cycle — about 40 minutes — or a Provision on demand to show.)",
            choices=[
                Choice(id="fixed:yes", label="Yes, fixed", style="primary"),
                Choice(id="fixed:no", label="No, still broken"),
            ],
        )

    def _on_fixed(self, ctx: _Ctx, fixed: bool) -> None:
        s = ctx.state
        if fixed:
            s.outcome = "resolved"
            s.phase = "closed"
            s.pending = Pending(kind="feedback")
            ctx.replies.append(Reply(kind="info", text="Great — glad it's working again."))
            ctx.replies.append(self._feedback_question())
            return
        if s.cause and s.cause not in s.tried:
            s.tried.append(s.cause)
        s.cause = None
        s.cause_confirmed = False
        s.pending = None
        weights, _ = self._weights(s)
        if any(w > 0 for w in weights.values()):
            ctx.replies.append(Reply(kind="info", text="OK, let's look at the other possible causes."))
            self._advance(ctx)
        else:
            self._escalate(ctx, "The resolution steps did not fix the problem.")

    # ---- escalation and ticket ---------------------------------------------------------------

    def _escalate(self, ctx: _Ctx, reason: str, intro: bool = True) -> None:
        s = ctx.state
        s.phase = "escalating"
        s.escalation_reason = s.escalation_reason or reason
        if intro:
            ctx.replies.append(Reply(kind="info", text=f"{reason} {self.kb.pack.escalation.intro}"))
        else:
            ctx.replies.append(Reply(kind="info", text=self.kb.pack.escalation.intro))
        self._continue_escalation(ctx)

    def _continue_escalation(self, ctx: _Ctx) -> None:
        s = ctx.state
        missing = missing_fields(s, self.kb)
        if missing:
            self._ask_field(ctx, missing[0])
            return
        self._finish_ticket(ctx)

    def _ask_field(self, ctx: _Ctx, field_id: str) -> None:
        s = ctx.state
        field = next(f for f in self.kb.pack.escalation.fields if f.id == field_id)
        if field_id == "idp":
            s.pending = Pending(kind="idp", then="field")
            ctx.replies.append(
                Reply(
                    kind="question",
                    title=field.label,
                    text=field.ask,
                    choices=[Choice(id=f"idp:{i.id}", label=i.name) for i in self.kb.pack.idps],
                )
            )
            return
        reasks = s.pending.reasks if s.pending and s.pending.kind == "field" and s.pending.id == field_id else 0
        s.pending = Pending(kind="field", id=field_id, reasks=reasks)
        choices = [Choice(id="field:skip", label="Skip")] if field.optional else []
        ctx.replies.append(Reply(kind="question", title=field.label, text=field.ask, choices=choices))

    def _on_field_text(self, ctx: _Ctx, text: str) -> None:
        s = ctx.state
        field_id = s.pending.id if s.pending else None
        field = next((f for f in self.kb.pack.escalation.fields if f.id == field_id), None)
        if field is None:
            self._continue_escalation(ctx)
            return
        if field.optional and self.answers.is_skip(text):
            self._skip_field(ctx)
            return
        clean = scrub_secrets(" ".join(text.split()))
        if field_id == "account":
            value = clean.strip(" .")
            for prefix in ("our account is", "account name is", "account number is", "account is", "account:", "it's", "it is"):
                if value.lower().startswith(prefix):
                    value = value[len(prefix):].strip(" :.")
            if not value:
                self._reask(ctx, "I need the account name or number for the ticket.")
                return
            s.account = value[:120]
        elif field_id == "upns":
            emails = find_emails(text)
            if not emails:
                self._reask(ctx, "I couldn't find a UPN in that (they look like name@domain).")
                return
            for e in emails:
                if e not in s.upns:
                    s.upns.append(e)
        elif field_id == "groups":
            parts = [p.strip(" \"'`.") for p in clean.replace(";", ",").replace("\n", ",").replace(" and ", ",").split(",")]
            groups = [p[:120] for p in parts if p][:30]
            if not groups:
                self._reask(ctx, "Please give the group names separated by commas, or say \"none\".")
                return
            s.groups = groups
        s.pending = None
        self._continue_escalation(ctx)

    def _skip_field(self, ctx: _Ctx) -> None:
        s = ctx.state
        if s.pending and s.pending.id and s.pending.id not in s.skipped:
            s.skipped.append(s.pending.id)
        s.pending = None
        self._continue_escalation(ctx)

    def _finish_ticket(self, ctx: _Ctx) -> None:
        s = ctx.state
        ticket = build_ticket(s, self.kb)
        esc = self.kb.pack.escalation
        s.outcome = "escalated"
        s.phase = "closed"
        ctx.replies.append(
            Reply(
                kind="ticket",
                title="Your Cato Support ticket",
                text=f"{esc.guidance}\nPortal: {self.support_url}",
                ticket=ticket,
                choices=[Choice(id="cmd:restart", label="Start over")],
            )
        )
        s.pending = Pending(kind="feedback")
        ctx.replies.append(self._feedback_question())

    def draft_ticket(self, s: State) -> Ticket:
        return build_ticket(s, self.kb)

    # ---- feedback ----------------------------------------------------------------------------

    def _feedback_question(self) -> Reply:
        return Reply(
            kind="closing",
            text="Was this conversation helpful?",
            choices=[Choice(id="helpful:yes", label="Yes, helpful", style="primary"), Choice(id="helpful:no", label="Not really")],
        )

    def _on_feedback(self, ctx: _Ctx, helpful: bool) -> None:
        s = ctx.state
        s.helpful = helpful
        s.pending = None
        s.phase = "closed"
        ctx.replies.append(
            Reply(kind="info", text="Thanks for the feedback! Describe a new problem any time to start again.")
        )

    # ---- commands ----------------------------------------------------------------------------

    def _command(self, ctx: _Ctx, name: str) -> None:
        s = ctx.state
        if name == "restart":
            self._restart_with(ctx, None)
        elif name == "help":
            self._help(ctx)
            if s.pending:
                self._repeat_pending(ctx)
        elif name == "escalate":
            if s.phase == "closed" and s.outcome == "escalated":
                self._show_ticket(ctx)
                return
            self._escalate(ctx, "Sure — I'll prepare a ticket for a human at Cato Support.", intro=True)
        elif name == "ticket":
            self._show_ticket(ctx)
            if s.pending and s.phase != "closed":
                self._repeat_pending(ctx)
        elif name == "cancel":
            if s.phase not in ("closed", "off-topic"):
                s.outcome = "cancelled"
            s.phase = "closed"
            s.pending = None
            ctx.replies.append(Reply(kind="info", text="OK, I've stopped. Describe a new problem any time to start again."))
        else:
            self._help(ctx)

    def _restart_with(self, ctx: _Ctx, text: str | None) -> None:
        old = ctx.state
        fresh = State(id=old.id, channel=old.channel, episode=old.episode + 1, turns=old.turns)
        fresh.transcript = old.transcript[-4:]
        ctx.state = fresh
        ctx.started = True
        if text:
            self._triage(ctx, text)
            return
        ctx.replies.append(
            Reply(
                kind="greeting",
                text="Starting over. Describe what you see, or pick the symptom that matches:",
                choices=self._symptom_choices(),
            )
        )

    def _show_ticket(self, ctx: _Ctx) -> None:
        s = ctx.state
        ticket = build_ticket(s, self.kb)
        missing = missing_fields(s, self.kb)
        note = "Draft — still missing: " + ", ".join(missing) + "." if missing and s.phase != "closed" else "Here is the ticket so far."
        ctx.replies.append(Reply(kind="ticket", title="Support ticket (draft)", text=note, ticket=ticket))

    def _help(self, ctx: _Ctx, greeting: bool = False) -> None:
        text = (
            "I help you troubleshoot SCIM provisioning from your identity provider (Entra ID, Okta, OneLogin…) "
            "into the Cato Management Application. Tell me what you see — \"new hires never show up in Cato\", "
            "or paste the error — and I'll walk you through the checks one at a time, give you the fix, and "
            "prepare a support ticket if it comes to that.\n"
            "Say **start over**, **show ticket**, **talk to a human** or **cancel** at any point."
        )
        ctx.replies.append(
            Reply(kind="greeting", text=text, choices=self._symptom_choices() if greeting or ctx.state.pending is None else [])
        )

    def _symptom_choices(self) -> list[Choice]:
        return [Choice(id=s.id, label=s.title) for s in self.kb.pack.symptoms]

    # ---- transcript --------------------------------------------------------------------------

    def _say_admin(self, s: State, text: str) -> None:
        s.transcript.append(Line(who="admin", text=scrub_secrets(_clip(text, 500))))
        del s.transcript[:-TRANSCRIPT_KEEP]

    def _say_bot(self, s: State, r: Reply) -> None:
        summary = r.title or r.text.split("\n", 1)[0]
        s.transcript.append(Line(who="bot", text=_clip(summary, 200)))
        del s.transcript[:-TRANSCRIPT_KEEP]


def _phase_of(raw: str | None) -> Phase:
    """The stored phase, for a turn that does not otherwise read the state."""
    return State.model_validate_json(raw).phase if raw else "off-topic"


_NEGATORS = re.compile(r"(?:\b(?:no|not|never|without|zero|none of the)\b|n't|\bdont\b)[^.!?\n]{0,20}$", re.IGNORECASE)


def _negated(text: str, phrase: str) -> bool:
    """True when the phrase is preceded closely by a negation ("no Sdp licence events")."""
    pos = text.lower().find(phrase.lower())
    return pos > 0 and bool(_NEGATORS.search(text[max(0, pos - 30) : pos]))


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
