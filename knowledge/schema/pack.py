"""The pack itself and the loaded `Bundle`: the manifest with its companions, fast lookups, and the
accessors that pick each text in the admin's IdP's words."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from knowledge.schema.base import GENERIC_IDP, Id, Strict, Text, squash
from knowledge.schema.material import ClassifierMaterial, Lexicon
from knowledge.schema.messages import MESSAGE_SLOTS, Messages, placeholders
from knowledge.schema.models import (
    Answer,
    Cause,
    Check,
    ErrorEntry,
    Escalation,
    Flow,
    IdP,
    Resolution,
    Signature,
    Step,
    Symptom,
    TicketField,
    Topic,
    WeightedCause,
    resolve_steps,
)
from knowledge.schema.worded import IdPList, IdPText, choose


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
    def _signatures(self) -> Pack:
        for cause in self.causes:
            sigs = tuple(
                Signature(text=m, source=e.source, match=e.kind)
                for e in self.errors
                if e.cause == cause.id and e.pins
                for m in e.match
            )
            cause.__dict__["_sigs"] = sigs
        return self


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
            return choose(value.by_idp, idp, self.generic_idp)
        if isinstance(value, Mapping):
            return choose(value, idp, self.generic_idp)
        return str(value)

    def words(self, value: Any, idp: str | None = None) -> list[str]:
        """A Worded list (resolution notes, escalation attachments) in the words of `idp`."""
        if value is None:
            return []
        if isinstance(value, IdPList):
            value = choose(value.by_idp, idp, self.generic_idp)
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
    for i, shot in enumerate(bundle.attachments(idp)):
        yield f"escalation.attachments[{i}]", shot
    for mid, value in bundle.messages.messages.items():
        yield f"message {mid}", w(value, idp)
