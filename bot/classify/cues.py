"""Cue phrases: weighted phrases matched in order over a message's stems, all of them in one pass."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class _Cue:
    stems: tuple[str, ...]
    weight: float
    # What it counts for: "domain", "negative", a symptom id, "cause:<id>" (pack report cue: pins the cause
    # and steers the symptom), "pin:<id>" (classifier cause cue: pins the cause once the symptom is known),
    # "rules-out:<id>".
    label: str
    text: str
    gap: int
    negatable: bool = True
    rest: frozenset[str] = field(init=False, repr=False, compare=False)  # the words after the first

    def __post_init__(self) -> None:
        object.__setattr__(self, "rest", frozenset(self.stems[1:]))


class _CueSet:
    """Phrases matched in order over stems, allowing `gap` extra tokens in between (in total). A word
    skipped inside the phrase must not be a negator unless the phrase has one itself: "user create" does
    not match "user couldn't be created"."""

    def __init__(self, cues: list[_Cue], negators: frozenset[str] = frozenset()):
        self.negators = negators
        # Two phrases that fold to the same words count once, with the larger weight.
        best: dict[tuple[tuple[str, ...], str], _Cue] = {}
        for c in cues:
            if not c.stems:
                continue
            key = (c.stems, c.label)
            if key not in best or c.weight > best[key].weight:
                best[key] = c
        by_first: dict[str, list[_Cue]] = defaultdict(list)
        for c in best.values():
            by_first[c.stems[0]].append(c)
        self.by_first = dict(by_first)
        self.plain = {id(c): not (set(c.stems) & negators) for c in best.values()}

    def find(self, stems: list[str], positions: dict[str, list[int]]) -> list[tuple[_Cue, int, int]]:
        out: list[tuple[_Cue, int, int]] = []
        n = len(stems)
        by_first = self.by_first
        for first, starts in positions.items():
            cues = by_first.get(first)
            if not cues:
                continue
            for cue in cues:
                k = len(cue.stems)
                if k == 1:
                    out.append((cue, starts[0], starts[0] + 1))
                    continue
                if not cue.rest <= positions.keys():
                    continue
                limit = k + cue.gap
                guard = self.plain[id(cue)] and self.negators
                for p in starts:
                    j, q = 1, p + 1
                    end = min(n, p + limit)
                    while q < end and j < k:
                        if stems[q] == cue.stems[j]:
                            j += 1
                        elif guard and stems[q] in guard:
                            break
                        q += 1
                    if j == k:
                        out.append((cue, p, q))
                        break
        return out
