"""The reply to the pending prompt: which option (by choice id, by the number the renderer shows, by label, by
free text), or a ticket field's value — or `maybe` when torn, never a guess."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from bot.answers import AMBIGUITY_MARGIN, LABEL, _Phrases
from bot.text import normalize
from bot.understand import lexicon as lx
from bot.understand.entities import group_list, normalise_account
from bot.understand.reading import Entities, Option, PromptSpec, Reply
from knowledge.schema import Bundle

_ORDINALS = {
    "first": 1, "1st": 1, "one": 1, "second": 2, "2nd": 2, "two": 2, "third": 3, "3rd": 3, "three": 3,
    "fourth": 4, "4th": 4, "four": 4, "fifth": 5, "5th": 5, "five": 5, "sixth": 6, "6th": 6, "six": 6,
    "last": -1,
}
_NUMBER_REPLY = re.compile(
    r"^(?:(?:the|option|number|no\.?|choice|answer|#|nr\.?|pick|i pick|i choose)\s*)*[#(]?\s*(\d{1,2}|[a-z0-9]+)\s*[).:]?\s*(?:one|option|please|pls|then)?[.!]?$"
)
# "I can't check": the step cannot be done, so the answer is "not sure" (multi-word, so they count anywhere).
UNSURE_MORE = [
    "can't see", "cannot see", "can't access", "cannot access", "no access", "don't have access", "dont have access",
    "do not have access", "don't have the rights", "no permission", "no permissions", "not allowed to",
    "haven't checked", "have not checked", "didn't check", "no clue", "not a clue",
]
_YES_NO_OPTIONS = (Option("yes", "Yes", "yes"), Option("no", "No", "no"))


@dataclass(frozen=True)
class OptionScore:
    id: str
    score: float
    via: str


# At most this many options are offered back in one "Do you mean …?".
MAYBE_MAX = 4


class ReplyReader:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        lex = bundle.lexicon
        unsure = [u for u in lex.unsure if "?" not in u and not u.startswith("where")] + UNSURE_MORE
        self.kind_words = {"yes": _Phrases(lex.yes), "no": _Phrases(lex.no), "unsure": _Phrases(unsure)}
        self._phrases: dict[tuple, _Phrases] = {}

    # ---- options ---------------------------------------------------------------------------------

    def options(self, spec: PromptSpec) -> tuple[Option, ...]:
        """The prompt's options, with the pack's `says` and report cues merged in for a check's answers."""
        opts = spec.options
        if spec.kind == "check" and spec.id in self.bundle.checks:
            check = self.bundle.checks[spec.id]
            by_id = {a.id: a for a in check.answers}
            if not opts:
                opts = tuple(Option(a.id, a.label, a.kind) for a in check.answers)
            merged = []
            for o in opts:
                a = by_id.get(o.id)
                if a is not None:
                    o = Option(o.id, o.label or a.label, o.kind or a.kind, tuple(dict.fromkeys((*o.says, *a.says, *a.report_cues))))
                merged.append(o)
            opts = tuple(merged)
        elif spec.kind in ("fixed", "helpful", "confirm") and not opts:
            opts = _YES_NO_OPTIONS
        elif spec.kind == "idp" and not opts:
            opts = tuple(Option(i.id, i.name) for i in self.bundle.pack.idps)
        elif spec.kind == "clarify" and not opts:
            opts = ()
        return opts

    def _says(self, spec: PromptSpec, o: Option) -> _Phrases:
        key = (spec.kind, spec.id, o.id, o.says)
        p = self._phrases.get(key)
        if p is None:
            if len(self._phrases) > 4096:
                self._phrases.clear()
            p = self._phrases[key] = _Phrases(list(o.says))
        return p

    def number(self, norm: str, n: int) -> int | None:
        """1-based option number in "2", "#2", "option 2", "the second one", "2)"; None otherwise."""
        t = norm.strip(" .!")
        if len(t) > 24:
            return None
        m = _NUMBER_REPLY.match(t)
        if not m:
            return None
        tok = m.group(1)
        k = int(tok) if tok.isdigit() else _ORDINALS.get(tok)
        if k == -1:
            k = n
        return k if k is not None and 1 <= k <= n else None

    def pick(self, spec: PromptSpec, opts: tuple[Option, ...], norm: str) -> tuple[str | None, tuple[str, ...], str]:
        """(option id, maybe, via)."""
        if not opts or not norm:
            return None, (), "none"
        # A choice id typed or passed through as text: "test-connection:fails", "idp:okta", "fails".
        for o in opts:
            if (spec.id and norm == f"{spec.id}:{o.id}") or norm == f"{spec.kind}:{o.id}":
                return o.id, (), "choice"
            if norm == o.id:
                return o.id, (), "text"
        k = self.number(norm, len(opts))
        if k is not None:
            return opts[k - 1].id, (), "number"
        scored: list[OptionScore] = []
        for o in opts:
            label = normalize(o.label)
            score, via = 0.0, "text"
            if label and (norm == label or fuzz.ratio(label, norm, score_cutoff=88)):
                score, via = LABEL, "label"
            elif label and len(label) >= 6 and label in norm and len(norm) <= len(label) + 12:
                score, via = LABEL - 5, "label"
            if o.says:
                score = max(score, self._says(spec, o).best(norm))
            if o.kind in self.kind_words:
                score = max(score, self.kind_words[o.kind].starts(norm))
            if score:
                scored.append(OptionScore(o.id, score, via))
        if not scored:
            # A near miss on a label ("it shows an eror") is offered back, not taken.
            near = [(fuzz.token_set_ratio(normalize(o.label), norm), o.id) for o in opts if o.label]
            near = [x for x in near if x[0] >= 75]
            if near and len(norm) >= 4:
                near.sort(reverse=True)
                return None, tuple(i for _, i in near[:2]), "none"
            return None, (), "none"
        scored.sort(key=lambda s: -s.score)
        if len(scored) > 1 and scored[0].score - scored[1].score < AMBIGUITY_MARGIN:
            # Every option the reply fits as well is offered back ("a red !" fits four errors on Okta's
            # Assignments tab), up to MAYBE_MAX.
            tied = [x.id for x in scored if scored[0].score - x.score < AMBIGUITY_MARGIN]
            return None, tuple(tied[:MAYBE_MAX]), "none"
        return scored[0].id, (), scored[0].via

    # ---- per prompt kind ---------------------------------------------------------------------------

    def read(
        self,
        spec: PromptSpec,
        norm: str,
        lines_plain: str,
        ent: Entities,
        act: str,
        symptom_guess: str | None,
    ) -> Reply | None:
        """The reply to `spec`, or None when the message is no reply to it (a question, a complaint...)."""
        if act in ("question", "complaint", "human", "restart", "aside"):
            return None
        opts = self.options(spec)
        if spec.kind == "field":
            return self._field(spec, norm, lines_plain, ent, act)
        if spec.kind in ("fixed",):
            if act == "fixed":
                return Reply(option="yes", via="text")
            if act == "still-broken":
                return Reply(option="no", via="text")
        option, maybe, via = self.pick(spec, opts, norm)
        if spec.kind == "idp" and option is None and ent.idp and any(o.id == ent.idp for o in opts):
            option, maybe, via = ent.idp, (), "text"
        if spec.kind == "idp":
            value = ent.idp_named if (option and ent.idp == option) else None
            if option is None and not maybe and norm.strip(" .!") in ("other", "custom", "another", "something else", "another one", "none of these", "none of those"):
                option, via = ("other" if any(o.id == "other" for o in opts) else None), "text"
            if option is None and not maybe:
                return None
            return Reply(option=option, value=value, maybe=maybe, via=via)  # type: ignore[arg-type]
        if spec.kind == "clarify" and option is None and not maybe and symptom_guess and any(o.id == symptom_guess for o in opts):
            option, via = symptom_guess, "text"
        if spec.kind == "check" and option is None and ent.attribute:
            wanted = attribute_option(ent.attribute, opts)
            if wanted:
                option, maybe, via = wanted, (), "text"
        if option is None and not maybe:
            return None
        return Reply(option=option, maybe=maybe, via=via)  # type: ignore[arg-type]

    def _field(self, spec: PromptSpec, norm: str, lines_plain: str, ent: Entities, act: str) -> Reply | None:
        fid = spec.id
        if act == "skip":
            return Reply(option="skip", via="text")
        if fid == "idp":
            if ent.idp:
                return Reply(option=ent.idp, value=ent.idp_named, via="text")
            return None
        if fid == "upns":
            emails = ent.upns
            return Reply(value=tuple(emails), via="text") if emails else None
        if fid == "groups":
            # A list is not a sentence: each item must look like a name.
            groups = group_list(lines_plain)
            if groups and "?" not in norm and all(looks_like_value(g.lower()) for g in groups):
                return Reply(value=tuple(groups), via="text")
            return None
        if not looks_like_value(norm):
            return None
        if fid == "account":
            v = normalise_account(lines_plain.replace("\n", " "))
            return Reply(value=v, via="text") if v else None
        return Reply(value=" ".join(lines_plain.split())[:120], via="text") if lines_plain.strip() else None


def attribute_option(attribute: str, opts: tuple[Option, ...]) -> str | None:
    """The option an attribute named answers: a per-attribute option ("department" -> "other"), or the
    pack's "one of the tracked five" / "another attribute" pair."""
    ids = {o.id for o in opts}
    per_attr = lx.ATTRIBUTE_OPTION.get(attribute, "other")
    if per_attr in ids and ids & set(lx.ATTRIBUTE_OPTION.values()):
        return per_attr
    if {"tracked", "other-attribute"} <= ids:
        return "tracked" if attribute in lx.ATTRIBUTE_OPTION else "other-attribute"
    return None


_SENTENCE_VERBS = re.compile(
    r"\b(?:need|needs|do|does|did|should|would|could|can|will|want|think|know|have to|has to|is it|are you|am i|tried|try|check|checked|see|saw|looks?|means?|said|says)\b"
)


def looks_like_value(norm: str) -> bool:
    """A field value, not a question or a sentence: "Contoso 12345" yes; "wait, do I need to be super admin
    for this?" no."""
    t = norm.strip()
    if not t or "?" in t or lx.QUESTION_START.match(t):
        return False
    words = t.split()
    if len(words) > 12:
        return False
    if len(words) > 4 and _SENTENCE_VERBS.search(t):
        return False
    return True
