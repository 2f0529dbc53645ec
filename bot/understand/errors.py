"""Pasted errors, matched against the pack's error catalogue (`errors:` in knowledge/scim.yaml): `exact`
strings verbatim (case-insensitive, as a token of their own: "409" is not in "14090"), `fuzzy` ones — long
sentences admins retype or cut — piece by piece with rapidfuzz. Packs without a catalogue fall back to the
causes' signatures."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.classify import _chunks, _squash, fuzzy_score
from knowledge.schema import Bundle

_WORD = re.compile(r"[a-z0-9]+")
FUZZY_CUTOFF = 90
FUZZY_MIN_CHARS = 28
FUZZY_MIN_SHARE = 0.4


@dataclass(frozen=True)
class ErrorHit:
    id: str | None  # the catalogue entry (None for a pack without one)
    cause: str | None
    topic: str | None
    text: str  # the catalogue string that matched
    source: str
    exact: bool
    score: float
    pins: bool = True


@dataclass(frozen=True)
class _Entry:
    id: str | None
    cause: str | None
    topic: str | None
    text: str
    source: str
    exact: bool
    needle: str
    keys: frozenset[str]
    chunks: tuple[str, ...]
    rx: re.Pattern[str] | None
    pins: bool


class ErrorCatalogue:
    def __init__(self, bundle: Bundle):
        entries: list[_Entry] = []
        errors = getattr(bundle.pack, "errors", None)
        if errors:
            for e in errors:
                for m in e.match:
                    entries.append(self._entry(e.id, e.cause, e.topic, m, e.source, e.kind == "exact", getattr(e, "pins", True)))
        else:
            for c in bundle.pack.causes:
                for sg in c.signatures:
                    entries.append(self._entry(None, c.id, None, sg.text, sg.source, sg.match == "exact", True))
        self.entries = entries

    @staticmethod
    def _entry(eid, cause, topic, text, source, exact, pins) -> _Entry:
        needle = _squash(text)
        rx = re.compile(r"(?<![a-z0-9])" + re.escape(needle) + r"(?![a-z0-9])") if exact else None
        words = [w for w in _WORD.findall(text.lower()) if len(w) >= 5]
        return _Entry(eid, cause, topic, text, str(source), exact, needle, frozenset(words[:12]), tuple(_chunks(needle)) if not exact else (), rx, pins)

    def find(self, plain: str, limit: int = 3) -> list[ErrorHit]:
        """Catalogue strings in the message, the surest first: exact ones (longest first), then fuzzy ones
        by how much of the string is there, nearly verbatim. One hit per entry."""
        if not plain:
            return []
        hay = _squash(plain)
        words = set(_WORD.findall(hay))
        hits: dict[tuple, ErrorHit] = {}
        for e in self.entries:
            if e.exact:
                if e.needle in hay and e.rx is not None and e.rx.search(hay):
                    score = 1.0 + len(e.needle) / 1000.0
                else:
                    continue
            else:
                if e.keys and len(e.keys & words) < min(2, len(e.keys)):
                    continue
                fuzzy = fuzzy_score(e.needle, e.chunks, hay, FUZZY_CUTOFF, FUZZY_MIN_CHARS, FUZZY_MIN_SHARE)
                if fuzzy is None:
                    continue
                score = fuzzy
            key = (e.id, e.cause, e.topic) if e.id else (e.text,)
            hit = ErrorHit(e.id, e.cause, e.topic, e.text, e.source, e.exact, round(score, 4), e.pins)
            if key not in hits or hit.score > hits[key].score:
                hits[key] = hit
        return sorted(hits.values(), key=lambda h: -h.score)[:limit]
