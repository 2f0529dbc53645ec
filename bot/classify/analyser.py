"""Text analysis shared by the material and the messages: tokens, a tiny stemmer, synonym folding, and
typo folding of unknown words onto the material's typo targets (messages only)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from rapidfuzz.distance import OSA

_APOS = re.compile(r"['\u2019\u2018\u02bc`\u00b4]")
# Words: runs of letters or of digits ("aadsts50076" -> "aadsts", "50076"; "can't" -> "cant" first).
_TOKEN = re.compile(r"[^\W\d_]+|\d+")


def stem(word: str) -> str:
    """A deliberately tiny stemmer, applied alike to material and messages: plural, -ing, -ed, final e."""
    w = word
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss") and not w.endswith("us"):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        nxt: set[str] = set()
        for w in frontier:
            for i in range(len(w)):
                nxt.add(w[:i] + w[i + 1 :])
        out |= nxt
        frontier = nxt
    return out


class _Analyzer:
    """Turns normalised text into folded, stemmed tokens. Material and messages go through the same path,
    except that only messages get typo folding (material defines the vocabulary)."""

    def __init__(
        self,
        synonyms: dict[str, list[str]],
        vocabulary: Iterable[str],
        targets: Iterable[str],
        min_typo_len: int,
        long_word: int,
    ):
        self.min_typo_len = min_typo_len
        self.long_word = long_word
        # Synonym folding on the space-joined raw tokens, longest variant first.
        # Folding runs on stems, so one inflection of a variant covers the others ("any user" = "any users").
        table: dict[str, str] = {}
        for canonical, variants in synonyms.items():
            canon = " ".join(stem(w) for w in self.raw_tokens(canonical))
            for v in variants:
                key = " ".join(stem(w) for w in self.raw_tokens(v))
                if key and key != canon:
                    table[key] = canon
        self.synonyms = table
        if table:
            alts = sorted(table, key=len, reverse=True)
            self._syn_rx: re.Pattern[str] | None = re.compile(
                r"(?<![^ ])(?:" + "|".join(re.escape(a) for a in alts) + r")(?![^ ])"
            )
        else:
            self._syn_rx = None
        # Typo folding: known words are left alone; others may fold onto a target one or two edits away.
        self.vocab = {w for w in vocabulary if w}
        self._index: dict[str, list[str]] = defaultdict(list)
        targets = {w for w in targets if w}
        # Longer words cannot be a typo of any target: never generate their deletions (a 4000-letter
        # "word" would otherwise make millions).
        self.max_typo_len = max((len(w) for w in targets), default=0) + 2
        for w in sorted(targets):
            if len(w) < self.min_typo_len - 1 or w.isdigit():
                continue
            for d in _deletes(w, 2 if len(w) >= self.long_word else 1):
                self._index[d].append(w)
        self._typo_cache: dict[str, str] = {}
        self._stem_cache: dict[str, str] = {}

    @staticmethod
    def raw_tokens(text: str) -> list[str]:
        return _TOKEN.findall(_APOS.sub("", text.lower()))

    def correct(self, token: str) -> str:
        if (
            token in self.vocab
            or len(token) < self.min_typo_len
            or len(token) > self.max_typo_len
            or not token.isalpha()
        ):
            return token
        hit = self._typo_cache.get(token)
        if hit is not None:
            return hit
        depth = 2 if len(token) >= self.long_word else 1
        best: tuple[int, int, int, str] | None = None
        seen: set[str] = set()
        for d in _deletes(token, depth):
            for cand in self._index.get(d, ()):
                if cand in seen:
                    continue
                seen.add(cand)
                dist = OSA.distance(token, cand, score_cutoff=depth)
                if dist > depth:
                    continue
                key = (dist, 0 if cand[0] == token[0] else 1, abs(len(cand) - len(token)), cand)
                if best is None or key < best:
                    best = key
        out = best[3] if best else token
        if len(self._typo_cache) > 50_000:
            self._typo_cache.clear()
        self._typo_cache[token] = out
        return out

    def fold(self, tokens: list[str]) -> list[str]:
        if not tokens:
            return tokens
        joined = " ".join(tokens)
        if self._syn_rx is not None:
            joined = self._syn_rx.sub(lambda m: self.synonyms[m.group(0)], joined)
        return joined.split()

    def stem(self, token: str) -> str:
        s = self._stem_cache.get(token)
        if s is None:
            s = stem(token)
            if len(self._stem_cache) > 50_000:
                self._stem_cache.clear()
            self._stem_cache[token] = s
        return s

    def analyse(self, normalised: str, typo: bool = True) -> list[str]:
        raw = self.raw_tokens(normalised)
        if typo:
            raw = [self.correct(t) for t in raw]
        return self.fold([self.stem(t) for t in raw])

