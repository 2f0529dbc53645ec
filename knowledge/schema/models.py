"""The pack manifest's models below the `Pack`: IdPs, checks and their answers, causes and resolutions,
flows (symptoms and topics), the error catalogue and the escalation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Discriminator, Field, PlainSerializer, Tag, model_validator

from knowledge.schema.base import GENERIC_IDP, Id, Strict, Text, unique
from knowledge.schema.worded import IdPList, IdPText, Worded, WordedPath, WordedTexts, choose, dump, to_list, worded_kind


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


if TYPE_CHECKING:
    WordedSteps = list[Step]  # an `IdPList` when written per IdP
else:
    WordedSteps = Annotated[
        Annotated[list[Step], Tag("neutral")] | Annotated[dict[Id, list[Step]], Tag("per-idp")],
        Discriminator(worded_kind),
        AfterValidator(to_list),
        PlainSerializer(dump),
    ]


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
    def _leads_somewhere(self) -> Answer:
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


class Setting(Strict):
    """A console option a check asks about, so a report that says what state it is in answers the check
    ("Create Users is unticked", "we never enabled Deactivate Users")."""

    # The option as the consoles print it; only names specific enough not to occur in passing.
    labels: list[Text] = Field(min_length=1)
    off: Id  # the answer meaning the option is off (unticked, disabled)
    on: Id | None = None  # the answer meaning it is on


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
    setting: Setting | None = None
    __worded__ = ("title", "ask", "path", "look_for", "quote")

    @model_validator(mode="before")
    @classmethod
    def _no_variants(cls, data: Any) -> Any:
        if isinstance(data, dict) and "variants" in data:
            raise ValueError("`variants` is gone: write ask/path/look_for/… as a mapping with every IdP id as key")
        return data

    @model_validator(mode="after")
    def _valid(self) -> Check:
        unique([a.id for a in self.answers], f"answers of check '{self.id}'")
        _need_sources(self, "check")
        if self.where == "cma" and isinstance(self.path, IdPText):
            raise ValueError(f"check '{self.id}' is on the CMA (`where: cma`): its path is one neutral string")
        if self.setting is not None:
            ids = {a.id for a in self.answers}
            for state in (self.setting.off, self.setting.on):
                if state is not None and state not in ids:
                    raise ValueError(f"check '{self.id}': setting names answer '{state}', which it does not have")
        return self

    def applies_to(self, idp: str | None) -> bool:
        """Whether an admin of `idp` can do this check (True while the IdP is unknown)."""
        return idp is None or self.idps is None or idp in self.idps


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
    def _some_steps(self) -> Resolution:
        lists = self.steps.by_idp.values() if isinstance(self.steps, IdPList) else [self.steps]
        if any(len(x) == 0 for x in lists):
            raise ValueError("a resolution needs at least one step (for every IdP)")
        return self


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
    def _valid(self) -> Cause:
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

    kind: ClassVar[str] = "flow"  # "symptom" or "topic" in the subclasses
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
    def _unique_refs(self) -> Flow:
        unique(self.checks, f"checks of '{self.id}'")
        unique([c.cause for c in self.causes], f"causes of '{self.id}'")
        for cid in self.ask_first:
            if cid not in self.checks:
                raise ValueError(f"ask_first names '{cid}', which is not among the checks of '{self.id}'")
        return self


class Symptom(Flow):
    kind: ClassVar[str] = "symptom"

    @model_validator(mode="after")
    def _has_checks(self) -> Symptom:
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
    def _one_target(self) -> ErrorEntry:
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


def resolve_steps(steps: Any, idp: str | None, generic: str = GENERIC_IDP) -> list[Step]:
    """Steps in the words of `idp` (plain strings), from a neutral or per-IdP step list."""
    lst = choose(steps.by_idp, idp, generic) if isinstance(steps, IdPList) else steps
    out = []
    for st in lst:
        text = choose(st.text.by_idp, idp, generic) if isinstance(st.text, IdPText) else st.text
        path = choose(st.path.by_idp, idp, generic) if isinstance(st.path, IdPText) else st.path
        out.append(Step.model_construct(text=str(text), path=None if path is None else str(path)))
    return out
