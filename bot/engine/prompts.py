"""One class per kind of question the bot can be waiting on, in the shape of botbuilder's Prompt classes:
`ask` puts the question, `spec` tells the reader what answers it offers (in the order the renderers
number them), `take` acts on a recognised answer, `explain` answers a question about the step, and
`reask` asks again when the reply could not be told.

Recognition itself is the reader's (bot/understand): a prompt only looks at the `Reading`'s reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.engine.context import MAX_REASKS, Ctx
from bot.events import Choice, Reply
from bot.state import Pending, State, Then
from bot.understand.reading import Option, PromptSpec, Reading
from knowledge.schema import Check

if TYPE_CHECKING:
    from bot.engine.core import Dialogue


class Prompt:
    kind: str = ""

    def __init__(self, d: Dialogue):
        self.d = d

    def spec(self, s: State) -> PromptSpec:
        return PromptSpec(kind=self.kind, id=s.pending.id if s.pending else None)  # type: ignore[arg-type]

    def again(self, ctx: Ctx) -> None:
        """Put the pending question again, unchanged."""
        raise NotImplementedError

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        """A button of this prompt: act on it. False when the click is not one of this prompt's."""
        return False

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        """A typed reply: act on it when it answers this prompt (or ask back when unsure)."""
        reply = r.reply
        if reply is None:
            return False
        if reply.option:
            self.take(ctx, reply.option, r.text)
            return True
        if reply.maybe:
            self.d.prompts.confirm.ask(ctx, list(reply.maybe))
            return True
        return False

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        raise NotImplementedError

    def label(self, s: State, option: str) -> str:
        return next((o.label for o in self.spec(s).options if o.id == option), option)

    def explain(self, ctx: Ctx) -> None:
        ctx.add(Reply(kind="info", text=self.d.words.say("explain-generic", ctx.idp)))
        self.again(ctx)

    def reask(self, ctx: Ctx, why: str) -> None:
        p = ctx.state.pending
        if p is not None:
            p.reasks += 1
            if p.reasks >= 2:
                why = f"{why} {self.d.words.say('reask-hint', ctx.idp)}"
        ctx.add(Reply(kind="info", text=why))
        self.again(ctx)


class CheckPrompt(Prompt):
    kind = "check"

    def _check(self, s: State) -> Check:
        return self.d.kb.checks[s.pending.id]  # type: ignore[union-attr,index]

    def needs_idp(self, s: State, check: Check) -> bool:
        """Whether the IdP must be known before this check is shown: its wording differs by IdP, or only
        some consoles have it (one console's look would be put to an admin of another)."""
        w = self.d.words
        texts = (check.title, check.ask, check.path, check.look_for, check.quote, *(a.label for a in check.answers))
        return s.idp is None and (check.idps is not None or w.idp_specific(*texts))

    def ask(self, ctx: Ctx, check: Check, reask: str | None = None, compact: bool = False) -> None:
        """`compact`: the question and its answers only (just after the step was explained in full)."""
        s = ctx.state
        s.phase = "checking"
        if self.needs_idp(s, check):
            # A check only some consoles have was picked while every console was possible: once the IdP
            # is known, pick again among that console's own checks (its best look may be another one).
            then = Then(kind="check", id=check.id) if check.idps is None else Then(kind="advance")
            self.d.prompts.idp.ask(ctx, then)
            return
        if not (s.pending and s.pending.kind == "check" and s.pending.id == check.id):
            s.questions += 1
            s.pending = Pending(kind="check", id=check.id)
        w, idp = self.d.words, s.idp
        text = w.word(check.ask, idp)
        look_for = w.word(check.look_for, idp)
        if look_for and not compact:
            text += "\n" + look_for
        if reask:
            text = f"{reask} {text}"
        ctx.add(
            Reply(
                kind="question",
                title=w.check_title(check, idp),
                text=text,
                path=None if compact else w.word(check.path, idp) or None,
                quote=w.word(check.quote, idp) or None,
                choices=[Choice(id=f"{check.id}:{a.id}", label=w.answer_label(a, idp)) for a in check.answers],
            )
        )

    def spec(self, s: State) -> PromptSpec:
        check = self._check(s)
        w = self.d.words
        options = tuple(
            Option(id=a.id, label=w.answer_label(a, s.idp), kind=a.kind, says=tuple(a.says)) for a in check.answers
        )
        return PromptSpec(kind="check", id=check.id, options=options)

    def again(self, ctx: Ctx) -> None:
        self.ask(ctx, self._check(ctx.state))

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        check_id, _, answer_id = choice.partition(":")
        s = ctx.state
        if check_id != (s.pending.id if s.pending else None) or self.d.kb.answer(check_id, answer_id) is None:
            return False
        self.take(ctx, answer_id, None)
        return True

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        s = ctx.state
        check = self._check(s)
        answer = self.d.kb.answer(check.id, option)
        if answer is None:
            self.reask(ctx, self.d.words.say("reask-answer", s.idp))
            return
        self.d.diagnosis.record(s, check, answer, "asked", said)
        s.pending = None
        self.d.diagnosis.advance(ctx)

    def explain(self, ctx: Ctx) -> None:
        s = ctx.state
        check = self._check(s)
        w = self.d.words
        parts = [w.say("re-explain", s.idp, title=w.check_title(check, s.idp))]
        idp = self.d.kb.idps.get(s.idp or "") if check.where == "idp" else None
        if idp is not None:
            parts.append(w.say("where-console", s.idp, console=w.word(idp.console, s.idp)))
        look_for = w.word(check.look_for, s.idp)
        if look_for:
            parts.append(w.say("look-for", s.idp, text=look_for))
        # The path goes in its own field, so every renderer shows it as a path.
        ctx.add(Reply(kind="info", text="\n".join(parts), path=w.word(check.path, s.idp) or None))
        self.ask(ctx, check, compact=True)

    def reask(self, ctx: Ctx, why: str) -> None:
        s = ctx.state
        p = s.pending
        check = self._check(s)
        if p is not None and p.reasks + 1 > MAX_REASKS:
            # Still unclear after several tries: "not sure" rather than a loop.
            unsure = next((a for a in check.answers if a.kind == "unsure"), None)
            if unsure is not None:
                self.d.diagnosis.record(s, check, unsure, "asked", None)
                ctx.add(Reply(kind="info", text=self.d.words.say("gave-up-check", s.idp)))
                s.pending = None
                self.d.diagnosis.advance(ctx)
                return
        if p is not None:
            p.reasks += 1
            if p.reasks >= 2:
                why = f"{why} {self.d.words.say('reask-hint', s.idp)}"
        self.ask(ctx, check, reask=why)


class IdpPrompt(Prompt):
    kind = "idp"

    def ask(self, ctx: Ctx, then: Then | None) -> None:
        s = ctx.state
        reasks = s.pending.reasks if s.pending and s.pending.kind == "idp" else 0
        s.pending = Pending(kind="idp", then=then, reasks=reasks)
        w = self.d.words
        title, text = w.say("idp-title"), w.say("idp-ask")
        ctx.add(
            Reply(
                kind="question",
                title=title,
                text=text,
                choices=[Choice(id=f"idp:{i.id}", label=i.name) for i in self.d.kb.pack.idps],
            )
        )

    def spec(self, s: State) -> PromptSpec:
        options = tuple(Option(id=i.id, label=i.name, says=tuple(i.aliases)) for i in self.d.kb.pack.idps)
        return PromptSpec(kind="idp", options=options)

    def again(self, ctx: Ctx) -> None:
        p = ctx.state.pending
        self.ask(ctx, p.then if p else None)

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        if not choice.startswith("idp:") or choice[4:] not in self.d.kb.idps:
            return False
        self.take(ctx, choice[4:], None)
        return True

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        if super().on_reading(ctx, r):
            return True
        if r.entities.idp and r.act not in ("question", "human", "restart"):
            self.take(ctx, r.entities.idp, r.text)
            return True
        return False

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        s = ctx.state
        r = ctx.reading
        s.idp = option
        if r is not None and r.entities.idp == option and r.entities.idp_named:
            s.idp_named = r.entities.idp_named
        then = s.pending.then if s.pending else None
        s.pending = None
        self.d.diagnosis.resume(ctx, then)

    def explain(self, ctx: Ctx) -> None:
        ctx.add(Reply(kind="info", text=self.d.words.say("idp-explain")))
        self.again(ctx)


class FixedPrompt(Prompt):
    kind = "fixed"

    def ask(self, ctx: Ctx, prefix: str = "") -> None:
        s = ctx.state
        s.pending = Pending(kind="fixed", reasks=s.pending.reasks if s.pending and s.pending.kind == "fixed" else 0)
        w = self.d.words
        text = w.say("fixed-ask", s.idp)
        ctx.add(
            Reply(
                kind="question",
                title=w.say("fixed-title", s.idp),
                text=f"{prefix} {text}".strip(),
                choices=[
                    Choice(id="fixed:yes", label=w.say("fixed-yes", s.idp), style="primary"),
                    Choice(id="fixed:no", label=w.say("fixed-no", s.idp)),
                ],
            )
        )

    def spec(self, s: State) -> PromptSpec:
        w = self.d.words
        return PromptSpec(
            kind="fixed",
            options=(Option(id="yes", label=w.say("fixed-yes", s.idp), kind="yes"), Option(id="no", label=w.say("fixed-no", s.idp), kind="no")),
        )

    def again(self, ctx: Ctx) -> None:
        self.ask(ctx)

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        if choice not in ("fixed:yes", "fixed:no"):
            return False
        self.take(ctx, choice[6:], None)
        return True

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        # Only a reply that is about the outcome settles it: a complaint, a question or new information
        # is never a yes (the engine handles those before asking the prompt).
        if r.act == "fixed":
            self.take(ctx, "yes", r.text)
            return True
        if r.act == "still-broken" and not (r.in_domain and (r.topic or r.symptom) not in (None, ctx.state.flow)):
            self.take(ctx, "no", r.text)
            return True
        if r.act in ("answer", "unclear"):
            return super().on_reading(ctx, r)
        return False

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        if option == "yes":
            self.d.handoff.resolved(ctx)
        else:
            self.d.diagnosis.not_fixed(ctx)

    def explain(self, ctx: Ctx) -> None:
        s = ctx.state
        if s.cause:
            ctx.add(self.d.diagnosis.resolution_reply(s, self.d.kb.causes[s.cause], s.cause_confirmed))
        self.again(ctx)


class FieldPrompt(Prompt):
    kind = "field"

    def ask(self, ctx: Ctx, field_id: str, then: Then | None = None) -> None:
        """`then`: what to do once the field is given (a check to look up again); by default the ticket."""
        s = ctx.state
        field = self.d.kb.field(field_id)
        if field_id == "idp":
            self.d.prompts.idp.ask(ctx, Then(kind="field"))
            return
        if field is None:  # a field this pack's escalation does not list
            self.d.handoff.carry_on(ctx)
            return
        same = s.pending and s.pending.kind == "field" and s.pending.id == field_id
        reasks = s.pending.reasks if same and s.pending else 0
        then = then or (s.pending.then if same and s.pending else None)
        s.pending = Pending(kind="field", id=field_id, reasks=reasks, then=then)
        w = self.d.words
        choices = [Choice(id="field:skip", label=w.say("skip", s.idp))] if field.optional else []
        ctx.add(Reply(kind="question", title=w.word(field.label, s.idp), text=w.word(field.ask, s.idp), choices=choices))

    def spec(self, s: State) -> PromptSpec:
        field_id = s.pending.id if s.pending else None
        field = self.d.kb.field(field_id or "")
        options = (Option(id="skip", label=self.d.words.say("skip", s.idp)),) if field and field.optional else ()
        return PromptSpec(kind="field", id=field_id, options=options)

    def again(self, ctx: Ctx) -> None:
        p = ctx.state.pending
        self.ask(ctx, (p.id if p else None) or "account")

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        if choice != "field:skip":
            return False
        self.skip(ctx)
        return True

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        s = ctx.state
        field = self.d.kb.field((s.pending.id if s.pending else None) or "")
        if field is None:
            self.d.handoff.carry_on(ctx)
            return True
        reply = r.reply
        if r.act == "skip" or (reply is not None and reply.option == "skip"):
            if field.optional:
                self.skip(ctx)
            else:
                self.reask(ctx, self.d.words.say("field-required", s.idp, field=self.d.words.word(field.label, s.idp)))
            return True
        if reply is not None and reply.value:
            self.d.handoff.set_field(ctx, field.id, reply.value)
            return True
        return False

    def skip(self, ctx: Ctx) -> None:
        s = ctx.state
        then = s.pending.then if s.pending else None
        if then is not None and then.kind == "check" and then.id:
            # The UPN was wanted to look a check up: without it, the check is simply asked.
            s.pending = None
            if then.id not in s.looked:
                s.looked.append(then.id)
            self.d.diagnosis.resume(ctx, then)
            return
        if s.pending and s.pending.id and s.pending.id not in s.skipped:
            s.skipped.append(s.pending.id)
        s.pending = None
        self.d.handoff.carry_on(ctx)

    def explain(self, ctx: Ctx) -> None:
        s = ctx.state
        field = self.d.kb.field((s.pending.id if s.pending else None) or "")
        label = self.d.words.word(field.label, s.idp) if field else ""
        ctx.add(Reply(kind="info", text=self.d.words.say("field-explain", s.idp, field=label)))
        self.again(ctx)
