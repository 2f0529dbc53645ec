"""Console ownership and message slots: no text an admin of one IdP can be shown carries another IdP's
console terms; a per-IdP text has every IdP's wording; messages define every slot with only the
placeholders code fills in.

Who can see a text: everyone, unless the item it belongs to is scoped with `idps:` (a check, cause or
topic only some consoles have) or `idp:` (an error string only one console prints); a plain string scoped
to one IdP may use that IdP's terms.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from knowledge.schema.base import Problem
from knowledge.schema.messages import MESSAGE_SLOTS, Messages, placeholders
from knowledge.schema.models import ErrorEntry
from knowledge.schema.pack import Pack
from knowledge.schema.worded import IdPList, IdPText


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
        worded: tuple[str, ...] = getattr(type(obj), "__worded__", ())
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
                    self.text(str(v), loc + (k,), frozenset({k}))
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
