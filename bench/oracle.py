"""A simulated admin who knows the true cause and answers every check truthfully.

Used by the conversation tests (every symptom x cause path of the pack) and by the engine benchmark
(questions-to-cause). It reads only the pack: for the pending check it picks the answer that confirms the
true cause; otherwise one that rules out (or makes less likely) a different cause without touching the
true one; otherwise "not sure".
"""

from __future__ import annotations

from knowledge.schema import Answer, Bundle, Check


def truthful_answer(check: Check, truth: str) -> Answer:
    confirming = [a for a in check.answers if a.confirms == truth]
    if confirming:
        return confirming[0]

    def harmless(a: Answer) -> bool:
        return truth not in a.rules_out and (a.confirms is None) and a.boost.get(truth, 1.0) >= 1.0

    informative = [a for a in check.answers if harmless(a) and (a.rules_out or a.boost)]
    if informative:
        # Prefer the answer that favours the truth most.
        return max(informative, key=lambda a: (a.boost.get(truth, 1.0), len(a.rules_out)))
    unsure = [a for a in check.answers if a.kind == "unsure"]
    if unsure:
        return unsure[0]
    return min(check.answers, key=lambda a: a.boost.get(truth, 1.0) if a.confirms is None else 0)


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
