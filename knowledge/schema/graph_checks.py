"""Consistency rules over the whole manifest that pydantic cannot express per model, and the companion
material's references to it. Each problem carries the path inside its file to blame.

Graph rules, so the engine may assume them: ids are unique within their kind (and flows share one
namespace); every reference resolves; a check only confirms, rules out or boosts causes its flow lists; a
check asked of several IdPs never confirms a cause only some of them can have; every check is used; every
cause is listed by a flow and reachable (confirmed by a check of that flow, by an error of the catalogue,
or concluded directly); no catalogue string is matched twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from knowledge.schema.base import Problem, squash
from knowledge.schema.material import CLASSIFIER_THRESHOLDS, ClassifierMaterial
from knowledge.schema.models import Check, Flow, Topic
from knowledge.schema.pack import Pack

Loc = tuple[str | int, ...]


def graph_problems(pack: Pack) -> list[Problem]:
    """Every graph rule broken by `pack`, in the order of the steps below."""
    g = _Graph(pack)
    g.duplicate_ids()
    g.generic_idp()
    for ci, check in enumerate(pack.checks):
        g.check_refs(ci, check)
    for ki, cause in enumerate(pack.causes):
        g.need_idps(("causes", ki, "idps"), cause.idps)
    g.error_refs()
    g.duplicate_matches()
    for kind, si, flow in _flows(pack):
        g.flow(kind, si, flow)
    g.unused_and_unreachable()
    return g.problems


def _flows(pack: Pack) -> Iterable[tuple[str, int, Flow]]:
    yield from (("symptoms", i, s) for i, s in enumerate(pack.symptoms))
    yield from (("topics", i, t) for i, t in enumerate(pack.topics))


class _Graph:
    """The pack's ids by kind, the problems found so far, and what the flows use and reach."""

    def __init__(self, pack: Pack):
        self.pack = pack
        self.idps = {i.id for i in pack.idps}
        self.checks = {c.id: c for c in pack.checks}
        self.causes = {c.id: c for c in pack.causes}
        self.topics = {t.id for t in pack.topics}
        self.problems: list[Problem] = []
        self.used_checks: set[str] = set()
        self.listed: set[str] = set()  # causes some flow lists
        self.reachable: set[str] = set()  # causes something can conclude

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, message))

    def need_idps(self, loc: Loc, ids: list[str] | None) -> None:
        for n, i in enumerate(ids or []):
            if i not in self.idps:
                self.problem(loc + (n,), f"unknown IdP '{i}'")

    def need_cause(self, loc: Loc, cid: str | None) -> None:
        if cid is not None and cid not in self.causes:
            self.problem(loc, f"unknown cause '{cid}'")

    def duplicate_ids(self) -> None:
        for kind in ("idps", "symptoms", "topics", "checks", "causes", "errors"):
            seen: dict[str, int] = {}
            for i, item in enumerate(getattr(self.pack, kind)):
                if item.id in seen:
                    self.problem((kind, i, "id"), f"duplicate {kind[:-1]} id '{item.id}' (first at {kind}[{seen[item.id]}])")
                seen.setdefault(item.id, i)
        symptom_ids = {s.id for s in self.pack.symptoms}
        for i, t in enumerate(self.pack.topics):
            if t.id in symptom_ids:
                self.problem(("topics", i, "id"), f"topic id '{t.id}' is also a symptom id (flows share one namespace)")

    def generic_idp(self) -> None:
        if self.pack.generic_idp not in self.idps:
            self.problem(("generic_idp",), f"unknown IdP '{self.pack.generic_idp}'")

    def check_refs(self, ci: int, check: Check) -> None:
        """A check's causes and IdPs resolve, its `tests` is confirmed by an answer, and no answer confirms
        a cause that some IdP the check is asked of cannot have."""
        self.need_cause(("checks", ci, "tests"), check.tests)
        self.need_idps(("checks", ci, "idps"), check.idps)
        for ai, ans in enumerate(check.answers):
            loc: Loc = ("checks", ci, "answers", ai)
            self.need_cause(loc + ("confirms",), ans.confirms)
            for ri, cid in enumerate(ans.rules_out):
                self.need_cause(loc + ("rules_out", ri), cid)
            for cid in ans.boost:
                self.need_cause(loc + ("boost", cid), cid)
            target = self.causes.get(ans.confirms or "")
            if target is not None and target.idps is not None:
                seen_by = set(check.idps) if check.idps is not None else self.idps
                if not seen_by <= set(target.idps):
                    others = ", ".join(sorted(seen_by - set(target.idps)))
                    self.problem(
                        loc + ("confirms",),
                        f"confirms '{target.id}', which only {', '.join(target.idps)} can have, but the check is asked of {others} too",
                    )
        if check.tests and not any(a.confirms == check.tests for a in check.answers):
            self.problem(("checks", ci, "tests"), f"check '{check.id}' tests '{check.tests}' but no answer confirms it")

    def error_refs(self) -> None:
        """The catalogue's IdPs, causes and topics resolve; an error that pins a cause makes it reachable."""
        for ei, err in enumerate(self.pack.errors):
            if err.idp != "any" and err.idp not in self.idps:
                self.problem(("errors", ei, "idp"), f"unknown IdP '{err.idp}'")
            self.need_cause(("errors", ei, "cause"), err.cause)
            for cid in err.boost:
                self.need_cause(("errors", ei, "boost", cid), cid)
            if err.topic is not None and err.topic not in self.topics:
                self.problem(("errors", ei, "topic"), f"unknown topic '{err.topic}'")
            if err.cause and err.pins:
                self.reachable.add(err.cause)

    def duplicate_matches(self) -> None:
        seen: dict[str, int] = {}
        for ei, err in enumerate(self.pack.errors):
            for mi, m in enumerate(err.match):
                key = squash(m).casefold()
                if key in seen and seen[key] != ei:
                    self.problem(("errors", ei, "match", mi), f"'{m}' is already matched by errors[{seen[key]}]")
                seen.setdefault(key, ei)

    def flow(self, kind: str, si: int, flow: Flow) -> None:
        """A flow's references resolve, its checks speak only of its causes, and what it can conclude."""
        if isinstance(flow, Topic):
            self.need_idps((kind, si, "idps"), flow.idps)
        flow_causes = {w.cause for w in flow.causes}
        for wi, w in enumerate(flow.causes):
            self.need_cause((kind, si, "causes", wi, "cause"), w.cause)
            self.need_idps((kind, si, "causes", wi, "idps"), w.idps)
        self.listed |= flow_causes
        if len(flow.causes) == 1 or not flow.checks:
            self.reachable |= flow_causes  # concluded directly, or by weight once its checks are done
        for chi, cid in enumerate(flow.checks):
            check = self.checks.get(cid)
            if check is None:
                self.problem((kind, si, "checks", chi), f"unknown check '{cid}'")
                continue
            self.used_checks.add(cid)
            for stray in sorted(_mentioned(check) - flow_causes):
                if stray in self.causes:
                    self.problem(
                        (kind, si, "checks", chi), f"check '{cid}' refers to cause '{stray}', which '{flow.id}' does not list"
                    )
            self.reachable |= {a.confirms for a in check.answers if a.confirms} & flow_causes

    def unused_and_unreachable(self) -> None:
        for ci, check in enumerate(self.pack.checks):
            if check.id not in self.used_checks:
                self.problem(("checks", ci, "id"), f"check '{check.id}' is not used by any symptom or topic")
        for ki, cause in enumerate(self.pack.causes):
            if cause.id not in self.listed:
                self.problem(("causes", ki, "id"), f"cause '{cause.id}' is not listed by any symptom or topic (unreachable)")
            elif cause.id not in self.reachable:
                self.problem(("causes", ki, "id"), f"cause '{cause.id}' is never confirmed by a check or an error (unreachable)")


def _mentioned(check: Check) -> set[str]:
    """Every cause a check's answers confirm, rule out or boost."""
    out = {a.confirms for a in check.answers if a.confirms}
    out |= {c for a in check.answers for c in a.rules_out}
    out |= {c for a in check.answers for c in a.boost}
    return out


def classifier_problems(material: ClassifierMaterial, pack: Pack) -> list[Problem]:
    """The classifier material's symptoms, topics and causes exist in the pack; its thresholds are known."""
    known = {s.id for s in pack.symptoms}
    causes = {c.id for c in pack.causes}
    problems: list[Problem] = [
        (("symptoms", sid), f"unknown symptom '{sid}'") for sid in material.symptoms if sid not in known
    ]
    topics = {t.id for t in pack.topics}
    problems += [(("topics", tid), f"unknown topic '{tid}'") for tid in material.topics if tid not in topics]
    problems += [(("cause_cues", cid), f"unknown cause '{cid}'") for cid in material.cause_cues if cid not in causes]
    problems += [
        (("thresholds", name), f"unknown threshold '{name}' (known: {', '.join(sorted(CLASSIFIER_THRESHOLDS))})")
        for name in material.thresholds
        if name not in CLASSIFIER_THRESHOLDS
    ]
    return problems
