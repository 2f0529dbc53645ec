"""A simulated admin who knows the true cause and answers every check truthfully.

Used by the conversation tests (every symptom x cause path of the pack) and by the engine benchmark
(questions-to-cause). It reads only the pack: for the pending check it picks the answer that confirms the
true cause; otherwise one that rules out (or makes less likely) a different cause without touching the
true one; otherwise "not sure". That rule is `admin_answer` in bot/engine/planner.py, which the engine also
plans its questions with: one rule, so the two cannot drift apart.
"""

from __future__ import annotations

from bot.engine.planner import admin_answer
from knowledge.schema import Answer, Bundle, Check


def truthful_answer(check: Check, truth: str) -> Answer:
    # The engine's own model of a truthful admin (bot/engine/planner.py): one rule, read from the pack.
    return admin_answer(check, truth)


def field_answer(field: str, case: dict) -> dict:
    """A turn answering a ticket-field question from a case's details."""
    if field == "account":
        return {"text": case.get("account") or "Contoso Ltd (account 4711)"}
    if field == "idp":
        return {"choice": f"idp:{case.get('idp') or 'entra'}"}
    if field == "upns":
        upns = case.get("upns") or ["jane.doe@contoso.com"]
        return {"text": ", ".join(upns)}
    groups = case.get("groups") or []
    return {"text": ", ".join(groups) if groups else "none"}


def pairs(bundle: Bundle) -> list[tuple[str, str]]:
    """Every (symptom, cause) path the pack supports."""
    return [(s.id, w.cause) for s in bundle.pack.symptoms for w in s.causes]
