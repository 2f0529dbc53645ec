"""Console options named in a message with their state: "Create Users is unticked", "we never enabled
Deactivate Users", "Update User Attributes is not enabled — should it be?".

The option names are exact (the consoles print them: the pack lists them per check as `setting`), so they
are matched as text, not learned; the state is read from the words around the name within its clause,
off before on ("not enabled" holds "enabled"). A clause that asks ("is Create Users enabled?") states
nothing. Each hit answers the check that asks about the option, whichever flow the conversation is in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.text import normalize
from knowledge.schema import Bundle, Check

# Where a clause ends: a sentence mark, a line break, or "but" (two options in one sentence:
# "Create Users is ticked but Deactivate Users is not").
# A comma too: "okta doesn't create users, they stay disabled" says nothing of the Create Users option.
_CLAUSE = re.compile(r"[.,;!?\n]|\s[-–—]+\s|\s(?:but|however|although|though|and)\s")
# How far before an option's name its state may stand ("never enabled Create Users"), and after it
# ("Create Users under Provisioning > To App is unticked"): close, or it is about something else.
BEFORE = 30
AFTER = 40


@dataclass(frozen=True)
class SettingHit:
    check: str
    answer: str
    said: str  # the clause it was read from


def _phrase_re(phrases: list[str]) -> re.Pattern[str] | None:
    words = sorted({normalize(p) for p in phrases if normalize(p)}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(w) for w in words) + r")(?![a-z0-9])")


class SettingReader:
    def __init__(self, bundle: Bundle) -> None:
        lex = bundle.lexicon
        self._off = _phrase_re(lex.setting_off)
        self._on = _phrase_re(lex.setting_on)
        self._labels: list[tuple[re.Pattern[str], str, Check]] = []
        for check in bundle.pack.checks:
            if check.setting is None:
                continue
            for label in check.setting.labels:
                n = normalize(label)
                self._labels.append((re.compile(r"(?<![a-z0-9])" + re.escape(n) + r"(?![a-z0-9])"), n, check))

    def read(self, norm: str) -> list[SettingHit]:
        """The options `norm` (a normalised message) says are off or on, at most one hit per check."""
        if self._off is None or not self._labels:
            return []
        hits: dict[str, SettingHit] = {}
        for rx, label, check in self._labels:
            if check.id in hits or label not in norm:
                continue
            for m in rx.finditer(norm):
                left, right = self._clause(norm, m.start(), m.end())
                state = self._state(norm, m.start(), m.end(), left, right)
                if state is None:
                    continue
                assert check.setting is not None
                answer = check.setting.off if state == "off" else check.setting.on
                if answer is not None:
                    hits[check.id] = SettingHit(check.id, answer, norm[left:right].strip())
                break
        return list(hits.values())

    @staticmethod
    def _clause(norm: str, start: int, end: int) -> tuple[int, int]:
        left = max((b.end() for b in _CLAUSE.finditer(norm, 0, start)), default=0)
        nxt = _CLAUSE.search(norm, end)
        return left, (nxt.start() if nxt else len(norm))

    def _state(self, norm: str, start: int, end: int, left: int, right: int) -> str | None:
        """"off", "on" or None for the option named at norm[start:end], in the clause norm[left:right]."""
        if right < len(norm) and norm[right] == "?":
            return None  # asked, not stated
        # Another option named later in the clause owns the words after it.
        nxt = min((m.start() for rx, _, _ in self._labels for m in [rx.search(norm, end, right)] if m), default=right)
        after = norm[end : min(nxt, end + AFTER)]
        before = norm[max(left, start - BEFORE) : start]
        for words in (after, before):
            if self._off is not None and self._off.search(words):
                return "off"
            if self._on is not None and self._on.search(words):
                return "on"
        return None
