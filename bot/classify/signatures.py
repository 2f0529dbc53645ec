"""The pack's error signatures: compiled once, then found in a message — `exact` ones verbatim
(case-insensitive), `fuzzy` ones piece by piece with rapidfuzz's partial_ratio_alignment over a long
enough stretch of the signature."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz

from bot.classify.analyser import _Analyzer
from bot.classify.results import SignatureHit
from knowledge.schema import Bundle


@dataclass(frozen=True)
class _Signature:
    cause: str
    text: str
    source: str
    exact: bool
    needle: str  # lower-cased, whitespace-squashed
    keys: frozenset[str]  # distinctive words that must be present before fuzzy matching is tried
    chunks: tuple[str, ...]  # the needle in pieces of a few words, each looked for on its own


def _chunks(needle: str, size: int = 24) -> tuple[str, ...]:
    """Cut a long signature at word boundaries into pieces of about `size` characters, so a retyped or
    truncated paste still matches piece by piece even when the admin's own words surround it."""
    words = needle.split(" ")
    out: list[str] = []
    cur: list[str] = []
    for w in words:
        cur.append(w)
        if len(" ".join(cur)) >= size:
            out.append(" ".join(cur))
            cur = []
    if cur:
        if out and len(" ".join(cur)) < size // 2:
            out[-1] = out[-1] + " " + " ".join(cur)
        else:
            out.append(" ".join(cur))
    return tuple(out)


_SQUASH = re.compile(r"\s+")
_SPACE_PUNCT = re.compile(r"\s*([=:])\s*")


def _squash(s: str) -> str:
    return _SPACE_PUNCT.sub(r" \1 ", _SQUASH.sub(" ", s.lower())).strip()


def compile_signatures(bundle: Bundle) -> list[_Signature]:
    sigs: list[_Signature] = []
    stopwords = bundle.classifier.stopwords
    for cause in bundle.pack.causes:
        for sg in cause.signatures:
            needle = _squash(sg.text)
            words = [w for w in _Analyzer.raw_tokens(sg.text) if len(w) >= 5 and w not in stopwords]
            sigs.append(
                _Signature(
                    cause.id, sg.text, sg.source, sg.match == "exact", needle, frozenset(words[:12]), _chunks(needle)
                )
            )
    return sigs


def fuzzy_score(needle: str, chunks: Iterable[str], hay: str, cutoff: float, min_chars: float, min_share: float) -> float | None:
    """How nearly `needle` (cut into `chunks`, see `_chunks`) stands in `hay`: 1.0 verbatim, else piece by
    piece; None when too little of it is there. Only the span of each piece that aligned counts, so a short
    message inside a long piece covers little ("invalid credentials" is not the whole Entra error)."""
    if needle in hay:
        return 1.0
    covered, total = 0, 0.0
    for chunk in chunks:
        al = fuzz.partial_ratio_alignment(chunk, hay, score_cutoff=cutoff)
        if al is None:
            continue
        span = al.src_end - al.src_start
        covered += span
        total += al.score * span
    if covered < max(min(min_chars, len(needle)), min_share * len(needle)):
        return None
    return (total / covered / 100.0) * min(1.0, covered / len(needle) + 0.3)


def best_signature(signatures: Iterable[_Signature], hay: str, words: set[str], t: dict[str, float]) -> SignatureHit | None:
    """The best signature in `hay` (the message through `_squash`), given the message's `words`; `t` holds
    the classifier's thresholds."""
    best: SignatureHit | None = None
    for sg in signatures:
        if sg.exact:
            if sg.needle in hay:
                hit = SignatureHit(sg.cause, sg.text, sg.source, 1.0)
                if best is None or len(sg.needle) > len(best.text):
                    best = hit
            continue
        if sg.keys and len(sg.keys & words) < min(2, len(sg.keys)):
            continue
        score = fuzzy_score(sg.needle, sg.chunks, hay, t["fuzzy-signature"], t["fuzzy-min-chars"], t["fuzzy-min-share"])
        if score is None:
            continue
        hit = SignatureHit(sg.cause, sg.text, sg.source, round(score, 3))
        if best is None or hit.score > best.score:
            best = hit
    return best
