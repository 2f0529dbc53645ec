"""Understanding free-text replies: which answer of the pending check, which command, which IdP.

Button clicks carry an id and need none of this; people typing "nope, looks fine" or "it says 401" do.
Scores are ordered so that specific evidence beats generic polarity: an answer's own label, then its
`says`/`report_cues` phrases (longest wins, so "no sdp licence events" beats "sdp licence"), then the
lexicon's yes/no/unsure words, which only count at the start of the reply (mid-sentence "no" is too often
part of something else).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.text import normalize
from knowledge.schema import Answer, Bundle, Check

LABEL = 100
PHRASE = 50
PHRASE_FUZZY = 40
LEXICON_START = 30
LEXICON_ANYWHERE = 25
AMBIGUITY_MARGIN = 3
# Reports are long and full of near-misses ("scoping filter on X" vs "no scoping filter"): only cues this
# long may match approximately, and only very closely.
REPORT_FUZZY_MIN = 20
REPORT_FUZZY_CUTOFF = 95


def _norm_list(items: list[str]) -> list[str]:
    out = []
    for item in items:
        n = normalize(item)
        if n:
            out.append(n)
    return sorted(set(out), key=len, reverse=True)


def _word_re(phrase: str) -> re.Pattern[str]:
    # Word boundaries on the alphanumeric ends only, so "401" and "e-mail" match inside sentences.
    left = r"(?<![a-z0-9])" if phrase[:1].isalnum() else ""
    right = r"(?![a-z0-9])" if phrase[-1:].isalnum() else ""
    return re.compile(left + re.escape(phrase) + right)


@dataclass(frozen=True)
class Match:
    answer: Answer
    score: float


class _Phrases:
    """A set of normalised phrases matched whole-word, longest first, with a fuzzy fallback."""

    def __init__(self, phrases: list[str]):
        self.phrases = _norm_list(phrases)
        self.patterns = [(p, _word_re(p)) for p in self.phrases]

    def best(self, text: str, fuzzy_min_len: int = 8, cutoff: float = 90) -> float:
        # Phrases are longest first, so the first hit scores highest. A literal phrase can only match
        # where it is a substring: the `in` test skips most regex searches (this runs for every answer
        # of every check on each reply).
        for phrase, rx in self.patterns:
            if phrase in text and rx.search(text):
                return PHRASE + len(phrase)
        for phrase in self.phrases:
            if len(phrase) >= fuzzy_min_len and len(text) >= len(phrase) - 2:
                if fuzz.partial_ratio(phrase, text, score_cutoff=cutoff):
                    return PHRASE_FUZZY + len(phrase)
        return 0.0

    def starts(self, text: str) -> float:
        for phrase, rx in self.patterns:
            m = rx.search(text) if phrase in text else None
            if m and m.start() == 0:
                return LEXICON_START + len(phrase)
            if m and " " in phrase:
                return LEXICON_ANYWHERE + len(phrase)
        return 0.0


class AnswerMatcher:
    def __init__(self, bundle: Bundle):
        lex = bundle.lexicon
        self.kind_words = {"yes": _Phrases(lex.yes), "no": _Phrases(lex.no), "unsure": _Phrases(lex.unsure)}
        self.skip = _Phrases(lex.skip)
        self.commands = {name: _norm_list(words) for name, words in lex.commands.items()}
        self._answers: dict[tuple[str, str], _Phrases] = {}
        self._labels: dict[tuple[str, str], str] = {}
        for check in bundle.pack.checks:
            for ans in check.answers:
                self._answers[(check.id, ans.id)] = _Phrases(ans.says + ans.report_cues)
                self._labels[(check.id, ans.id)] = normalize(ans.label)
        # Every check's report cues at once: the reader asks about each open check in turn, with one text.
        # Each distinct phrase is searched once, and the long ones are compared in one rapidfuzz call.
        self._by_cue: dict[str, list[tuple[str, str]]] = {}
        for check in bundle.pack.checks:
            for ans in check.answers:
                for phrase in _norm_list(ans.report_cues):
                    self._by_cue.setdefault(phrase, []).append((check.id, ans.id))
        self._cue_patterns = [(phrase, _word_re(phrase), keys) for phrase, keys in self._by_cue.items()]
        self._long_cues = [phrase for phrase in self._by_cue if len(phrase) >= REPORT_FUZZY_MIN]
        self._last_report: tuple[str, dict[tuple[str, str], float]] = ("", {})

    # -- answers to a check --------------------------------------------------------------------

    def match(self, check: Check, text: str) -> Answer | None:
        """The answer the reply means, or None when unclear or torn between two answers."""
        t = normalize(text)
        if not t:
            return None
        scored: list[Match] = []
        for ans in check.answers:
            key = (check.id, ans.id)
            score = 0.0
            label = self._labels[key]
            if label and (t == label or fuzz.ratio(label, t, score_cutoff=88)):
                score = LABEL
            score = max(score, self._answers[key].best(t))
            if ans.kind in self.kind_words:
                score = max(score, self.kind_words[ans.kind].starts(t))
            if score:
                scored.append(Match(ans, score))
        if not scored:
            return None
        scored.sort(key=lambda m: m.score, reverse=True)
        if len(scored) > 1 and scored[0].score - scored[1].score < AMBIGUITY_MARGIN:
            return None
        return scored[0].answer

    def from_report(self, check: Check, text: str) -> Answer | None:
        """An answer the opening report already gives (only `report_cues`, never bare yes/no)."""
        return self.from_report_norm(check, normalize(text))

    def from_report_norm(self, check: Check, t: str) -> Answer | None:
        """`from_report` on text already normalised (`bot.text.normalize`)."""
        scores = self._report_scores(t)
        best: tuple[float, Answer] | None = None
        tie = False
        for ans in check.answers:
            score = scores.get((check.id, ans.id), 0.0)
            if not score:
                continue
            if best is None or score > best[0]:
                tie = best is not None and score - best[0] < AMBIGUITY_MARGIN
                best = (score, ans)
            elif best[0] - score < AMBIGUITY_MARGIN:
                tie = True
        return None if best is None or tie else best[1]

    def _report_scores(self, t: str) -> dict[tuple[str, str], float]:
        """Every (check, answer)'s score for report text `t`, as `_Phrases.best(t, REPORT_FUZZY_MIN,
        REPORT_FUZZY_CUTOFF)` on its cues gives it: its longest cue found whole-word, else its longest cue
        found approximately. The last text's scores are kept."""
        if t and self._last_report[0] == t:
            return self._last_report[1]
        exact: dict[tuple[str, str], float] = {}
        for phrase, rx, keys in self._cue_patterns:
            if phrase in t and rx.search(t):
                for key in keys:
                    exact[key] = max(exact.get(key, 0.0), PHRASE + len(phrase))
        fuzzy: dict[tuple[str, str], float] = {}
        candidates = [p for p in self._long_cues if len(t) >= len(p) - 2 and any(k not in exact for k in self._by_cue[p])]
        if candidates:
            for phrase, _score, _i in process.extract(t, candidates, scorer=fuzz.partial_ratio, score_cutoff=REPORT_FUZZY_CUTOFF, limit=None):
                for key in self._by_cue[phrase]:
                    if key not in exact:
                        fuzzy[key] = max(fuzzy.get(key, 0.0), PHRASE_FUZZY + len(phrase))
        scores = fuzzy | exact
        self._last_report = (t, scores)
        return scores

    # -- generic replies -----------------------------------------------------------------------

    def polarity(self, text: str) -> str | None:
        """'yes' / 'no' / 'unsure' for a yes-no question such as "did that fix it?"."""
        t = normalize(text)
        scores = {kind: words.starts(t) for kind, words in self.kind_words.items()}
        kind, score = max(scores.items(), key=lambda kv: kv[1])
        if not score:
            return None
        others = sorted(scores.values(), reverse=True)
        if others[1] and others[0] - others[1] < AMBIGUITY_MARGIN:
            return None
        return kind

    def command(self, text: str) -> str | None:
        """A conversation command, recognised only in short replies that are (nearly) just the command —
        a report mentioning "contact support" must not be taken as "talk to a human"."""
        t = normalize(text).strip(" .!?")
        if not t or len(t.split()) > 5:
            return None
        for name, phrases in self.commands.items():
            for phrase in phrases:
                if t == phrase or t in (f"please {phrase}", f"{phrase} please") or fuzz.ratio(t, phrase, score_cutoff=90):
                    return name
        return None

    def is_skip(self, text: str) -> bool:
        t = normalize(text).strip(" .!?")
        return bool(t) and any(t == p for p in self.skip.phrases)
