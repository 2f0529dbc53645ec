"""The shape of a knowledge pack, and the checks that make a pack safe to walk.

A pack is data, never code: a manifest YAML file (the playbook: IdPs, symptoms, checks, causes,
resolutions, escalation) that names two companion files — the classifier's matching material and the
answer lexicon. `knowledge.loader.load_pack()` reads the three files, keeps a line number for every node,
and raises `KnowledgeError` naming file, line and path whenever the data is malformed (pydantic) or
inconsistent (the graph checks below).

Graph rules enforced here, so the engine may assume them:
- ids are unique kebab-case within their kind; every reference resolves;
- every check used by a symptom only confirms or rules out causes that symptom lists;
- every answer of a check leads somewhere: it confirms a cause, rules causes out, shifts their weights,
  or is an explicit "unsure" (the engine moves to the next check);
- every cause is reachable: some symptom lists it and a check of that symptom (or a signature) confirms it;
- IdP-specific variants name known IdPs.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
# A console path as the playbook writes it: "Monitoring > Events". Kept exact; only outer spaces trimmed.
Path = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdP(Strict):
    id: Id
    name: Text
    # Words that identify this IdP in free text ("aad", "azure ad", "entra").
    aliases: list[Text] = Field(default_factory=list)
    # Where the admin works in this IdP, used in questions ("the Entra admin center").
    console: Text


class Step(Strict):
    text: Text
    path: Path | None = None


class Variant(Strict):
    """IdP-specific wording of a check or a resolution; fields left out fall back to the default."""

    ask: Text | None = None
    path: Path | None = None
    look_for: Text | None = None
    steps: list[Step] | None = None
    verify: Text | None = None
    notes: list[Text] | None = None


class Answer(Strict):
    id: Id
    label: Text
    # How this answer reads as a reply to the question exactly as asked ("Does it show an error?" ->
    # the error answer is `yes`), so the generic yes/no/unsure lexicon maps "yep"/"nope" onto it.
    # `other` answers (either/or questions) are matched only by their label and `says`.
    kind: Literal["yes", "no", "unsure", "other"]
    # Free-text phrasings that mean this answer, beyond the lexicon for its kind.
    says: list[Text] = Field(default_factory=list)
    # Phrases that, found in the opening report, already answer the check this way (so it is skipped).
    report_cues: list[Text] = Field(default_factory=list)
    confirms: Id | None = None
    rules_out: list[Id] = Field(default_factory=list)
    # Multiplies cause weights: evidence that makes a cause more (>1) or less (<1) likely.
    boost: dict[Id, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # A short statement of what this answer established, for the ticket ("Test Connection failed").
    finding: Text

    @model_validator(mode="after")
    def _leads_somewhere(self) -> "Answer":
        if self.kind != "unsure" and not (self.confirms or self.rules_out or self.boost):
            raise ValueError(
                f"answer '{self.id}' leads nowhere: give it confirms, rules_out or boost, or make it kind 'unsure'"
            )
        if self.confirms and self.confirms in self.rules_out:
            raise ValueError(f"answer '{self.id}' both confirms and rules out '{self.confirms}'")
        return self


class Check(Strict):
    id: Id
    title: Text
    # The cause a positive finding points to: what the engine reports as `probing` while it waits.
    tests: Id | None = None
    where: Literal["cma", "idp"]
    ask: Text
    path: Path | None = None
    look_for: Text | None = None
    # An exact message (as the console shows it) the admin should compare with.
    quote: Text | None = None
    answers: list[Answer] = Field(min_length=2)
    variants: dict[Id, Variant] = Field(default_factory=dict)
    # Where this check comes from: the playbook itself or the reference material that extends it.
    source: Literal["playbook", "reference"] = "playbook"

    @model_validator(mode="after")
    def _unique_answers(self) -> "Check":
        _unique([a.id for a in self.answers], f"answers of check '{self.id}'")
        return self


class Signature(Strict):
    """An exact string admins paste (an error code, a console message) that pins a cause."""

    text: Text
    # Where the string appears, so replies can say "that is Entra's Test Connection error".
    source: Text
    # `exact`: must appear verbatim (case-insensitive) — for codes like LicenseLimitExceeded.
    # `fuzzy`: may be retyped or truncated — for long sentences.
    match: Literal["exact", "fuzzy"] = "fuzzy"


class Resolution(Strict):
    summary: Text
    steps: list[Step] = Field(min_length=1)
    verify: Text
    notes: list[Text] = Field(default_factory=list)
    variants: dict[Id, Variant] = Field(default_factory=dict)
    # The cure is a support case (e.g. an account-level setting only Cato can change).
    escalate: bool = False


class Cause(Strict):
    id: Id
    title: Text
    summary: Text
    signatures: list[Signature] = Field(default_factory=list)
    resolution: Resolution


class WeightedCause(Strict):
    cause: Id
    # Relative prior likelihood of this cause given the symptom; the engine normalises.
    weight: Annotated[float, Field(gt=0)]


class Symptom(Strict):
    id: Id
    title: Text
    summary: Text
    # In the playbook's order; the engine re-orders by likelihood as evidence arrives.
    checks: list[Id] = Field(min_length=1)
    causes: list[WeightedCause] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_refs(self) -> "Symptom":
        _unique(self.checks, f"checks of symptom '{self.id}'")
        _unique([c.cause for c in self.causes], f"causes of symptom '{self.id}'")
        return self


class TicketField(Strict):
    id: Literal["account", "idp", "upns", "groups"]
    label: Text
    ask: Text
    # Free-text replies meaning "I don't have that / skip".
    optional: bool = False


class Escalation(Strict):
    intro: Text
    portal_url: Text
    portal_label: Text
    guidance: Text
    fields: list[TicketField] = Field(min_length=1)
    # What the playbook asks a ticket to include, in its words, so the body can list them.
    include: list[Text] = Field(min_length=1)


# ---- companion files ---------------------------------------------------------------------------


class Cue(Strict):
    """A phrase and how much finding it counts. Words are matched after typo and synonym folding and light
    stemming, in order, with a couple of other words allowed in between."""

    text: Text
    weight: float = 1.0
    # Cause phrases only: whether "no"/"not"/"never" shortly before the phrase cancels it. Off for words
    # that a negation rarely applies to ("why doesn't the department update" still names the department).
    negatable: bool = True


class SymptomMaterial(Strict):
    # How admins describe this symptom, in their words: nearest-neighbour material.
    examples: list[Text] = Field(default_factory=list)
    # Phrases that point at this symptom, with their weight.
    cues: list[Cue] = Field(default_factory=list)


# The knobs bot/classify.py reads from `thresholds`, with their defaults; classifier.yaml explains each.
CLASSIFIER_THRESHOLDS: dict[str, float] = {
    "domain": 2.5,
    "domain-slope": 1.2,
    "ambient": 0.6,
    "ambient-domain": 3.0,
    "min-evidence": 0.5,
    "vague-domain": 4.5,
    "temperature": 1.2,
    "clarify-ratio": 0.6,
    "directed-offer": 0.5,
    "knn-symptom": 4.0,
    "knn-domain": 4.0,
    "knn-floor": 0.2,
    "symptom-cue-domain": 0.5,
    "symptom-cue-domain-cap": 3.0,
    "signature-domain": 6.0,
    "cause-min": 2.0,
    "cause-margin": 1.0,
    "cause-symptom": 1.5,
    "cause-symptom-cap": 4.0,
    "report-cue-weight": 2.5,
    "cue-gap": 2,
    "wide-gap": 5,
    "cause-gap": 1,
    "negation-window": 3,
    "fuzzy-signature": 90,
    "fuzzy-min-chars": 28,
    "fuzzy-min-share": 0.45,
    "typo-min-len": 5,
    "typo-long-word": 9,
    "bigram-weight": 0.7,
    "max-words": 320,
    "full-count": 3.0,
    "shared-cause-prior": 0.2,
    "other-target": 4.0,
    "unanchored": 0.0,
}


class ClassifierMaterial(Strict):
    """Matching material for bot/classify.py; see knowledge/classifier.yaml for what each part does."""

    # Spelling variants and synonyms folded before matching: canonical -> variants.
    synonyms: dict[Text, list[Text]] = Field(default_factory=dict)
    # The only words a misspelt word may be folded onto ("provsioning" -> "provisioning"): domain words admins
    # mistype. Kept explicit, because folding onto any known word turns real words into wrong ones
    # ("remote" -> "remove", "guess" -> "guest").
    typo_targets: list[Text] = Field(default_factory=list)
    # Words left out of nearest-neighbour similarity (they say nothing about the problem).
    stopwords: list[Text] = Field(default_factory=list)
    # Words that, shortly before a cause phrase, negate it ("no nested groups").
    negators: list[Text] = Field(default_factory=list)
    # Words and phrases that make a message about SCIM provisioning into Cato at all.
    domain_cues: list[Cue] = Field(default_factory=list)
    # Words that tie a message to Cato itself (cato, cma, scim, the playbook's own terms); a message with
    # none of them pays `thresholds.unanchored` off its domain score.
    anchors: list[Text] = Field(default_factory=list)
    # Words and phrases that pull a message away from the domain (other apps, SSO, VPN, pricing...).
    negative_cues: list[Cue] = Field(default_factory=list)
    symptoms: dict[Id, SymptomMaterial] = Field(default_factory=dict)
    # Phrases that pin a cause (on top of the pack's report cues); a negative weight rules the cause out.
    cause_cues: dict[Id, list[Cue]] = Field(default_factory=dict)
    # Report cues of the pack that are too weak to pin a cause from an opening message on their own.
    ignore_report_cues: list[Text] = Field(default_factory=list)
    off_topic_examples: list[Text] = Field(default_factory=list)
    # Free-form thresholds the classifier reads (kept in data so tuning never touches code).
    thresholds: dict[Id, float] = Field(default_factory=dict)


class Lexicon(Strict):
    """How people say yes, no and not sure, and the conversation commands, in free text."""

    yes: list[Text]
    no: list[Text]
    unsure: list[Text]
    commands: dict[Literal["restart", "help", "escalate", "ticket", "cancel"], list[Text]]
    skip: list[Text]


class Pack(Strict):
    version: Literal[1]
    name: Text
    source: Text
    idps: list[IdP] = Field(min_length=1)
    # The IdP whose wording the checks use when no variant applies (the playbook's own screenshots).
    default_idp: Id
    symptoms: list[Symptom] = Field(min_length=1)
    checks: list[Check] = Field(min_length=1)
    causes: list[Cause] = Field(min_length=1)
    escalation: Escalation
    # Relative file names of the companion files, resolved next to the manifest.
    classifier: Text
    lexicon: Text


class Bundle(BaseModel):
    """A loaded, validated pack with its companions and fast lookups."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    pack: Pack
    classifier: ClassifierMaterial
    lexicon: Lexicon
    origin: str

    # Lookups built once per bundle (the bundle is immutable), shared by the engine, tickets and tools.
    @cached_property
    def symptoms(self) -> dict[str, Symptom]:
        return {s.id: s for s in self.pack.symptoms}

    @cached_property
    def checks(self) -> dict[str, Check]:
        return {c.id: c for c in self.pack.checks}

    @cached_property
    def causes(self) -> dict[str, Cause]:
        return {c.id: c for c in self.pack.causes}

    @cached_property
    def idps(self) -> dict[str, IdP]:
        return {i.id: i for i in self.pack.idps}

    def answer(self, check_id: str, answer_id: str) -> Answer | None:
        check = self.checks.get(check_id)
        return next((a for a in check.answers if a.id == answer_id), None) if check else None


def _unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate id '{i}' in {what}")
        seen.add(i)


# ---- graph checks ------------------------------------------------------------------------------

Problem = tuple[tuple[str | int, ...], str]  # (path inside the file, message)


def graph_problems(pack: Pack) -> list[Problem]:
    """Consistency rules pydantic cannot express per-model; each problem carries the path to blame."""
    problems: list[Problem] = []
    for kind in ("idps", "symptoms", "checks", "causes"):
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(pack, kind)):
            if item.id in seen:
                problems.append(((kind, i, "id"), f"duplicate {kind[:-1]} id '{item.id}' (first at {kind}[{seen[item.id]}])"))
            seen.setdefault(item.id, i)

    idps = {i.id for i in pack.idps}
    checks = {c.id: c for c in pack.checks}
    causes = {c.id for c in pack.causes}
    if pack.default_idp not in idps:
        problems.append((("default_idp",), f"unknown IdP '{pack.default_idp}'"))

    def need_cause(path: tuple[str | int, ...], cid: str | None) -> None:
        if cid is not None and cid not in causes:
            problems.append((path, f"unknown cause '{cid}'"))

    for ci, check in enumerate(pack.checks):
        need_cause(("checks", ci, "tests"), check.tests)
        for idp in check.variants:
            if idp not in idps:
                problems.append((("checks", ci, "variants", idp), f"unknown IdP '{idp}'"))
        for ai, ans in enumerate(check.answers):
            need_cause(("checks", ci, "answers", ai, "confirms"), ans.confirms)
            for ri, cid in enumerate(ans.rules_out):
                need_cause(("checks", ci, "answers", ai, "rules_out", ri), cid)
            for cid in ans.boost:
                need_cause(("checks", ci, "answers", ai, "boost", cid), cid)
        if check.tests and not any(a.confirms == check.tests for a in check.answers):
            problems.append((("checks", ci, "tests"), f"check '{check.id}' tests '{check.tests}' but no answer confirms it"))

    for ki, cause in enumerate(pack.causes):
        for idp in cause.resolution.variants:
            if idp not in idps:
                problems.append((("causes", ki, "resolution", "variants", idp), f"unknown IdP '{idp}'"))

    used_checks: set[str] = set()
    reachable: set[str] = set()
    listed: set[str] = set()
    for si, sym in enumerate(pack.symptoms):
        sym_causes = {w.cause for w in sym.causes}
        for wi, w in enumerate(sym.causes):
            need_cause(("symptoms", si, "causes", wi, "cause"), w.cause)
        listed |= sym_causes
        for chi, cid in enumerate(sym.checks):
            check = checks.get(cid)
            if check is None:
                problems.append((("symptoms", si, "checks", chi), f"unknown check '{cid}'"))
                continue
            used_checks.add(cid)
            mentioned = {a.confirms for a in check.answers if a.confirms}
            mentioned |= {c for a in check.answers for c in a.rules_out}
            mentioned |= {c for a in check.answers for c in a.boost}
            for stray in sorted(mentioned - sym_causes):
                if stray in causes:
                    problems.append(
                        (("symptoms", si, "checks", chi), f"check '{cid}' refers to cause '{stray}', which symptom '{sym.id}' does not list")
                    )
            reachable |= {a.confirms for a in check.answers if a.confirms} & sym_causes
    for ci, check in enumerate(pack.checks):
        if check.id not in used_checks:
            problems.append((("checks", ci, "id"), f"check '{check.id}' is not used by any symptom"))
    for ki, cause in enumerate(pack.causes):
        if cause.id not in listed:
            problems.append((("causes", ki, "id"), f"cause '{cause.id}' is not listed by any symptom (unreachable)"))
        elif cause.id not in reachable and not cause.signatures:
            problems.append((("causes", ki, "id"), f"cause '{cause.id}' is never confirmed by a check or a signature (unreachable)"))
    return problems


def classifier_problems(material: ClassifierMaterial, pack: Pack) -> list[Problem]:
    known = {s.id for s in pack.symptoms}
    causes = {c.id for c in pack.causes}
    problems: list[Problem] = [
        (("symptoms", sid), f"unknown symptom '{sid}'") for sid in material.symptoms if sid not in known
    ]
    problems += [(("cause_cues", cid), f"unknown cause '{cid}'") for cid in material.cause_cues if cid not in causes]
    problems += [
        (("thresholds", name), f"unknown threshold '{name}' (known: {', '.join(sorted(CLASSIFIER_THRESHOLDS))})")
        for name in material.thresholds
        if name not in CLASSIFIER_THRESHOLDS
    ]
    return problems


_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Whitespace-folded text, for comparing console paths written with doubled spaces."""
    return _WS.sub(" ", text).strip()
