"""What the classifier answers: `Classification`, with its `Candidate` symptoms and `SignatureHit`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    symptom: str
    score: float


@dataclass(frozen=True)
class SignatureHit:
    cause: str
    text: str
    source: str
    score: float


@dataclass(frozen=True)
class Classification:
    symptom: str | None
    cause: str | None
    confidence: float
    candidates: list[Candidate]
    in_domain: bool
    clarify: list[str]
    idp: str | None
    signature: SignatureHit | None
    # Diagnostics for `explain` and tuning; not part of the JSON contract.
    domain_score: float = 0.0
    # (what it counts for, phrase, weight) for each piece of evidence found; `explain` shows them.
    evidence: tuple[tuple[str, str, float], ...] = field(default_factory=tuple)
    # Causes a plain statement in the text rules out ("we have plenty of licences").
    ruled_out: tuple[str, ...] = ()
    # Evidence per cause found in the text (statements and signature), before the symptom filter.
    cause_scores: tuple[tuple[str, float], ...] = ()
    # The pasted error signature found, whether or not the message counted as in the domain.
    pasted: SignatureHit | None = None

    def to_json(self) -> dict:
        return {
            "symptom": self.symptom,
            "cause": self.cause,
            "confidence": round(self.confidence, 3),
            "candidates": [{"symptom": c.symptom, "score": round(c.score, 3)} for c in self.candidates],
        }
