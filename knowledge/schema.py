"""The shape of a knowledge pack, and the checks that make a pack safe to walk.

A pack is data, never code: a manifest YAML file (IdPs, symptoms, topics, checks, causes, errors,
escalation) that names three companion files — the classifier's matching material, the answer lexicon and
the messages (every sentence the engine itself says). `knowledge.loader.load_pack()` reads them, keeps a
line number for every node, and raises `KnowledgeError` naming file, line and path whenever the data is
malformed (pydantic) or inconsistent (the graph and wording checks below).

Per-IdP wording. Every text an admin reads may be written once, IdP-neutral:

    ask: Is the user's E-mail field empty?

or once per IdP of the pack, as a mapping with every IdP id as key:

    ask:
      entra: In the Microsoft Entra admin center, open Enterprise applications > … > Users and groups. …
      okta: In the Okta Admin Console, open the Cato app's Assignments tab. …
      onelogin: In OneLogin, open the Cato app's Users tab. …
      other: In your IdP's provisioning settings, open the app's assignments. …

The pack's generic IdP (`generic_idp`, default `other`) holds the wording for an IdP we have no console
words for; it names no vendor's menus. Display code never reads such a field directly: it asks
`Bundle.word(value, idp)` (and `Bundle.steps` / `Bundle.notes` for lists), which picks the IdP's own
wording, or the generic one when the IdP is not known yet. For code written before per-IdP wording, a
mapping is a `str` (an `IdPText`) whose value is the generic wording, so it never shows one vendor's
console to another vendor's admin.

Console ownership. Each IdP lists `console_terms`: labels only its console uses ("Provision on demand",
"Test API Credentials", "Require admin approval"). `wording_problems()` refuses a text that an admin of
one IdP could be shown while it carries another IdP's console terms, and a mapping that lacks an IdP.
Which IdPs can see a text: everyone, unless the item it belongs to is scoped with `idps:` (a check, cause
or topic only some consoles have) or `idp:` (an error string only one console prints); a plain string
scoped to one IdP may use that IdP's terms.

Graph rules enforced here, so the engine may assume them:
- ids are unique kebab-case within their kind; every reference resolves;
- every check used by a flow (symptom or topic) only confirms, rules out or boosts causes that flow lists;
- every answer of a check leads somewhere: it confirms a cause, rules causes out, shifts their weights,
  or is an explicit "unsure" (the engine moves to the next check);
- every cause is reachable: some flow lists it, and a check of that flow, an error of the catalogue, or
  the flow being a topic with that single cause confirms it;
- every error of the catalogue points at exactly one cause or topic;
- facts beyond the playbook (`source: reference`) carry their `sources`;
- messages define every id the engine needs (`MESSAGE_SLOTS`) with only the placeholders it fills.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StringConstraints,
    Tag,
    ValidationInfo,
    model_validator,
)

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)]
# Message ids may group with dots: "ticket.header".
MessageId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+([-.][a-z0-9]+)*$", max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
# A console path as the console writes it: "Monitoring > Events". Kept exact; only outer spaces trimmed.
Path = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]

GENERIC_IDP = "other"


# ---- per-IdP wording ----------------------------------------------------------------------------


class IdPText(str):
    """A text written per IdP. As a `str` it is the generic wording (safe to show anyone); `by_idp`
    holds every IdP's own wording. Use `Bundle.word()` to pick one."""

    by_idp: Mapping[str, str]

    def __new__(cls, by_idp: Mapping[str, str], generic: str = GENERIC_IDP) -> "IdPText":
        value = by_idp.get(generic)
        if value is None:
            value = next(iter(by_idp.values()), "")
        obj = super().__new__(cls, value)
        obj.by_idp = MappingProxyType(dict(by_idp))
        return obj

    def __reduce__(self):  # keep pickling (multiprocessing) working
        return (IdPText, (dict(self.by_idp),))


class IdPList(list):
    """A list written per IdP (resolution steps, notes). As a `list` it is the generic one."""

    by_idp: Mapping[str, list]

    def __init__(self, by_idp: Mapping[str, list], generic: str = GENERIC_IDP):
        value = by_idp.get(generic)
        if value is None:
            value = next(iter(by_idp.values()), [])
        super().__init__(value)
        self.by_idp = MappingProxyType({k: list(v) for k, v in by_idp.items()})

    def __reduce__(self):
        return (IdPList, (dict(self.by_idp),))


def _generic(info: ValidationInfo) -> str:
    ctx = info.context if isinstance(info.context, dict) else {}
    return str(ctx.get("generic_idp") or GENERIC_IDP)


def _to_text(value: Any, info: ValidationInfo) -> Any:
    return IdPText(value, _generic(info)) if isinstance(value, dict) else value


def _to_list(value: Any, info: ValidationInfo) -> Any:
    return IdPList(value, _generic(info)) if isinstance(value, dict) else value


def _dump(value: Any) -> Any:
    if isinstance(value, IdPText):
        return dict(value.by_idp)
    if isinstance(value, IdPList):
        return {k: [_dump_item(x) for x in v] for k, v in value.by_idp.items()}
    if isinstance(value, list):
        return [_dump_item(x) for x in value]
    return value


def _dump_item(x: Any) -> Any:
    if isinstance(x, BaseModel):
        return x.model_dump()
    return _dump(x)


def _kind(value: Any) -> str:
    return "per-idp" if isinstance(value, dict) else "neutral"


def _worded(inner: Any) -> Any:
    """`inner`, or a mapping IdP id -> `inner`. Loc parts "neutral"/"per-idp" are dropped by the loader."""
    return Annotated[
        Union[Annotated[inner, Tag("neutral")], Annotated[dict[Id, inner], Tag("per-idp")]],
        Discriminator(_kind),
    ]


# A user-visible text: one IdP-neutral string, or a mapping with every IdP of the pack as key.
Worded = Annotated[_worded(Text), AfterValidator(_to_text), PlainSerializer(_dump)]
WordedPath = Annotated[_worded(Path), AfterValidator(_to_text), PlainSerializer(_dump)]
# A list shown to the admin: one neutral list (whose items may themselves be Worded), or one list per IdP.
WordedTexts = Annotated[_worded(list[Text]), AfterValidator(_to_list), PlainSerializer(_dump)]
TAG_PARTS = frozenset({"neutral", "per-idp"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields holding text an admin reads (Worded, WordedPath, WordedTexts, or Step lists): walked by
    # `wording_problems()`.
    __worded__: ClassVar[tuple[str, ...]] = ()


class IdP(Strict):
    id: Id
    name: Text
    # Words that identify this IdP in free text ("aad", "azure ad", "entra").
    aliases: list[Text] = Field(default_factory=list)
    # Where the admin works in this IdP, used in questions ("the Entra admin center").
    console: Text
    # Labels, menus and product names only this IdP's console uses. Matched case-sensitively, as whole
    # words; a text another IdP's admin may see must not carry them.
    console_terms: list[Text] = Field(default_factory=list)


class Step(Strict):
    text: Worded
    path: WordedPath | None = None
    __worded__ = ("text", "path")


class Steps(list):
    """Marker only: see `WordedSteps`."""


WordedSteps = Annotated[
    Union[Annotated[list[Step], Tag("neutral")], Annotated[dict[Id, list[Step]], Tag("per-idp")]],
    Discriminator(_kind),
    AfterValidator(_to_list),
    PlainSerializer(_dump),
]


class Variant(Strict):
    """Compatibility view for code written before per-IdP wording: one IdP's texts of a check or a
    resolution, computed from the Worded fields (see `Check.variants`, `Resolution.variants`)."""

    ask: str | None = None
    path: str | None = None
    look_for: str | None = None
    steps: list["Step"] | None = None
    verify: str | None = None
    notes: list[str] | None = None


class Answer(Strict):
    id: Id
    label: Worded
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
    finding: Worded
    __worded__ = ("label", "finding")

    @model_validator(mode="after")
    def _leads_somewhere(self) -> "Answer":
        if self.kind != "unsure" and not (self.confirms or self.rules_out or self.boost):
            raise ValueError(
                f"answer '{self.id}' leads nowhere: give it confirms, rules_out or boost, or make it kind 'unsure'"
            )
        if self.confirms and self.confirms in self.rules_out:
            raise ValueError(f"answer '{self.id}' both confirms and rules out '{self.confirms}'")
        return self


Source = Literal["playbook", "reference"]


def _need_sources(obj: Any, what: str) -> None:
    if obj.source == "reference" and not obj.sources:
        raise ValueError(f"{what} '{obj.id}' is `source: reference`: list its `sources`")


class Check(Strict):
    id: Id
    title: Worded
    # The cause a positive finding points to: what the engine reports as `probing` while it waits.
    tests: Id | None = None
    # Whose console the admin looks at. A `cma` check is the same for every IdP: its path is neutral.
    where: Literal["cma", "idp"]
    ask: Worded
    path: WordedPath | None = None
    look_for: Worded | None = None
    # An exact message or label (as the console shows it) the admin should compare with.
    quote: Worded | None = None
    answers: list[Answer] = Field(min_length=2)
    # Only these IdPs' consoles have this check (None: every IdP). Unknown IdP: ask which one first.
    idps: list[Id] | None = None
    # Where this check comes from: the playbook itself or the reference material that extends it.
    source: Source = "playbook"
    sources: list[Text] = Field(default_factory=list)
    __worded__ = ("title", "ask", "path", "look_for", "quote")

    @model_validator(mode="before")
    @classmethod
    def _no_variants(cls, data: Any) -> Any:
        if isinstance(data, dict) and "variants" in data:
            raise ValueError("`variants` is gone: write ask/path/look_for/… as a mapping with every IdP id as key")
        return data

    @model_validator(mode="after")
    def _valid(self) -> "Check":
        _unique([a.id for a in self.answers], f"answers of check '{self.id}'")
        _need_sources(self, "check")
        if self.where == "cma" and isinstance(self.path, IdPText):
            raise ValueError(f"check '{self.id}' is on the CMA (`where: cma`): its path is one neutral string")
        return self

    def applies_to(self, idp: str | None) -> bool:
        """Whether an admin of `idp` can do this check (True while the IdP is unknown)."""
        return idp is None or self.idps is None or idp in self.idps

    @property
    def variants(self) -> dict[str, Variant]:
        """Compatibility for the pre-Worded engine: per IdP, the check's own wording of ask/path/look_for."""
        keys = _keys(self.ask, self.path, self.look_for)
        return {
            k: Variant(ask=_pick(self.ask, k), path=_pick(self.path, k), look_for=_pick(self.look_for, k))
            for k in keys
        }


class Signature(Strict):
    """Compatibility view: one `match` string of an `errors:` entry that points at a cause."""

    text: Text
    source: Text
    match: Literal["exact", "fuzzy"] = "fuzzy"


class Resolution(Strict):
    summary: Worded
    steps: WordedSteps
    verify: Worded
    notes: WordedTexts = Field(default_factory=list)
    # The cure is a support case (e.g. an account-level setting only Cato can change).
    escalate: bool = False
    __worded__ = ("summary", "steps", "verify", "notes")

    @model_validator(mode="before")
    @classmethod
    def _no_variants(cls, data: Any) -> Any:
        if isinstance(data, dict) and "variants" in data:
            raise ValueError("`variants` is gone: write steps/verify/notes as a mapping with every IdP id as key")
        return data

    @model_validator(mode="after")
    def _some_steps(self) -> "Resolution":
        lists = self.steps.by_idp.values() if isinstance(self.steps, IdPList) else [self.steps]
        if any(len(x) == 0 for x in lists):
            raise ValueError("a resolution needs at least one step (for every IdP)")
        return self

    @property
    def variants(self) -> dict[str, Variant]:
        """Compatibility for the pre-Worded engine: per IdP, steps/verify/notes in that IdP's words."""
        keys = _keys(self.summary, self.verify, self.notes, self.steps, *_step_values(self.steps))
        return {
            k: Variant(steps=resolve_steps(self.steps, k), verify=_pick(self.verify, k), notes=resolve_texts(self.notes, k))
            for k in keys
        }


class Cause(Strict):
    id: Id
    title: Worded
    summary: Worded
    resolution: Resolution
    # "Works as designed": the finding is that Cato behaves as intended (an attribute it does not take).
    # The resolution says so and what Cato does take; the conversation closes as answered, with a ticket
    # only if the admin asks for one.
    as_designed: bool = False
    # A fact that rests on a source we could not confirm with the vendor, said plainly to the admin.
    unverified: Worded | None = None
    # Only these IdPs can have this cause (None: every IdP).
    idps: list[Id] | None = None
    source: Source = "playbook"
    sources: list[Text] = Field(default_factory=list)
    __worded__ = ("title", "summary", "unverified")

    @model_validator(mode="before")
    @classmethod
    def _no_signatures(cls, data: Any) -> Any:
        if isinstance(data, dict) and "signatures" in data:
            raise ValueError("`signatures` moved to the pack's `errors:` catalogue (with `cause: <this id>`)")
        return data

    @model_validator(mode="after")
    def _valid(self) -> "Cause":
        _need_sources(self, "cause")
        return self

    def applies_to(self, idp: str | None) -> bool:
        return idp is None or self.idps is None or idp in self.idps

    @property
    def signatures(self) -> list[Signature]:
        """Compatibility: the catalogue's match strings for this cause (filled in by the Pack)."""
        return list(self.__dict__.get("_sigs", ()))


class WeightedCause(Strict):
    cause: Id
    # Relative prior likelihood of this cause given the flow; the engine normalises.
    weight: Annotated[float, Field(gt=0)]
    # In this flow, only admins of these IdPs can have it (None: whoever the cause itself applies to).
    idps: list[Id] | None = None


class Flow(Strict):
    """A symptom of the playbook or a topic beyond it: what the admin reports, the checks that tell its
    causes apart, and the causes with their prior weights."""

    id: Id
    title: Worded
    # For a topic: the short explanation an admin gets first.
    summary: Worded
    # In the order written; the engine re-orders by likelihood as evidence arrives, except `ask_first`.
    checks: list[Id] = Field(default_factory=list)
    # Checks asked before any other, in this order, unless already answered (the playbook's first step).
    ask_first: list[Id] = Field(default_factory=list)
    causes: list[WeightedCause] = Field(min_length=1)
    __worded__ = ("title", "summary")

    @model_validator(mode="after")
    def _unique_refs(self) -> "Flow":
        _unique(self.checks, f"checks of '{self.id}'")
        _unique([c.cause for c in self.causes], f"causes of '{self.id}'")
        for cid in self.ask_first:
            if cid not in self.checks:
                raise ValueError(f"ask_first names '{cid}', which is not among the checks of '{self.id}'")
        return self


class Symptom(Flow):
    kind: ClassVar[str] = "symptom"

    @model_validator(mode="after")
    def _has_checks(self) -> "Symptom":
        if not self.checks:
            raise ValueError(f"symptom '{self.id}' needs at least one check")
        return self


class Topic(Flow):
    """A common report the playbook does not cover, from reference material."""

    kind: ClassVar[str] = "topic"
    source: Literal["reference"]
    sources: list[Text] = Field(min_length=1)
    # Only these IdPs' consoles have this topic (None: every IdP).
    idps: list[Id] | None = None

    def applies_to(self, idp: str | None) -> bool:
        return idp is None or self.idps is None or idp in self.idps


class ErrorEntry(Strict):
    """An exact string admins paste (an error code, a console or task message) and what it means."""

    id: Id
    # The strings as the console prints them.
    match: list[Text] = Field(min_length=1)
    # `exact`: appears verbatim (case-insensitive) — codes like LicenseLimitExceeded.
    # `fuzzy`: may be retyped or cut — long sentences.
    kind: Literal["exact", "fuzzy"] = "exact"
    # Whose console prints it (`any`: several, e.g. an HTTP status or a CMA message).
    idp: Id | Literal["any"] = "any"
    cause: Id | None = None
    topic: Id | None = None
    # An error that several causes print alike (NotEffectivelyEntitled: not assigned, or only nested): it
    # multiplies these causes' weights instead of pinning `cause` (which names the first one to look at).
    boost: dict[Id, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # Where it appears, in words: "Entra provisioning logs", "Okta Dashboard > Tasks".
    source: Text
    # What it means and what to do, in a sentence or two.
    explain: Worded
    sources: list[Text] = Field(default_factory=list)
    __worded__ = ("explain",)

    @model_validator(mode="after")
    def _one_target(self) -> "ErrorEntry":
        if (self.cause is None) == (self.topic is None):
            raise ValueError(f"error '{self.id}' needs exactly one of `cause` or `topic`")
        if self.boost and self.cause is None:
            raise ValueError(f"error '{self.id}' boosts causes: name the first of them as `cause`")
        return self

    @property
    def pins(self) -> bool:
        """Whether finding this string settles the cause (or topic) by itself."""
        return not self.boost

    def applies_to(self, idp: str | None) -> bool:
        return idp is None or self.idp == "any" or self.idp == idp


class TicketField(Strict):
    id: Literal["account", "idp", "upns", "groups"]
    label: Worded
    ask: Worded
    # Free-text replies meaning "I don't have that / skip".
    optional: bool = False
    __worded__ = ("label", "ask")


class Escalation(Strict):
    intro: Worded
    portal_url: Text
    portal_label: Worded
    guidance: Worded
    fields: list[TicketField] = Field(min_length=1)
    # What the playbook asks a ticket to include, in its words, so the body can list them.
    include: list[Text] = Field(min_length=1)
    # Which screens to screenshot and attach, in each IdP's words.
    attachments: list[Worded] = Field(default_factory=list)
    __worded__ = ("intro", "portal_label", "guidance", "attachments")


# ---- messages -----------------------------------------------------------------------------------

# Every sentence the engine and the channels say, by id, with the placeholders code fills in. A pack's
# messages file must define each id; its text may use any subset of the placeholders and no others.
MESSAGE_SLOTS: dict[str, frozenset[str]] = {
    k: frozenset(v)
    for k, v in {
        # opening, help, commands
        "greeting": [],
        "help": [],
        "commands": [],
        "restart": [],
        "cancelled": [],
        "closed": [],
        "lost-conversation": [],
        # triage
        "off-topic": [],
        "pick-symptom": [],
        "clarify": [],
        "clarify-unsure": [],
        "clarify-again": [],
        "ask-back": ["options"],
        "flow-start": ["title", "summary"],
        "topic-start": ["title", "summary"],
        "already-known": ["findings"],
        # checks
        "reask": [],
        "reask-answer": [],
        "reask-hint": [],
        "gave-up-check": [],
        "stale-click": [],
        "re-explain": ["title"],
        "complaint": [],
        "complaint-idp": ["idp"],
        "error-recognised": ["source", "text"],
        "error-other-flow": ["source", "text", "title"],
        "idp-title": [],
        "idp-ask": [],
        "idp-reask": [],
        "idp-noted": ["idp"],
        "look-for": ["text"],
        "path": ["path"],
        # resolution
        "cause-found": ["title"],
        "cause-likely": ["title"],
        "as-designed": ["title"],
        "as-designed-close": [],
        "unverified": ["text"],
        "verify": ["text"],
        "fixed-title": [],
        "fixed-ask": [],
        "fixed-yes": [],
        "fixed-no": [],
        "fixed-thanks": [],
        "next-cause": [],
        # escalation
        "escalate-asked": [],
        "escalate-no-cause": [],
        "escalate-not-fixed": [],
        "escalate-support-case": ["title"],
        "escalate-offer": [],
        "skip": [],
        "reask-account": [],
        "reask-upns": [],
        "reask-groups": [],
        "ticket-title": [],
        "ticket-draft-title": [],
        "ticket-draft-missing": ["missing"],
        "ticket-draft-so-far": [],
        "ticket-portal": ["url"],
        "start-over": [],
        # the ticket body
        "ticket.header": [],
        "ticket.not-provided": [],
        "ticket.symptom": [],
        "ticket.topic": [],
        "ticket.cause": [],
        "ticket.cause-confirmed": [],
        "ticket.cause-likely": [],
        "ticket.tried": [],
        "ticket.why": [],
        "ticket.steps": [],
        "ticket.no-steps": [],
        "ticket.from-report": [],
        "ticket.pasted": [],
        "ticket.admin-said": ["text"],
        "ticket.ruled-out": [],
        "ticket.attach": [],
        "ticket.transcript": [],
        # feedback
        "explain-generic": [],
        "idp-explain": [],
        "field-explain": ["field"],
        "field-required": ["field"],
        "aside": [],
        "other-symptom": [],
        "where-console": ["console"],
        "switch-ask": ["title"],
        "switch-yes": [],
        "switch-no": [],
        "none-of-these": [],
        "confirm-yes": [],
        "confirm-no": [],
        "confirm-none": [],
        "where-start": [],
        "ticket.why-asked": ["step"],
        "ticket.why-no-cause": [],
        "ticket.why-not-fixed": ["tried"],
        "ticket.looked-up": [],
        "feedback-ask": [],
        "feedback-yes": [],
        "feedback-no": [],
        "feedback-thanks": [],
        # channels
        "channel-error": [],
        "channel-no-conversation": ["command"],
        "channel-expired": [],
        "channel-undelivered": ["code"],
        "handoff-button": [],
        "handoff-title": [],
        "handoff-intro": ["where"],
        "handoff-sent": ["where"],
        "handoff-body-label": [],
        "handoff-body-hint": [],
        "handoff-no-channel": [],
        "handoff-posted": [],
        "handoff-account-placeholder": [],
        "handoff-upns-hint": [],
        "handoff-groups-hint": [],
        "handoff-account-required": [],
        "handoff-account-too-long": ["max"],
        "handoff-account-secret": [],
        "handoff-upn-invalid": ["value"],
        "handoff-upns-too-many": ["max"],
        "handoff-groups-too-many": ["max"],
        "handoff-group-too-long": ["max"],
        "handoff-body-empty": [],
        "handoff-body-too-long": ["max"],
        "escalation-post-title": [],
        "escalation-raised-by": ["who"],
        "escalation-back-link": [],
        "you-chose": ["label"],
    }.items()
}


class Messages(Strict):
    messages: dict[MessageId, Worded] = Field(min_length=1)
    __worded__ = ()


_FORMATTER = string.Formatter()


def placeholders(text: str) -> set[str]:
    """The {names} a message text uses. Raises ValueError on a malformed template."""
    names: set[str] = set()
    for _, name, spec, conv in _FORMATTER.parse(text):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a plain name (write {{{{ and }}}} for literal braces)")
        if spec or conv:
            raise ValueError(f"placeholder {{{name}}} takes no format spec or conversion")
        names.add(name)
    return names
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
    # The same material for the pack's topics (reports beyond the playbook), by topic id.
    topics: dict[Id, SymptomMaterial] = Field(default_factory=dict)
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
    version: Literal[2]
    name: Text
    source: Text
    idps: list[IdP] = Field(min_length=1)
    # The IdP whose wording is shown while the admin's IdP is unknown, and to admins of an IdP the pack
    # has no console words for. Its texts name no vendor's menus.
    generic_idp: Id = GENERIC_IDP
    symptoms: list[Symptom] = Field(min_length=1)
    topics: list[Topic] = Field(default_factory=list)
    checks: list[Check] = Field(min_length=1)
    causes: list[Cause] = Field(min_length=1)
    errors: list[ErrorEntry] = Field(default_factory=list)
    escalation: Escalation
    # Relative file names of the companion files, resolved next to the manifest.
    classifier: Text
    lexicon: Text
    messages: Text

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default_idp" in data:
            raise ValueError("`default_idp` is gone: the generic wording is `generic_idp` (default 'other'), never one vendor's")
        return data

    @model_validator(mode="after")
    def _signatures(self) -> "Pack":
        for cause in self.causes:
            sigs = tuple(
                Signature(text=m, source=e.source, match=e.kind)
                for e in self.errors
                if e.cause == cause.id and e.pins
                for m in e.match
            )
            cause.__dict__["_sigs"] = sigs
        return self

    @property
    def default_idp(self) -> str:
        """Compatibility: the IdP whose wording applies when none is known (now the generic one)."""
        return self.generic_idp


class Bundle(BaseModel):
    """A loaded, validated pack with its companions, fast lookups and the wording accessors."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    pack: Pack
    classifier: ClassifierMaterial
    lexicon: Lexicon
    messages: Messages
    origin: str

    # Lookups built once per bundle (the bundle is immutable), shared by the engine, tickets and tools.
    @cached_property
    def symptoms(self) -> dict[str, Symptom]:
        return {s.id: s for s in self.pack.symptoms}

    @cached_property
    def topics(self) -> dict[str, Topic]:
        return {t.id: t for t in self.pack.topics}

    @cached_property
    def flows(self) -> dict[str, Flow]:
        """Symptoms and topics by id (ids are unique across both)."""
        return {**self.symptoms, **self.topics}

    @cached_property
    def checks(self) -> dict[str, Check]:
        return {c.id: c for c in self.pack.checks}

    @cached_property
    def causes(self) -> dict[str, Cause]:
        return {c.id: c for c in self.pack.causes}

    @cached_property
    def idps(self) -> dict[str, IdP]:
        return {i.id: i for i in self.pack.idps}

    @cached_property
    def errors(self) -> dict[str, ErrorEntry]:
        return {e.id: e for e in self.pack.errors}

    @cached_property
    def fields(self) -> dict[str, TicketField]:
        return {f.id: f for f in self.pack.escalation.fields}

    def field(self, field_id: str) -> TicketField | None:
        """A ticket field by id (account, idp, upns, groups), or None."""
        return self.fields.get(field_id)

    @property
    def generic_idp(self) -> str:
        return self.pack.generic_idp

    def answer(self, check_id: str, answer_id: str) -> Answer | None:
        check = self.checks.get(check_id)
        return next((a for a in check.answers if a.id == answer_id), None) if check else None

    # ---- wording ------------------------------------------------------------------------------

    def word(self, value: Any, idp: str | None = None) -> str:
        """The text an admin of `idp` reads: that IdP's wording, else the generic one (`idp` None or
        unknown). A neutral string is returned as it is; None gives ""."""
        if value is None:
            return ""
        if isinstance(value, IdPText):
            return _choose(value.by_idp, idp, self.generic_idp)
        if isinstance(value, Mapping):
            return _choose(value, idp, self.generic_idp)
        return str(value)

    def words(self, value: Any, idp: str | None = None) -> list[str]:
        """A Worded list (resolution notes, escalation attachments) in the words of `idp`."""
        if value is None:
            return []
        if isinstance(value, IdPList):
            value = _choose(value.by_idp, idp, self.generic_idp)
        return [self.word(v, idp) for v in value]

    def steps(self, resolution: Resolution, idp: str | None = None) -> list[Step]:
        """The resolution's steps for `idp`, each with plain-string text and path."""
        return resolve_steps(resolution.steps, idp, self.generic_idp)

    def notes(self, resolution: Resolution, idp: str | None = None) -> list[str]:
        return self.words(resolution.notes, idp)

    def attachments(self, idp: str | None = None) -> list[str]:
        """Which screens to screenshot for the ticket, in the words of `idp`."""
        return [self.word(a, idp) for a in self.pack.escalation.attachments]

    def message(self, id: str, idp: str | None = None, /, **fields: Any) -> str:
        """The engine's sentence `id` for `idp`, with its {placeholders} filled. Raises KeyError for an
        unknown id, and ValueError for a placeholder left unfilled or a field the message does not take."""
        try:
            value = self.messages.messages[id]
        except KeyError:
            raise KeyError(f"no message '{id}' in the knowledge pack") from None
        allowed = MESSAGE_SLOTS.get(id)
        if allowed is not None:
            extra = set(fields) - allowed
            if extra:
                raise ValueError(f"message '{id}' takes {sorted(allowed) or 'no fields'}, not {sorted(extra)}")
        text = self.word(value, idp)
        needed = placeholders(text)
        missing = needed - set(fields)
        if missing:
            raise ValueError(f"message '{id}' needs {sorted(missing)}")
        return text.format_map({k: fields[k] for k in needed}) if needed else text.replace("{{", "{").replace("}}", "}")

    # ---- applicability ------------------------------------------------------------------------

    def checks_for(self, flow_id: str, idp: str | None = None) -> list[Check]:
        """The checks of a flow an admin of `idp` can do, `ask_first` ones first, then in written order."""
        flow = self.flows[flow_id]
        order = list(flow.ask_first) + [c for c in flow.checks if c not in flow.ask_first]
        return [self.checks[c] for c in order if self.checks[c].applies_to(idp)]

    def causes_for(self, flow_id: str, idp: str | None = None) -> list[WeightedCause]:
        """The flow's causes that an admin of `idp` can have, with their prior weights."""
        return [
            w
            for w in self.flows[flow_id].causes
            if self.causes[w.cause].applies_to(idp) and (idp is None or w.idps is None or idp in w.idps)
        ]

    def errors_for(self, *, cause: str | None = None, topic: str | None = None) -> list[ErrorEntry]:
        return [e for e in self.pack.errors if (cause and e.cause == cause) or (topic and e.topic == topic)]

    def find_errors(self, text: str, idp: str | None = None) -> list[ErrorEntry]:
        """Catalogue entries whose `exact` strings appear in `text` (case-insensitive, whitespace folded),
        longest match first. Fuzzy matching of long sentences is the message reader's job."""
        hay = squash(text).casefold()
        hits: list[tuple[int, ErrorEntry]] = []
        for e in self.pack.errors:
            if e.kind != "exact" or not e.applies_to(idp):
                continue
            best = max((len(m) for m in e.match if _contains_code(hay, squash(m).casefold())), default=0)
            if best:
                hits.append((best, e))
        hits.sort(key=lambda h: -h[0])
        return [e for _, e in hits]


def _contains_code(hay: str, needle: str) -> bool:
    # A code must stand as its own token ("Timeout" in "Timeout", not in "TimeoutRetries"; "409" not in "14090").
    pat = r"(?<![A-Za-z0-9])" + re.escape(needle) + r"(?![A-Za-z0-9])"
    return re.search(pat, hay) is not None


def _choose(by_idp: Mapping[str, Any], idp: str | None, generic: str) -> Any:
    if idp is not None and idp in by_idp:
        return by_idp[idp]
    if generic in by_idp:
        return by_idp[generic]
    if len(by_idp) == 1:
        return next(iter(by_idp.values()))
    raise KeyError(f"no wording for IdP '{idp}' and no generic ('{generic}') wording among {sorted(by_idp)}")


def _pick(value: Any, idp: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, IdPText):
        return value.by_idp.get(idp, str(value))
    return str(value)


def _keys(*values: Any) -> list[str]:
    keys: list[str] = []
    for v in values:
        for k in getattr(v, "by_idp", {}) or {}:
            if k not in keys:
                keys.append(k)
    return keys


def _step_values(steps: Any) -> list[Any]:
    lists = steps.by_idp.values() if isinstance(steps, IdPList) else [steps]
    return [v for lst in lists for st in lst for v in (st.text, st.path)]


def resolve_steps(steps: Any, idp: str | None, generic: str = GENERIC_IDP) -> list[Step]:
    """Steps in the words of `idp` (plain strings), from a neutral or per-IdP step list."""
    lst = _choose(steps.by_idp, idp, generic) if isinstance(steps, IdPList) else steps
    out = []
    for st in lst:
        text = _choose(st.text.by_idp, idp, generic) if isinstance(st.text, IdPText) else st.text
        path = _choose(st.path.by_idp, idp, generic) if isinstance(st.path, IdPText) else st.path
        out.append(Step.model_construct(text=str(text), path=None if path is None else str(path)))
    return out


def resolve_texts(texts: Any, idp: str | None, generic: str = GENERIC_IDP) -> list[str]:
    lst = _choose(texts.by_idp, idp, generic) if isinstance(texts, IdPList) else texts
    return [_choose(t.by_idp, idp, generic) if isinstance(t, IdPText) else str(t) for t in lst]


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
    for kind in ("idps", "symptoms", "topics", "checks", "causes", "errors"):
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(pack, kind)):
            if item.id in seen:
                problems.append(((kind, i, "id"), f"duplicate {kind[:-1]} id '{item.id}' (first at {kind}[{seen[item.id]}])"))
            seen.setdefault(item.id, i)
    symptom_ids = {s.id for s in pack.symptoms}
    for i, t in enumerate(pack.topics):
        if t.id in symptom_ids:
            problems.append((("topics", i, "id"), f"topic id '{t.id}' is also a symptom id (flows share one namespace)"))

    idps = {i.id for i in pack.idps}
    checks = {c.id: c for c in pack.checks}
    causes = {c.id: c for c in pack.causes}
    topics = {t.id for t in pack.topics}
    if pack.generic_idp not in idps:
        problems.append((("generic_idp",), f"unknown IdP '{pack.generic_idp}'"))

    def need_idps(path: tuple[str | int, ...], ids: list[str] | None) -> None:
        for n, i in enumerate(ids or []):
            if i not in idps:
                problems.append((path + (n,), f"unknown IdP '{i}'"))

    def need_cause(path: tuple[str | int, ...], cid: str | None) -> None:
        if cid is not None and cid not in causes:
            problems.append((path, f"unknown cause '{cid}'"))

    for ci, check in enumerate(pack.checks):
        need_cause(("checks", ci, "tests"), check.tests)
        need_idps(("checks", ci, "idps"), check.idps)
        for ai, ans in enumerate(check.answers):
            need_cause(("checks", ci, "answers", ai, "confirms"), ans.confirms)
            for ri, cid in enumerate(ans.rules_out):
                need_cause(("checks", ci, "answers", ai, "rules_out", ri), cid)
            for cid in ans.boost:
                need_cause(("checks", ci, "answers", ai, "boost", cid), cid)
            target = causes.get(ans.confirms or "")
            if target is not None and target.idps is not None:
                seen_by = set(check.idps) if check.idps is not None else idps
                if not seen_by <= set(target.idps):
                    problems.append(
                        (("checks", ci, "answers", ai, "confirms"),
                         f"confirms '{target.id}', which only {', '.join(target.idps)} can have, but the check is asked of {', '.join(sorted(seen_by - set(target.idps)))} too")
                    )
        if check.tests and not any(a.confirms == check.tests for a in check.answers):
            problems.append((("checks", ci, "tests"), f"check '{check.id}' tests '{check.tests}' but no answer confirms it"))

    for ki, cause in enumerate(pack.causes):
        need_idps(("causes", ki, "idps"), cause.idps)

    confirmed_by_error: set[str] = set()
    for ei, err in enumerate(pack.errors):
        if err.idp != "any" and err.idp not in idps:
            problems.append((("errors", ei, "idp"), f"unknown IdP '{err.idp}'"))
        need_cause(("errors", ei, "cause"), err.cause)
        for cid in err.boost:
            need_cause(("errors", ei, "boost", cid), cid)
        if err.topic is not None and err.topic not in topics:
            problems.append((("errors", ei, "topic"), f"unknown topic '{err.topic}'"))
        if err.cause and err.pins:
            confirmed_by_error.add(err.cause)
    seen_match: dict[str, tuple[int, int]] = {}
    for ei, err in enumerate(pack.errors):
        for mi, m in enumerate(err.match):
            key = squash(m).casefold()
            if key in seen_match and seen_match[key][0] != ei:
                problems.append((("errors", ei, "match", mi), f"'{m}' is already matched by errors[{seen_match[key][0]}]"))
            seen_match.setdefault(key, (ei, mi))

    used_checks: set[str] = set()
    reachable: set[str] = set(confirmed_by_error)
    listed: set[str] = set()
    flows: list[tuple[str, int, Flow]] = [("symptoms", i, s) for i, s in enumerate(pack.symptoms)]
    flows += [("topics", i, t) for i, t in enumerate(pack.topics)]
    for kind, si, flow in flows:
        if isinstance(flow, Topic):
            need_idps((kind, si, "idps"), flow.idps)
        flow_causes = {w.cause for w in flow.causes}
        for wi, w in enumerate(flow.causes):
            need_cause((kind, si, "causes", wi, "cause"), w.cause)
            need_idps((kind, si, "causes", wi, "idps"), w.idps)
        listed |= flow_causes
        if len(flow.causes) == 1 or not flow.checks:
            reachable |= flow_causes  # concluded directly, or by weight once its checks are done
        for chi, cid in enumerate(flow.checks):
            check = checks.get(cid)
            if check is None:
                problems.append(((kind, si, "checks", chi), f"unknown check '{cid}'"))
                continue
            used_checks.add(cid)
            mentioned = {a.confirms for a in check.answers if a.confirms}
            mentioned |= {c for a in check.answers for c in a.rules_out}
            mentioned |= {c for a in check.answers for c in a.boost}
            for stray in sorted(mentioned - flow_causes):
                if stray in causes:
                    problems.append(
                        ((kind, si, "checks", chi), f"check '{cid}' refers to cause '{stray}', which '{flow.id}' does not list")
                    )
            reachable |= {a.confirms for a in check.answers if a.confirms} & flow_causes
    for ci, check in enumerate(pack.checks):
        if check.id not in used_checks:
            problems.append((("checks", ci, "id"), f"check '{check.id}' is not used by any symptom or topic"))
    for ki, cause in enumerate(pack.causes):
        if cause.id not in listed:
            problems.append((("causes", ki, "id"), f"cause '{cause.id}' is not listed by any symptom or topic (unreachable)"))
        elif cause.id not in reachable:
            problems.append((("causes", ki, "id"), f"cause '{cause.id}' is never confirmed by a check or an error (unreachable)"))
    return problems


# ---- wording checks ----------------------------------------------------------------------------


def _term_patterns(pack: Pack) -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    return {
        i.id: [(t, re.compile(r"(?<![A-Za-z0-9])" + re.escape(t) + r"(?![A-Za-z0-9])")) for t in i.console_terms]
        for i in pack.idps
    }


class _Wording:
    """Walks every Worded field of a model tree, with the set of IdPs whose admins can be shown it."""

    def __init__(self, pack: Pack):
        self.all = frozenset(i.id for i in pack.idps)
        self.names = {i.id: i.name for i in pack.idps}
        self.terms = _term_patterns(pack)
        self.problems: list[Problem] = []

    def model(self, obj: BaseModel, loc: tuple[str | int, ...], audience: frozenset[str]) -> None:
        own = getattr(obj, "idps", None)
        if isinstance(obj, ErrorEntry):
            own = None if obj.idp == "any" else [obj.idp]
        if own is not None and not isinstance(obj, Pack):
            audience = frozenset(own) & self.all or audience
        worded = type(obj).__worded__
        for name in worded:
            self.value(getattr(obj, name), loc + (name,), audience)
        for name in type(obj).model_fields:
            if name in worded:
                continue
            self.nested(getattr(obj, name), loc + (name,), audience)

    def nested(self, value: Any, loc: tuple[str | int, ...], audience: frozenset[str]) -> None:
        if isinstance(value, BaseModel):
            self.model(value, loc, audience)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, BaseModel):
                    self.model(v, loc + (i,), audience)

    def value(self, value: Any, loc: tuple[str | int, ...], audience: frozenset[str]) -> None:
        if value is None:
            return
        if isinstance(value, (IdPText, IdPList)):
            keys = set(value.by_idp)
            for k in sorted(keys - self.all):
                self.problems.append((loc + (k,), f"unknown IdP '{k}' (known: {', '.join(sorted(self.all))})"))
            for k in sorted(keys & self.all - audience):
                self.problems.append((loc + (k,), f"wording for '{k}', who never sees this (it is for {', '.join(sorted(audience))} only)"))
            missing = sorted(audience - keys)
            if missing:
                self.problems.append((loc, f"no wording for {', '.join(missing)}: a per-IdP text needs every IdP ({', '.join(sorted(audience))})"))
            for k in sorted(keys & self.all):
                v = value.by_idp[k]
                if isinstance(value, IdPList):
                    for i, item in enumerate(v):
                        self.item(item, loc + (k, i), frozenset({k}))
                else:
                    self.text(v, loc + (k,), frozenset({k}))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.item(item, loc + (i,), audience)
        else:
            self.text(str(value), loc, audience)

    def item(self, item: Any, loc: tuple[str | int, ...], audience: frozenset[str]) -> None:
        if isinstance(item, BaseModel):
            self.model(item, loc, audience)
        else:
            self.value(item, loc, audience)

    def text(self, text: str, loc: tuple[str | int, ...], audience: frozenset[str]) -> None:
        # Who may see it: one IdP may see its own console terms; anything seen by several sees none.
        allowed = audience if len(audience) == 1 else frozenset()
        for idp, pats in self.terms.items():
            if idp in allowed:
                continue
            for term, rx in pats:
                if rx.search(text):
                    who = ", ".join(sorted(audience)) if len(audience) < len(self.all) else "every IdP"
                    self.problems.append((loc, f"carries {self.names[idp]}'s console term '{term}', but is shown to {who}"))
                    break


def wording_problems(pack: Pack) -> list[Problem]:
    """Texts an admin of one IdP could be shown that carry another IdP's console terms, and per-IdP
    texts that lack an IdP's wording."""
    w = _Wording(pack)
    for name in ("symptoms", "topics", "checks", "causes", "errors", "escalation"):
        w.nested(getattr(pack, name), (name,), w.all)
    return w.problems


def message_problems(messages: Messages, pack: Pack) -> list[Problem]:
    """Missing message ids, placeholders the engine does not fill, and console terms in messages."""
    problems: list[Problem] = []
    root = ("messages",)
    for mid in sorted(set(MESSAGE_SLOTS) - set(messages.messages)):
        problems.append((root, f"missing message '{mid}' (the engine says it)"))
    w = _Wording(pack)
    for mid, value in messages.messages.items():
        texts = dict(value.by_idp) if isinstance(value, IdPText) else {None: str(value)}
        allowed = MESSAGE_SLOTS.get(mid)
        for key, text in texts.items():
            loc = root + ((mid,) if key is None else (mid, key))
            try:
                used = placeholders(text)
            except ValueError as exc:
                problems.append((loc, str(exc)))
                continue
            if allowed is not None and used - allowed:
                take = ", ".join("{" + a + "}" for a in sorted(allowed)) or "no placeholders"
                problems.append((loc, f"unknown placeholder(s) {', '.join('{' + u + '}' for u in sorted(used - allowed))}: '{mid}' takes {take}"))
        w.value(value, root + (mid,), w.all)
    return problems + w.problems


def classifier_problems(material: ClassifierMaterial, pack: Pack) -> list[Problem]:
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


_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Whitespace-folded text, for comparing console paths written with doubled spaces."""
    return _WS.sub(" ", text).strip()


def iter_texts(bundle: Bundle, idp: str | None) -> Iterator[tuple[str, str]]:
    """Every text the engine could show an admin of `idp`, as (where, text): flows, checks and answers
    that apply to `idp`, causes with their resolutions, errors, escalation and messages. For tests and
    `kb` tools; the engine picks texts one at a time with `Bundle.word`. With `idp` None, what an admin of
    the generic IdP sees (items scoped to named IdPs left out)."""
    w = bundle.word
    seen_as = idp if idp is not None else bundle.generic_idp
    for flow in bundle.flows.values():
        if isinstance(flow, Topic) and not flow.applies_to(seen_as):
            continue
        yield f"{flow.kind} {flow.id}.title", w(flow.title, idp)
        yield f"{flow.kind} {flow.id}.summary", w(flow.summary, idp)
        for check in bundle.checks_for(flow.id, seen_as):
            for f in ("title", "ask", "path", "look_for", "quote"):
                if getattr(check, f) is not None:
                    yield f"check {check.id}.{f}", w(getattr(check, f), idp)
            for a in check.answers:
                yield f"check {check.id}.answers.{a.id}.label", w(a.label, idp)
                yield f"check {check.id}.answers.{a.id}.finding", w(a.finding, idp)
        for wc in bundle.causes_for(flow.id, seen_as):
            cause = bundle.causes[wc.cause]
            res = cause.resolution
            yield f"cause {cause.id}.title", w(cause.title, idp)
            yield f"cause {cause.id}.summary", w(cause.summary, idp)
            if cause.unverified is not None:
                yield f"cause {cause.id}.unverified", w(cause.unverified, idp)
            yield f"cause {cause.id}.resolution.summary", w(res.summary, idp)
            for i, st in enumerate(bundle.steps(res, idp)):
                yield f"cause {cause.id}.resolution.steps[{i}].text", st.text
                if st.path:
                    yield f"cause {cause.id}.resolution.steps[{i}].path", st.path
            yield f"cause {cause.id}.resolution.verify", w(res.verify, idp)
            for i, n in enumerate(bundle.notes(res, idp)):
                yield f"cause {cause.id}.resolution.notes[{i}]", n
    for e in bundle.pack.errors:
        if e.applies_to(seen_as):
            yield f"error {e.id}.explain", w(e.explain, idp)
    esc = bundle.pack.escalation
    for f in ("intro", "portal_label", "guidance"):
        yield f"escalation.{f}", w(getattr(esc, f), idp)
    for fld in esc.fields:
        yield f"escalation.fields.{fld.id}.label", w(fld.label, idp)
        yield f"escalation.fields.{fld.id}.ask", w(fld.ask, idp)
    for i, a in enumerate(bundle.attachments(idp)):
        yield f"escalation.attachments[{i}]", a
    for mid, value in bundle.messages.messages.items():
        yield f"message {mid}", w(value, idp)
