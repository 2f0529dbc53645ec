"""The prompts that close, pick or confirm: the feedback question, the symptom picker, the one-line
ask-back ("Do you mean …?"), the offer to switch to a new problem; and the registry of every prompt kind.
The prompts of the walk itself (checks, IdP, "did that fix it?", ticket fields) are in bot/engine/prompts.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.engine.context import Ctx
from bot.engine.prompts import CheckPrompt, FieldPrompt, FixedPrompt, IdpPrompt, Prompt
from bot.events import Choice, Reply
from bot.state import Pending, State
from bot.understand.reading import Context, Option, PromptSpec, Reading

if TYPE_CHECKING:
    from bot.engine.core import Dialogue


class FeedbackPrompt(Prompt):
    kind = "helpful"

    def ask(self, ctx: Ctx) -> None:
        s = ctx.state
        s.pending = Pending(kind="feedback")
        w = self.d.words
        ctx.add(
            Reply(
                kind="closing",
                text=w.say("feedback-ask", s.idp),
                choices=[
                    Choice(id="helpful:yes", label=w.say("feedback-yes", s.idp), style="primary"),
                    Choice(id="helpful:no", label=w.say("feedback-no", s.idp)),
                ],
            )
        )

    def spec(self, s: State) -> PromptSpec:
        w = self.d.words
        return PromptSpec(
            kind="helpful",
            options=(Option(id="yes", label=w.say("feedback-yes", s.idp), kind="yes"), Option(id="no", label=w.say("feedback-no", s.idp), kind="no")),
        )

    def again(self, ctx: Ctx) -> None:
        self.ask(ctx)

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        if choice not in ("helpful:yes", "helpful:no"):
            return False
        self.take(ctx, choice[8:], None)
        return True

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        if r.act in ("answer", "unclear", "fixed") and r.reply is not None and r.reply.option in ("yes", "no"):
            self.take(ctx, r.reply.option, r.text)
            return True
        return False

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        s = ctx.state
        s.helpful = option == "yes"
        s.pending = None
        s.phase = "closed"
        ctx.add(Reply(kind="info", text=self.d.words.say("feedback-thanks", s.idp)))


class ClarifyPrompt(Prompt):
    """The symptom picker: which of these is closest to what you see?"""

    kind = "clarify"

    def ask(self, ctx: Ctx, options: list[str], unsure: bool = False, text: str | None = None) -> None:
        """`text`: the message id to ask with (by default the plain or the unsure picker question)."""
        s = ctx.state
        s.phase = "clarifying"
        s.clarify = options
        reasks = s.pending.reasks if s.pending and s.pending.kind == "clarify" else 0
        s.pending = Pending(kind="clarify", reasks=reasks)
        w = self.d.words
        question = w.say(text or ("clarify-unsure" if unsure else "clarify"), s.idp)
        choices = [Choice(id=sid, label=w.word(self.d.kb.flows[sid].title, s.idp)) for sid in options]
        # In the domain but none of these: a person is always one click away.
        choices.append(Choice(id="cmd:escalate", label=w.say("none-of-these", s.idp)))
        ctx.add(Reply(kind="clarify", text=question, choices=choices))

    def spec(self, s: State) -> PromptSpec:
        w = self.d.words
        options = tuple(Option(id=sid, label=w.word(self.d.kb.flows[sid].title, s.idp)) for sid in s.clarify if sid in self.d.kb.flows)
        return PromptSpec(kind="clarify", options=(*options, Option(id="escalate", label=w.say("none-of-these", s.idp))))

    def again(self, ctx: Ctx) -> None:
        self.ask(ctx, ctx.state.clarify, text="other-symptom" if ctx.state.repicked else None)

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        if choice not in self.d.kb.flows:
            return False
        self.take(ctx, choice, None)
        return True

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        if super().on_reading(ctx, r):
            return True
        flow = r.topic or r.symptom
        if flow and flow in self.d.kb.flows:
            self.take(ctx, flow, r.text)
            return True
        if not r.in_domain and r.act != "question" and len(r.text.split()) >= 4:
            # Not a pick but a new message that is not about this at all ("wrong bot, the coffee
            # machine…"): read it afresh rather than insisting on the picker.
            ctx.state.pending = None
            self.d.triage(ctx, r)
            return True
        return False

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        if option == "escalate":
            self.d.handoff.command(ctx, "escalate")
            return
        ctx.state.pending = None
        self.d.diagnosis.start(ctx, option, ctx.reading if said else None)


class ConfirmPrompt(Prompt):
    """Asking back in one line when a reply might mean one of a few answers: never guess."""

    kind = "confirm"

    def ask(self, ctx: Ctx, maybe: list[str]) -> None:
        s = ctx.state
        of = s.pending.model_copy() if s.pending else None
        if of is None:
            return
        of_prompt = self.d.prompts.of(of.kind)
        labels = [of_prompt.label(s, m) for m in maybe]
        s.pending = Pending(kind="confirm", maybe=maybe, of=of)
        w = self.d.words
        if len(maybe) == 1:
            text = w.say("ask-back", s.idp, options=labels[0])
            choices = [Choice(id="confirm:yes", label=w.say("confirm-yes", s.idp), style="primary"), Choice(id="confirm:no", label=w.say("confirm-no", s.idp))]
        else:
            text = w.say("ask-back", s.idp, options=" / ".join(labels))
            choices = [Choice(id=f"confirm:{m}", label=lab) for m, lab in zip(maybe, labels)]
            choices.append(Choice(id="confirm:no", label=w.say("confirm-none", s.idp)))
        ctx.add(Reply(kind="question", text=text, choices=choices))

    def spec(self, s: State) -> PromptSpec:
        p = s.pending
        assert p is not None and p.of is not None
        of_prompt = self.d.prompts.of(p.of.kind)
        saved, s.pending = s.pending, p.of
        try:
            labels = {m: of_prompt.label(s, m) for m in p.maybe}
        finally:
            s.pending = saved
        w = self.d.words
        if len(p.maybe) == 1:
            options: tuple[Option, ...] = (
                Option(id="yes", label=w.say("confirm-yes", s.idp), kind="yes"),
                Option(id="no", label=w.say("confirm-no", s.idp), kind="no"),
            )
        else:
            options = tuple(Option(id=m, label=labels[m]) for m in p.maybe) + (Option(id="no", label=w.say("confirm-none", s.idp), kind="no"),)
        return PromptSpec(kind="confirm", options=options)

    def again(self, ctx: Ctx) -> None:
        p = ctx.state.pending
        if p is None or p.of is None:
            return
        maybe = p.maybe
        ctx.state.pending = p.of
        self.ask(ctx, maybe)

    def _restore(self, ctx: Ctx) -> Prompt:
        p = ctx.state.pending
        assert p is not None and p.of is not None
        ctx.state.pending = p.of
        return self.d.prompts.of(p.of.kind)

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        if not choice.startswith("confirm:"):
            return False
        self.take(ctx, choice[8:], None)
        return True

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        if r.reply is not None and r.reply.option:
            self.take(ctx, r.reply.option, r.text)
            return True
        # Not a yes/no to the ask-back: let the original question try the reply afresh.
        return self._restore(ctx).on_reading(ctx, r)

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        p = ctx.state.pending
        assert p is not None
        maybe = list(p.maybe)
        prompt = self._restore(ctx)
        if option == "yes" and len(maybe) == 1:
            prompt.take(ctx, maybe[0], said)
        elif option in maybe:
            prompt.take(ctx, option, said)
        else:
            prompt.again(ctx)


class SwitchPrompt(Prompt):
    """A message that describes a different problem in the middle of a walk: ask once before leaving
    the current one (its findings would not carry over), rather than guessing either way."""

    kind = "switch"

    def ask(self, ctx: Ctx, flow: str) -> None:
        s = ctx.state
        of = s.pending.model_copy() if s.pending else None
        s.pending = Pending(kind="switch", id=flow, of=of)
        w = self.d.words
        title = w.word(self.d.kb.flows[flow].title, s.idp)
        ctx.add(
            Reply(
                kind="question",
                text=w.say("switch-ask", s.idp, title=title),
                choices=[Choice(id="switch:yes", label=w.say("switch-yes", s.idp), style="primary"), Choice(id="switch:no", label=w.say("switch-no", s.idp))],
            )
        )

    def spec(self, s: State) -> PromptSpec:
        w = self.d.words
        return PromptSpec(kind="confirm", options=(Option(id="yes", label=w.say("switch-yes", s.idp), kind="yes"), Option(id="no", label=w.say("switch-no", s.idp), kind="no")))

    def again(self, ctx: Ctx) -> None:
        p = ctx.state.pending
        if p is not None and p.id:
            ctx.state.pending = p.of
            self.ask(ctx, p.id)

    def on_reading(self, ctx: Ctx, r: Reading) -> bool:
        p = ctx.state.pending
        flow = r.topic or r.symptom
        if p is not None and r.in_domain and flow in self.d.kb.flows and flow != p.id:
            ctx.state.pending = p.of  # yet another problem described: offer that one instead
            self.ask(ctx, flow or "")
            return True
        return super().on_reading(ctx, r)

    def on_choice(self, ctx: Ctx, choice: str) -> bool:
        if choice not in ("switch:yes", "switch:no"):
            return False
        self.take(ctx, choice[7:], None)
        return True

    def take(self, ctx: Ctx, option: str, said: str | None) -> None:
        s = ctx.state
        p = s.pending
        assert p is not None
        if option != "yes":
            s.pending = p.of
            self.d.prompts.repeat(ctx)
            return
        # The new problem as the admin wrote it: the admin line before this reply.
        admin = [line.text for line in s.transcript if line.who == "admin"]
        report = admin[-2] if len(admin) >= 2 else ""
        reading = self.d.reader.read(report, Context(addressed=True)) if report else None
        self.d.restart(ctx, reading)
        if reading is None or ctx.state.flow is None:
            ctx.state.pending = None
            self.d.diagnosis.start(ctx, p.id or "", None)


class Prompts:
    """The prompt kinds, and the one that a state is waiting on."""

    def __init__(self, d: Dialogue):
        self.check = CheckPrompt(d)
        self.idp = IdpPrompt(d)
        self.fixed = FixedPrompt(d)
        self.field = FieldPrompt(d)
        self.feedback = FeedbackPrompt(d)
        self.clarify = ClarifyPrompt(d)
        self.confirm = ConfirmPrompt(d)
        self.switch = SwitchPrompt(d)
        self._by_kind: dict[str, Prompt] = {
            "check": self.check,
            "idp": self.idp,
            "fixed": self.fixed,
            "field": self.field,
            "feedback": self.feedback,
            "clarify": self.clarify,
            "confirm": self.confirm,
            "switch": self.switch,
        }
        self.d = d

    def of(self, kind: str) -> Prompt:
        return self._by_kind[kind]

    def current(self, s: State) -> Prompt | None:
        return self._by_kind.get(s.pending.kind) if s.pending else None

    def spec(self, s: State) -> PromptSpec | None:
        prompt = self.current(s)
        return prompt.spec(s) if prompt else None

    def repeat(self, ctx: Ctx) -> None:
        s = ctx.state
        prompt = self.current(s)
        if prompt is not None:
            prompt.again(ctx)
        elif s.phase == "closed":
            ctx.add(Reply(kind="info", text=self.d.words.say("closed", s.idp)))
        else:
            self.d.handoff.help(ctx)
