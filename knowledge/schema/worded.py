"""Per-IdP wording: a text or list an admin reads, written once IdP-neutral or once per IdP.

A per-IdP mapping validates into an `IdPText` (a `str`) or an `IdPList` (a `list`) whose plain value is the
generic IdP's wording, so code that reads it as a plain value never shows one vendor's console to another
vendor's admin; `by_idp` keeps every IdP's own wording for `Bundle.word()` to pick from.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, Discriminator, PlainSerializer, Tag, ValidationInfo

from knowledge.schema.base import GENERIC_IDP, Id, Path, Text


class IdPText(str):
    """A text written per IdP. As a `str` it is the generic wording (safe to show anyone); `by_idp`
    holds every IdP's own wording. Use `Bundle.word()` to pick one."""

    by_idp: Mapping[str, str]

    def __new__(cls, by_idp: Mapping[str, str], generic: str = GENERIC_IDP) -> IdPText:
        value = by_idp.get(generic)
        if value is None:
            value = next(iter(by_idp.values()), "")
        obj = super().__new__(cls, value)
        obj.by_idp = MappingProxyType(dict(by_idp))
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # keep pickling (multiprocessing) working
        return (IdPText, (dict(self.by_idp),))


class IdPList(list[Any]):
    """A list written per IdP (resolution steps, notes). As a `list` it is the generic one."""

    by_idp: Mapping[str, list[Any]]

    def __init__(self, by_idp: Mapping[str, list[Any]], generic: str = GENERIC_IDP):
        value = by_idp.get(generic)
        if value is None:
            value = next(iter(by_idp.values()), [])
        super().__init__(value)
        self.by_idp = MappingProxyType({k: list(v) for k, v in by_idp.items()})

    def __reduce__(self) -> tuple[Any, ...]:
        return (IdPList, (dict(self.by_idp),))


def _generic(info: ValidationInfo) -> str:
    ctx = info.context if isinstance(info.context, dict) else {}
    return str(ctx.get("generic_idp") or GENERIC_IDP)


def to_text(value: Any, info: ValidationInfo) -> Any:
    return IdPText(value, _generic(info)) if isinstance(value, dict) else value


def to_list(value: Any, info: ValidationInfo) -> Any:
    return IdPList(value, _generic(info)) if isinstance(value, dict) else value


def dump(value: Any) -> Any:
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
    return dump(x)


def worded_kind(value: Any) -> str:
    """The discriminator of a Worded value: a mapping is "per-idp", anything else "neutral"."""
    return "per-idp" if isinstance(value, dict) else "neutral"


def _worded(inner: Any) -> Any:
    """`inner`, or a mapping IdP id -> `inner`. Loc parts "neutral"/"per-idp" are dropped by the loader."""
    return Annotated[
        Annotated[inner, Tag("neutral")] | Annotated[dict[Id, inner], Tag("per-idp")],
        Discriminator(worded_kind),
    ]


if TYPE_CHECKING:
    # What code reads: a per-IdP text is an `IdPText` (a str), a per-IdP list an `IdPList` (a list).
    Worded = str
    WordedPath = str
    WordedTexts = list[str]
else:
    # A user-visible text: one IdP-neutral string, or a mapping with every IdP of the pack as key.
    Worded = Annotated[_worded(Text), AfterValidator(to_text), PlainSerializer(dump)]
    WordedPath = Annotated[_worded(Path), AfterValidator(to_text), PlainSerializer(dump)]
    # A list shown to the admin: one neutral list (whose items may themselves be Worded), or one list per IdP.
    WordedTexts = Annotated[_worded(list[Text]), AfterValidator(to_list), PlainSerializer(dump)]
TAG_PARTS = frozenset({"neutral", "per-idp"})


def choose(by_idp: Mapping[str, Any], idp: str | None, generic: str) -> Any:
    """`idp`'s own entry, else the generic one, else the only one; KeyError when none fits."""
    if idp is not None and idp in by_idp:
        return by_idp[idp]
    if generic in by_idp:
        return by_idp[generic]
    if len(by_idp) == 1:
        return next(iter(by_idp.values()))
    raise KeyError(f"no wording for IdP '{idp}' and no generic ('{generic}') wording among {sorted(by_idp)}")
