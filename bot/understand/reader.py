"""`Reader`: one message plus the conversation's context in, one `Reading` out (bot/understand/reading.py).

The text is scrubbed of secrets first (bot/redact.py), then normalised once (bot/text.py); every part below
works on those strings:

- the domain and symptom decision and the cause statements come from the symptom classifier
  (bot/classify/) — the learned model takes over where it is trained (bot/understand/model.py);
- pasted error strings from the pack's signatures (rapidfuzz / exact), negation-checked;
- entities (bot/understand/entities.py), commands anywhere (bot/understand/lexicon.py);
- the reply to the pending prompt (bot/understand/replies.py) and answers to other open checks;
- the act (bot/understand/acts.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.answers import AnswerMatcher
from bot.classify import Classification, Classifier
from bot.redact import scrub_secrets
from bot.text import as_text, message_forms
from bot.understand import lexicon as lx
from bot.understand.acts import rule_signals
from bot.understand.corpus import TOPICS
from bot.understand.entities import EntityReader
from bot.understand.errors import ErrorCatalogue
from bot.understand.model import DEFAULT_THRESHOLDS, Model, cue_features, decide
from bot.understand.reading import (
    CheckAnswer,
    Command,
    Context,
    Entities,
    Evidence,
    PromptSpec,
    Reading,
    Reply,
    SymptomScore,
)
from bot.understand.replies import ReplyReader, attribute_option
from bot.understand.settings import SettingHit, SettingReader
from knowledge.schema import Bundle

_NEGATED_SIG = re.compile(r"(?:\b(?:no|not|never|without|zero|none of the)\b|n't|\bdont\b)[^.!?\n]{0,20}$", re.IGNORECASE)


_AUTO = object()
# The acts the answer-kind head may turn into an answer: a reply read as an answer with no option, or not
# read at all. One read as new information or an aside stays so (on dev the same options either way).
KIND_ACTS = ("answer", "unclear")


@dataclass(frozen=True)
class _Said:
    """One message in the forms every part reads it in, with what the cue scorer and the rules made of it."""

    lines_plain: str
    norm: str
    c: Classification
    ent: Entities
    sig: dict[str, bool]


@dataclass
class _Report:
    """What a message tells of the problem: in the domain or not, the symptom or topic, how sure."""

    in_domain: bool
    symptoms: tuple[SymptomScore, ...]
    symptom: str | None
    topic: str | None
    confident: bool
    domain_score: float
    cause_p: dict[str, float]  # the learned cause head's probabilities (empty without the model)


class Reader:
    """`model`: the learned artefact (default: knowledge/model/, loaded once); None reads with the cue
    scorer alone. `act_mode`: how the act is told — "rules", "model", or "rules+model" (rules where one
    is sure, the model elsewhere; chosen on dev, see bench/NOTES.md)."""

    def __init__(self, bundle: Bundle, model: Any = _AUTO, act_mode: str = "rules+model"):
        self.bundle = bundle
        self.clf = Classifier(bundle)
        self.model = Model.load() if model is _AUTO else model
        self.t = {**DEFAULT_THRESHOLDS, **(self.model.thresholds if self.model else {})}
        self.act_mode = act_mode if self.model else "rules"
        # Whether a pasted catalogue error makes a message ours by itself: "all", "specific" (not a bare code),
        # or "none" (the model decides; SCIM errors of other apps look alike).
        self.errors_in_domain = "none"  # dev: "none" 1.8% false triggers, "specific" and "all" 3.6%, no recall gained
        self._symptom_ids = [s.id for s in bundle.pack.symptoms]
        pack_topics = getattr(bundle.pack, "topics", None)
        self._topic_ids = [t.id for t in pack_topics] if pack_topics else list(TOPICS)
        # A flow id typed as shown: compiled once, not per id and message. Only hyphenated ids ("quarantine"
        # is also a plain word); longest first, so an id is never cut short by one it begins with.
        typed = sorted((i for i in (*self._symptom_ids, *self._topic_ids) if "-" in i), key=len, reverse=True)
        self._typed_ids = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, typed)) + r")(?![\w-])" if typed else r"(?!x)x")
        self.matcher = AnswerMatcher(bundle)
        self.entities = EntityReader(bundle)
        self.errors = ErrorCatalogue(bundle)
        # cause -> the checks whose answers can rule it out (their report cues are read against a statement)
        self._checks_testing: dict[str, list] = {}
        for ch in bundle.pack.checks:
            for cid in {c for a in ch.answers for c in a.rules_out}:
                self._checks_testing.setdefault(cid, []).append(ch)
        self.replies = ReplyReader(bundle)
        self.settings = SettingReader(bundle)
        self._sym_causes = {s.id: {w.cause for w in s.causes} for s in bundle.pack.symptoms}
        self._cause_min = self.clf.t["cause-min"]
        self._cause_margin = self.clf.t["cause-margin"]
        self._short_commands = {name: set(phrases) for name, phrases in self.matcher.commands.items()}

    # ---- the one entry point -------------------------------------------------------------------------

    def read(self, text: str, context: Context | None = None) -> Reading:
        context = context or Context()
        lines_plain, plain, norm = message_forms(scrub_secrets(as_text(text)))
        if not norm:
            return Reading(text="", in_domain=False, domain_score=0.0, act="unclear")

        c = self.clf.classify_plain(plain)
        ent = self.entities.read(norm, plain, lines_plain)
        commands, command_only = self._commands(norm)
        sig = rule_signals(norm, context)  # on the message's first lines: replies are short, reports say it early
        said = _Said(lines_plain, norm, c, ent, sig)
        rep = self._report(said, context)
        typed = self._typed_flow(norm)
        if typed is not None:
            # A symptom or topic id typed as it is shown ("users-not-working please"): exact text, no judgement.
            rep.in_domain, rep.confident = True, True
            rep.symptom, rep.topic = (typed, None) if typed in self._symptom_ids else (None, typed)
        evidence = self._evidence(c, plain, context, rep.cause_p if rep.in_domain or context.symptom else {})
        settings = self.settings.read(norm)
        by_setting = self._setting_evidence(settings, evidence)
        # What the option's state says is exact; the model's reading of the same cause gives way to it.
        stated = {e.cause for e in by_setting}
        evidence = [e for e in evidence if not (e.via == "statement" and e.cause in stated)] + by_setting
        self._take_pasted_errors(rep, evidence)
        act, act_conf, reply = self._act(said, context, rep, evidence, commands, command_only)
        if context.pending is not None and context.pending.kind == "check" and self.model is not None:
            act, reply = self._answer_by_kind(context.pending, norm, act, reply)
        if act == "human" and "escalate" not in commands:
            commands = ("escalate", *commands)
        answers = self._open_answers(norm, context, ent, self._checks_to_read(context, rep), settings)
        return Reading(
            text=plain,
            in_domain=rep.in_domain,
            domain_score=rep.domain_score,
            symptoms=rep.symptoms,
            symptom=rep.symptom,
            topic=rep.topic,
            confident=rep.confident,
            evidence=tuple(evidence),
            answers=answers,
            reply=reply,
            entities=ent,
            commands=commands,
            act=act,  # type: ignore[arg-type]
            act_confidence=round(act_conf, 3) if act != "unclear" else 0.0,
        )

    def _answer_by_kind(self, pending: PromptSpec, norm: str, act: str, reply: Reply | None) -> tuple[str, Reply | None]:
        """A check's reply no rule placed ("Direct member, I'm looking at her", "it's greyed out, can't run
        it"): the answer-kind head (yes / no / unsure to the question as asked) takes the option of that
        kind when it is sure, offers it back when it leans, and leaves questions, complaints and the rest
        as they are."""
        if act not in KIND_ACTS or (reply is not None and (reply.option or reply.maybe)):
            return act, reply
        assert self.model is not None
        p = self.model.answer_kind(norm, pending.kind, pending.id)
        if not p:
            return act, reply
        kind = max(p, key=p.__getitem__)
        matching = [o.id for o in self.replies.options(pending) if o.kind == kind]
        if len(matching) != 1 or p[kind] < self.t["kind-ask"]:
            return act, reply
        if p[kind] >= self.t["kind"]:
            return "answer", Reply(option=matching[0], via="model")
        return "answer", Reply(maybe=(matching[0],))

    def _typed_flow(self, norm: str) -> str | None:
        found = set(self._typed_ids.findall(norm))
        return found.pop() if len(found) == 1 else None

    def classify(self, text: str) -> dict:
        """`scim-help classify`'s JSON line for one message."""
        r = self.read(text, Context(addressed=False))
        return {
            "symptom": r.symptom,
            "cause": r.cause if r.in_domain else None,
            "confidence": round(r.symptoms[0].score, 3) if r.symptom and r.symptoms else 0.0,
            "candidates": [{"symptom": s.symptom, "score": round(s.score, 3)} for s in r.symptoms if round(s.score, 3) > 0],
            "in_domain": r.in_domain,
            "topic": r.topic,
        }

    def explain(self, r: Reading) -> str:
        """A person's view of a reading (`scim-help classify "text"`)."""
        titles = {s.id: s.title for s in self.bundle.pack.symptoms}
        causes = {c.id: c.title for c in self.bundle.pack.causes}
        lines = []
        if r.symptom:
            lines.append(f"symptom:    {r.symptom} — {titles.get(r.symptom, '')}")
        elif r.in_domain:
            lines.append("symptom:    (unsure) — SCIM provisioning into Cato, but which problem is unclear")
        else:
            lines.append("symptom:    none — does not look like a Cato SCIM provisioning problem")
        if r.topic:
            lines.append(f"topic:      {r.topic}")
        lines.append(f"cause:      {r.cause} — {causes.get(r.cause, '')}" if r.cause else "cause:      (not pinned by the text)")
        conf = r.symptoms[0].score if r.symptom and r.symptoms else 0.0
        lines.append(f"confidence: {conf:.2f}   in domain: {'yes' if r.in_domain else 'no'} (score {r.domain_score:.2f}); speaks unasked: {'yes' if r.confident else 'no'}")
        if r.entities.idp:
            lines.append(f"idp:        {r.entities.idp} (named \"{r.entities.idp_named}\")")
        for e in r.evidence:
            what = ("rules out " if e.rules_out else "") + (e.cause or e.topic or "")
            lines.append(f"evidence:   {what} via {e.via}" + (f": \"{e.matched[:80]}\"" if e.matched else "") + (f" ({e.source})" if e.source else ""))
        if r.symptoms:
            lines.append("candidates:")
            for s in r.symptoms:
                lines.append(f"  {s.score:5.2f}  {s.symptom}")
        for a in r.answers:
            lines.append(f"answers:    {a.check} = {a.answer}")
        if r.commands:
            lines.append("commands:   " + ", ".join(r.commands))
        lines.append(f"act:        {r.act}")
        return "\n".join(lines)

    # ---- parts -----------------------------------------------------------------------------------------

    def _report(self, said: _Said, context: Context) -> _Report:
        """The domain, symptom and topic: the learned model's where there is one, else the cue scorer's."""
        c, norm = said.c, said.norm
        if self.model is None:
            in_domain, symptoms, symptom = self._domain(c, context)
            confident = bool(c.in_domain and self.clf.ambient_ok(c))
            return _Report(in_domain, symptoms, symptom, None, confident, c.domain_score, {})
        label, cause_p = self.model.report(norm, cue_features(c, len(norm.split())))
        d = decide(label, self._symptom_ids, self._topic_ids, self.t)
        symptoms = tuple(SymptomScore(s, round(p, 4)) for s, p in d.symptoms if p >= 0.0005)
        return _Report(d.in_domain, symptoms, d.symptom, d.topic, d.confident, round(1.0 - d.p_off, 4), cause_p)

    def _take_pasted_errors(self, rep: _Report, evidence: list[Evidence]) -> None:
        pasted = [e for e in evidence if e.via not in ("statement", "setting") and not e.rules_out]
        if pasted and self.errors_in_domain != "none" and (self.errors_in_domain == "all" or any(self._specific(e) for e in pasted)):
            # A catalogue error pasted is SCIM into Cato, whatever the words around it.
            rep.in_domain = True
            if rep.symptom is None and rep.topic is None and pasted[0].topic:
                rep.topic = pasted[0].topic

    def _act(
        self, said: _Said, context: Context, rep: _Report, evidence: list[Evidence], commands: tuple[Command, ...], command_only: bool
    ) -> tuple[str, float, Reply | None]:
        """(act, its confidence, the reply to the pending prompt)."""
        pending, sig = context.pending, said.sig
        if command_only:
            return ("human" if "escalate" in commands else "restart" if "restart" in commands else "unclear"), 0.9, None
        if pending is not None and ("escalate" in commands or "restart" in commands):
            # "Can you just raise it with Cato support for me?": a command inside a reply is the act.
            return ("human" if "escalate" in commands else "restart"), 0.9, None
        if sig["complaint"]:
            return "complaint", 0.9, None
        if pending is None:
            if sig["fixed"] and not said.c.in_domain:
                return "fixed", 0.9, None
            if rep.in_domain:
                return ("report" if not context.symptom else "info"), 0.9, None
            return ("question" if sig["question"] else "aside"), 0.9, None
        return self._reply_to(pending, said, rep, evidence, commands)

    def _reply_to(
        self, pending: PromptSpec, said: _Said, rep: _Report, evidence: list[Evidence], commands: tuple[Command, ...]
    ) -> tuple[str, float, Reply | None]:
        """The act and reply of a message with a prompt pending: the rules first, the model where they are unsure."""
        norm, lines_plain, ent, sig = said.norm, said.lines_plain, said.ent, said.sig
        reply: Reply | None = None
        act_conf = 0.9
        sure = True  # a rule that is sure of itself (a command, a complaint, a question, ...)
        fallback = False  # the rules found nothing and guessed from the domain
        act = self._reply_act(pending.kind, sig, said.c, evidence)
        if act == "pending":
            sure = False
            reply = self.replies.read(pending, norm, lines_plain, ent, "answer", rep.symptom)
            if reply is not None and (reply.option or reply.value or reply.maybe):
                act = "answer"
                sure = reply.via in ("choice", "number", "label") or (reply.option is not None and len(norm.split()) <= 3)
            elif sig["still"]:
                act = "still-broken"
            else:
                fallback = True
                act = self._fallback_act(evidence, rep.in_domain, commands, norm)
        if self.act_mode != "rules" and self.model is not None:
            p = self.model.act(norm, pending.kind, pending.id)
            m_act = max(p, key=p.__getitem__)
            # How sure the head is of its own pick, before a refused skip becomes "unclear".
            sure_of_pick = p[m_act]
            # The model decides where no rule is sure: where the rules only fell back, when it is at least
            # `act-fallback` sure of its pick; elsewhere when it is sure itself. Skipping a ticket field
            # takes a skip word, never a guess.
            if m_act == "skip" and not sig["skip"]:
                m_act = "unclear"
            if self.act_mode == "model" or (
                not sure and ((fallback and sure_of_pick >= self.t["act-fallback"]) or p[m_act if m_act in p else "answer"] >= self.t["act"])
            ):
                act, act_conf = m_act, p.get(m_act, 0.0)
        if pending.kind == "helpful" and act == "fixed":
            act = "answer"
        if act == "answer" and reply is None:
            reply = self.replies.read(pending, norm, lines_plain, ent, "answer", rep.symptom)
        elif act in ("fixed", "still-broken", "skip"):
            reply = self.replies.read(pending, norm, lines_plain, ent, act, None)
        elif act != "answer":
            reply = None
        return act, act_conf, reply

    @staticmethod
    def _fallback_act(evidence: list[Evidence], in_domain: bool, commands: tuple[Command, ...], norm: str) -> str:
        """A reply the rules cannot place: what it most plausibly is."""
        if evidence or in_domain:
            return "info"
        if commands:
            return "human" if "escalate" in commands else "unclear"
        return "aside" if len(norm.split()) >= 3 else "unclear"

    def _checks_to_read(self, context: Context, rep: _Report) -> tuple[str, ...]:
        open_checks = context.open_checks
        if not open_checks and context.pending is None and rep.in_domain:
            # An opening: the checks of the symptom(s) it points at, so a report that already answers one
            # ("we changed the department") is not asked again.
            sids = [rep.symptom] if rep.symptom else [s.symptom for s in rep.symptoms[:2]]
            open_checks = tuple(dict.fromkeys(cid for sid in sids if sid in self.bundle.symptoms for cid in self.bundle.symptoms[sid].checks))
        return open_checks

    def _domain(self, c: Classification, context: Context) -> tuple[bool, tuple[SymptomScore, ...], str | None]:
        symptoms = tuple(SymptomScore(x.symptom, x.score) for x in c.candidates)
        in_domain = c.in_domain
        symptom = c.symptom
        if symptom and c.clarify and len(c.clarify) > 1 and not c.cause:
            symptom = None  # torn between two or three: the engine asks
        if in_domain and not symptoms and c.clarify:
            symptoms = tuple(SymptomScore(s, 0.0) for s in c.clarify)
        if not in_domain and context.addressed and context.pending is None:
            offer = self.clf.offer(c)
            if offer:
                # Addressed directly and plausibly about SCIM: the picker, not the brush-off.
                in_domain = True
                symptom = None
                symptoms = tuple(x for x in symptoms if x.symptom in offer)
        return in_domain, symptoms, symptom

    def _evidence(self, c: Classification, plain: str, context: Context, cause_p: dict[str, float]) -> list[Evidence]:
        out: list[Evidence] = []
        for hit in self.errors.find(plain):
            if _negated(plain, hit.text):
                continue
            out.append(
                Evidence(
                    cause=hit.cause, topic=hit.topic, via="error-code" if hit.exact else "signature",
                    matched=hit.text, source=hit.source, error=hit.id,
                )
            )
        pinned = {e.cause for e in out if e.cause}
        if self.model is not None:
            # The learned cause head: plain statements of a cause's evidence, however they are phrased.
            if cause_p:
                best = max(cause_p, key=cause_p.__getitem__)
                # The text's own words against a cause ("test connection succeeds, credentials are fine")
                # beat the model's reading of it.
                if best != "none" and cause_p[best] >= self.t["cause"] and not pinned and not self._ruled_out(best, c, plain.lower()):
                    phrase = next((p for label, p, _ in c.evidence if label == "cause " + best), "")
                    out.append(Evidence(cause=best, topic=None, via="statement", matched=phrase))
            for cid in c.ruled_out:
                if cid not in {e.cause for e in out}:
                    out.append(Evidence(cause=cid, topic=None, via="statement", matched="", rules_out=True))
            return out
        cause = c.cause
        if cause is None and c.cause_scores:
            # Mid-conversation statements ("btw the interns group is nested"): strong, leading evidence for a
            # cause of the current symptom (or of any symptom when none is chosen yet).
            (cid, ev), runner = c.cause_scores[0], (c.cause_scores[1][1] if len(c.cause_scores) > 1 else 0.0)
            allowed = self._sym_causes.get(context.symptom or c.symptom or "", None)
            if ev >= self._cause_min and ev - runner >= self._cause_margin and (allowed is None or cid in allowed):
                cause = cid
        if cause and cause not in pinned:
            phrase = next((p for label, p, _ in c.evidence if label == "cause " + cause), cause)
            out.append(Evidence(cause=cause, topic=None, via="statement", matched=phrase))
        for cid in c.ruled_out:
            out.append(Evidence(cause=cid, topic=None, via="statement", matched="", rules_out=True))
        return out

    @staticmethod
    def _specific(e: Evidence) -> bool:
        """An error string only SCIM into Cato prints (not a bare HTTP status or a generic word)."""
        m = e.matched.strip()
        return e.via == "signature" or (len(m) >= 12 and not m.replace(" ", "").isdigit())

    def _ruled_out(self, cause: str, c: Classification, norm: str) -> bool:
        if cause in c.ruled_out:
            return True
        for check in self._checks_testing.get(cause, ()):
            ans = self.matcher.from_report_norm(check, norm)
            if ans is not None and cause in ans.rules_out:
                return True
        return False

    def _commands(self, norm: str) -> tuple[tuple[Command, ...], bool]:
        """Commands anywhere in the message, and whether the message is (nearly) only a command."""
        t = norm.strip(" .!?")
        found: list[Command] = []
        short = self.matcher.command(t) if len(t.split()) <= 5 else None
        if short:
            found.append(short)  # type: ignore[arg-type]
        for name, rx in lx.COMMANDS_ANYWHERE.items():
            if not any(k in norm for k in lx.COMMAND_KEYS[name]):
                continue
            for m in rx.finditer(norm):
                if lx.COMMAND_NEGATED.search(norm[max(0, m.start() - 40) : m.start()]):
                    continue
                if name not in found:
                    found.append(name)  # type: ignore[arg-type]
                break
        only = bool(short) or (bool(found) and len(t.split()) <= 6)
        return tuple(found), only

    def _reply_act(self, kind: str, sig: dict[str, bool], c: Classification, evidence: list[Evidence]) -> str:
        if sig["still"] and kind in ("helpful", "field", "idp"):
            return "still-broken"
        if kind == "fixed":
            if sig["fixed"]:
                return "fixed"
            if sig["still"]:
                return "still-broken"
            if sig["question"]:
                return "question"
            return "pending"  # yes / no through the options, else info / aside
        if sig["question"]:
            return "question"
        if kind == "field" and sig["skip"]:
            return "skip"
        if sig["fixed"]:
            return "fixed"
        return "pending"

    def _setting_evidence(self, hits: list[SettingHit], evidence: list[Evidence]) -> list[Evidence]:
        """A console option said to be off that by itself means a cause ("Create Users is unticked")."""
        have = {e.cause for e in evidence if e.cause and not e.rules_out and e.via != "statement"}
        out = []
        for h in hits:
            ans = self.bundle.answer(h.check, h.answer)
            if ans is not None and ans.confirms and ans.confirms not in have:
                out.append(Evidence(cause=ans.confirms, topic=None, via="setting", matched=h.said))
                have.add(ans.confirms)
        return out

    def _open_answers(self, norm: str, context: Context, ent, open_checks: tuple[str, ...], settings: list[SettingHit]) -> tuple[CheckAnswer, ...]:
        out: list[CheckAnswer] = []
        pending_check = context.pending.id if context.pending and context.pending.kind == "check" else None
        # An option's state is exact: it answers its check whether or not that check is open yet.
        by_setting = {h.check: h for h in settings if h.check != pending_check}
        out += [CheckAnswer(h.check, h.answer, "report", 0.9, said=h.said) for h in by_setting.values()]
        for cid in open_checks:
            if cid == pending_check or cid in by_setting:
                continue
            check = self.bundle.checks.get(cid)
            if check is None:
                continue
            ans = self.matcher.from_report_norm(check, norm)
            if ans is not None:
                out.append(CheckAnswer(cid, ans.id, "report", 0.8, said=None))
                continue
            if ent.attribute:
                from bot.understand.reading import Option

                opt = attribute_option(ent.attribute, tuple(Option(a.id, a.label, a.kind) for a in check.answers))
                if opt:
                    out.append(CheckAnswer(cid, opt, "report", 0.8, said=ent.attribute))
        return tuple(out)


def _negated(text: str, phrase: str) -> bool:
    """The pasted string is preceded closely by a negation ("it does *not* say LicenseLimitExceeded")."""
    pos = text.lower().find(phrase.lower())
    return pos > 0 and bool(_NEGATED_SIG.search(text[max(0, pos - 30) : pos]))
