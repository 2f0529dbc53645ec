"""Which check to ask next: the one after which the fewest questions are expected, not merely the one most
likely to settle the cause at once.

Asking by likelihood alone (the check whose answers confirm the most weight) walks one yes/no check per
cause when a multi-way look would tell several apart: after "assigned, no error" in Okta it asked nesting,
then group rules, then Dashboard > Tasks, although Tasks names two causes and rules both out when empty.
Here every candidate is scored by the questions expected after it: for each standing cause (weighted by
its current likelihood), the answer an admin who has that cause gives — the pack's own semantics: the
answer that confirms it, else one that narrows the field without ruling it out, else "not sure" — and
then the questions the likelihood rule would still need from there. That is one step of look-ahead with
the likelihood rule as the rollout, so it never expects more questions than the rule alone. Reads the
pack only; the picks of one process are cached per state (flows have few reachable states).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from knowledge.schema import Answer, Check

Weights = dict[str, float]

# About 650 bytes an entry; all four bench case sets (601 conversations) reach 556 states.
CACHE_LIMIT = 4096


def admin_answer(check: Check, cause: str) -> Answer:
    """The answer an admin whose problem is `cause` gives to `check`, by the pack's semantics. The engine
    plans with it, and the benchmark's simulated admin (bench/oracle.py) answers with it."""
    for a in check.answers:
        if a.confirms == cause:
            return a

    def harmless(a: Answer) -> bool:
        return cause not in a.rules_out and a.confirms is None and a.boost.get(cause, 1.0) >= 1.0

    informative = [a for a in check.answers if harmless(a) and (a.rules_out or a.boost)]
    if informative:
        return max(informative, key=lambda a: (a.boost.get(cause, 1.0), len(a.rules_out)))
    unsure = [a for a in check.answers if a.kind == "unsure"]
    if unsure:
        return unsure[0]
    return min(check.answers, key=lambda a: a.boost.get(cause, 1.0) if a.confirms is None else 0)


def apply(weights: Weights, answer: Answer) -> tuple[Weights, str | None]:
    """The weights after `answer`, and the cause it confirms (when that cause still stands)."""
    w = dict(weights)
    for c in answer.rules_out:
        if c in w:
            w[c] = 0.0
    for c, factor in answer.boost.items():
        if c in w:
            w[c] *= factor
    confirmed = answer.confirms if answer.confirms and w.get(answer.confirms, 0.0) > 0 else None
    return w, confirmed


def utility(check: Check, weights: Weights, total: float) -> float:
    """The likelihood rule: the weight the check's answers can confirm (a token amount when it only
    narrows the field while that can still change the order of the causes left; 0 when it cannot)."""
    confirmable = {a.confirms for a in check.answers if a.confirms}
    u = sum(weights.get(c, 0.0) for c in confirmable) / total
    if u <= 0:
        moves = any(weights.get(c, 0) > 0 for a in check.answers for c in (*a.boost, *a.rules_out))
        u = 0.01 if moves else 0.0
    return u


class Planner:
    def __init__(self, ask_first: Callable[[str], Sequence[str]]) -> None:
        self._ask_first = ask_first
        self._cache: dict[tuple, str | None] = {}

    def pick(self, flow: str, checks: Sequence[Check], weights: Weights, asked: frozenset[str]) -> Check | None:
        """Of `checks` (the flow's, for this IdP, in pack order), the next one to ask; None when no
        check can still change anything."""
        return self._cached("pick", self._pick, flow, checks, weights, asked)

    def greedy(self, flow: str, checks: Sequence[Check], weights: Weights, asked: frozenset[str]) -> Check | None:
        """The likelihood rule alone (also the rollout): the flow's ask-first check while it can settle a
        standing cause, else the check whose answers can confirm the most weight."""
        return self._cached("greedy", self._greedy, flow, checks, weights, asked)

    def _cached(self, kind: str, fn, flow: str, checks: Sequence[Check], weights: Weights, asked: frozenset[str]) -> Check | None:
        # Rollouts of different causes walk through the same states, and conversations of one flow
        # reach the same few states again: every choice is worked out once per process.
        key = (kind, flow, tuple(c.id for c in checks), tuple(sorted((c, round(w, 6)) for c, w in weights.items() if w > 0)), asked)
        if key in self._cache:
            cid = self._cache[key]
            return next((c for c in checks if c.id == cid), None)
        choice = fn(flow, checks, weights, asked)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = choice.id if choice else None
        return choice

    def _pick(self, flow: str, checks: Sequence[Check], weights: Weights, asked: frozenset[str]) -> Check | None:
        total = sum(weights.values())
        standing = {c: w / total for c, w in weights.items() if w > 0} if total > 0 else {}
        candidates = [(order, c) for order, c in enumerate(checks) if c.id not in asked and utility(c, weights, total or 1.0) > 0]
        if not candidates:
            return None
        forced = self._forced(flow, checks, weights, asked)
        if forced is not None or len(candidates) == 1 or len(standing) <= 1:
            return forced or self.greedy(flow, checks, weights, asked)
        best: tuple[float, float, int, Check] | None = None
        for order, check in candidates:
            expected = 0.0
            for cause, p in standing.items():
                w, confirmed = apply(weights, admin_answer(check, cause))
                expected += p * (1.0 + (0.0 if confirmed else self._rollout(flow, checks, w, asked | {check.id}, cause)))
            key = (-expected, utility(check, weights, total), -order)
            if best is None or key > best[:3]:
                best = (*key, check)
        assert best is not None
        return best[3]

    def _forced(self, flow: str, checks: Sequence[Check], weights: Weights, asked: frozenset[str]) -> Check | None:
        """The flow's ask-first check, while it can still settle a standing cause."""
        first = set(self._ask_first(flow))
        for c in checks:
            if c.id in first and c.id not in asked and any(a.confirms and weights.get(a.confirms, 0) > 0 for a in c.answers):
                return c
        return None

    def _greedy(self, flow: str, checks: Sequence[Check], weights: Weights, asked: frozenset[str]) -> Check | None:
        forced = self._forced(flow, checks, weights, asked)
        if forced is not None:
            return forced
        total = sum(weights.values()) or 1.0
        best: tuple[float, int, Check] | None = None
        for order, c in enumerate(checks):
            if c.id in asked:
                continue
            u = utility(c, weights, total)
            if u > 0 and (best is None or (u, -order) > best[:2]):
                best = (u, -order, c)
        return best[2] if best else None

    def _rollout(self, flow: str, checks: Sequence[Check], weights: Weights, asked: frozenset[str], cause: str) -> int:
        """Questions the likelihood rule asks from here before it confirms something (or runs out)."""
        n = 0
        while (check := self.greedy(flow, checks, weights, asked)) is not None:
            n += 1
            weights, confirmed = apply(weights, admin_answer(check, cause))
            if confirmed:
                break
            asked = asked | {check.id}
        return n
