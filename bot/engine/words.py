"""Every text the engine shows, looked up in the knowledge pack for the admin's IdP.

The engine writes no sentence of its own: messages, check and answer wording, resolution steps all come
from the pack (`messages:` and the per-IdP fields), so a different pack speaks of a different domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from knowledge.schema import Answer, Bundle, Cause, Check, IdPList, IdPText


class Words:
    def __init__(self, bundle: Bundle):
        self.kb = bundle

    def say(self, message_id: str, idp: str | None = None, /, **fields: Any) -> str:
        return self.kb.message(message_id, idp, **fields)

    def word(self, value: Any, idp: str | None) -> str:
        return self.kb.word(value, idp) if value is not None else ""

    def check_title(self, check: Check, idp: str | None) -> str:
        return self.word(check.title, idp)

    def answer_label(self, answer: Answer, idp: str | None) -> str:
        return self.word(answer.label, idp)

    def finding(self, answer: Answer, idp: str | None) -> str:
        return self.word(answer.finding, idp)

    def cause_title(self, cause: Cause, idp: str | None) -> str:
        return self.word(cause.title, idp)

    def idp_specific(self, *values: Any) -> bool:
        """Whether any of these texts differs by IdP (then the IdP must be known before it is shown)."""
        return any(isinstance(v, (IdPText, IdPList, Mapping)) or (isinstance(v, list) and self.idp_specific(*v)) for v in values if v is not None)
