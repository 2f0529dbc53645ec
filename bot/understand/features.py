"""Features of a message for the linear models: word unigrams and bigrams, character n-grams inside words,
and (optionally) the cue scorer's outputs as dense features. One function used both by training
(`scim-help kb train`, scikit-learn) and at run time (bot/understand/model.py, numpy), so the two can never
disagree."""

from __future__ import annotations

import re

# Pasted identifiers say nothing about the problem; their kind does.
_EMAIL = re.compile(r"[a-z0-9._%+'-]+@[a-z0-9.-]+\.[a-z]{2,}")
_URL = re.compile(r"(?:https?://|www\.)\S+")
_GUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_TIME = re.compile(r"\b\d{1,4}[-/:.]\d{1,2}[-/:.]\d{1,4}(?:[t ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?z?)?\b")
_APOS = re.compile(r"['\u2019\u2018`]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Work stays bounded on walls of pasted log: the problem is stated early, and error strings are matched
# separately over the whole message.
MAX_CHARS = 1200
MAX_WORDS = 200


def words(norm: str) -> list[str]:
    t = norm[:MAX_CHARS]
    if "@" in t:
        t = _EMAIL.sub(" zemailz ", t)
    if "http" in t or "www." in t:
        t = _URL.sub(" zurlz ", t)
    if "-" in t:
        t = _GUID.sub(" zguidz ", t)
    t = _TIME.sub(" ztimez ", t)
    t = _APOS.sub("", t)
    return _WORD.findall(t)[:MAX_WORDS]


def ngrams(norm: str, char_min: int = 2, char_max: int = 5) -> dict[str, float]:
    """Term counts: "w:" words, "b:" word pairs, "c:" character n-grams of each word padded with spaces
    (like scikit-learn's char_wb)."""
    ws = words(norm)
    out: dict[str, float] = {}
    prev = "<s>"
    for w in ws:
        k = "w:" + w
        out[k] = out.get(k, 0.0) + 1.0
        k = "b:" + prev + " " + w
        out[k] = out.get(k, 0.0) + 1.0
        prev = w
        padded = " " + w + " "
        n = len(padded)
        for size in range(char_min, char_max + 1):
            if size > n:
                break
            for i in range(n - size + 1):
                k = "c:" + padded[i : i + size]
                out[k] = out.get(k, 0.0) + 1.0
    if ws:
        k = "b:" + prev + " </s>"
        out[k] = out.get(k, 0.0) + 1.0
    return out


def prompt_tokens(kind: str | None, prompt_id: str | None) -> dict[str, float]:
    """What the bot asked, for the act model: its kind and id as features."""
    out = {"p:" + (kind or "none"): 1.0}
    if prompt_id:
        out["q:" + prompt_id] = 1.0
    return out
