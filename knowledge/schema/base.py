"""What every part of the pack schema shares: id and text types, the strict base model, the problem
tuple that graph and wording checks report, and two small helpers."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)]
# Message ids may group with dots: "ticket.header".
MessageId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+([-.][a-z0-9]+)*$", max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
# A console path as the console writes it: "Monitoring > Events". Kept exact; only outer spaces trimmed.
Path = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]

GENERIC_IDP = "other"

Problem = tuple[tuple[str | int, ...], str]  # (path inside the file, message)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields holding text an admin reads (Worded, WordedPath, WordedTexts, or Step lists): walked by
    # `wording_problems()`.
    __worded__: ClassVar[tuple[str, ...]] = ()


def unique(ids: list[str], what: str) -> None:
    """Raises ValueError naming the first id that appears twice."""
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate id '{i}' in {what}")
        seen.add(i)


_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Whitespace-folded text, for comparing console paths written with doubled spaces."""
    return _WS.sub(" ", text).strip()
