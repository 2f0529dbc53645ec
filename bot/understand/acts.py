"""What a message does in the conversation (Reading.act): rules over the reader's phrase material, with a
learned act model (bot/understand/model.py) deciding where no rule is sure."""

from __future__ import annotations

import re

from bot.understand import lexicon as lx
from bot.understand.reading import Context

_NEG_BEFORE = re.compile(r"(?:\b(?:not|never|no|isn'?t|aren'?t|wasn'?t|weren'?t|haven'?t|hasn'?t|didn'?t|doesn'?t|don'?t|nobody|none)\b)[^.!?\n]{0,25}$")


def _hit(rx: re.Pattern[str], norm: str) -> bool:
    for m in rx.finditer(norm):
        if not _NEG_BEFORE.search(norm[max(0, m.start() - 30) : m.start()]):
            return True
    return False


def is_question(norm: str) -> bool:
    t = norm.strip()
    if not t:
        return False
    if lx.QUESTION_START.match(t) and ("?" in t or len(t.split()) <= 8):
        return True
    if "?" in t and lx.QUESTION_ANYWHERE.search(t):
        return True
    return bool(lx.QUESTION_ANYWHERE.search(t)) and not t.endswith(".")


SIGNAL_CHARS = 400


def rule_signals(norm: str, context: Context) -> dict[str, bool]:
    norm = norm[:SIGNAL_CHARS]
    fixed = _hit(lx.FIXED, norm)
    still = bool(lx.STILL_BROKEN.search(norm))
    if fixed and still:
        # "still nothing" beats "coming in"; "it's working now, nothing still missing" is rare.
        fixed = False
    return {
        # An opening is a report whatever it says about earlier attempts; complaints are about the bot's step.
        "complaint": context.pending is not None and bool(lx.COMPLAINT.search(norm)),
        "question": is_question(norm),
        "fixed": fixed,
        "still": still,
        "skip": bool(lx.SKIP.match(norm.strip()) or lx.SKIP_ANYWHERE.search(norm)),
    }
