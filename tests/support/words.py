"""The shipped pack's sentences and ticket labels, for renderer tests that need what a channel passes in
(renderers take their domain sentences from the pack, never from code)."""

from __future__ import annotations

from functools import cache
from typing import Any

from bot.ticket import field_labels
from knowledge.loader import load_pack
from knowledge.schema import Bundle


@cache
def _pack() -> Bundle:
    return load_pack()


def say(message_id: str, /, **fields: Any) -> str:
    return _pack().message(message_id, None, **fields)


def labels() -> dict[str, str]:
    return field_labels(_pack())
