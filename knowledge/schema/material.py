"""The pack's companion files beside the manifest: the classifier's matching material and the answer
lexicon."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from knowledge.schema.base import Id, Strict, Text


class Cue(Strict):
    """A phrase and how much finding it counts. Words are matched after typo and synonym folding and light
    stemming, in order, with a couple of other words allowed in between."""

    text: Text
    weight: float = 1.0
    # Cause phrases only: whether "no"/"not"/"never" shortly before the phrase cancels it. Off for words
    # that a negation rarely applies to ("why doesn't the department update" still names the department).
    negatable: bool = True


class SymptomMaterial(Strict):
    # How admins describe this symptom, in their words: nearest-neighbour material.
    examples: list[Text] = Field(default_factory=list)
    # Phrases that point at this symptom, with their weight.
    cues: list[Cue] = Field(default_factory=list)


# The knobs bot/classify/ reads from `thresholds`, with their defaults; classifier.yaml explains each.
CLASSIFIER_THRESHOLDS: dict[str, float] = {
    "domain": 2.5,
    "domain-slope": 1.2,
    "ambient": 0.6,
    "ambient-domain": 3.0,
    "min-evidence": 0.5,
    "vague-domain": 4.5,
    "temperature": 1.2,
    "clarify-ratio": 0.6,
    "directed-offer": 0.5,
    "knn-symptom": 4.0,
    "knn-domain": 4.0,
    "knn-floor": 0.2,
    "symptom-cue-domain": 0.5,
    "symptom-cue-domain-cap": 3.0,
    "signature-domain": 6.0,
    "cause-min": 2.0,
    "cause-margin": 1.0,
    "cause-symptom": 1.5,
    "cause-symptom-cap": 4.0,
    "report-cue-weight": 2.5,
    "cue-gap": 2,
    "wide-gap": 5,
    "cause-gap": 1,
    "negation-window": 3,
    "fuzzy-signature": 90,
    "fuzzy-min-chars": 28,
    "fuzzy-min-share": 0.45,
    "typo-min-len": 5,
    "typo-long-word": 9,
    "bigram-weight": 0.7,
    "max-words": 320,
    "full-count": 3.0,
    "shared-cause-prior": 0.2,
    "other-target": 4.0,
    "unanchored": 0.0,
}


class ClassifierMaterial(Strict):
    """Matching material for bot/classify/; see knowledge/classifier.yaml for what each part does."""

    # Spelling variants and synonyms folded before matching: canonical -> variants.
    synonyms: dict[Text, list[Text]] = Field(default_factory=dict)
    # The only words a misspelt word may be folded onto ("provsioning" -> "provisioning"): domain words admins
    # mistype. Kept explicit, because folding onto any known word turns real words into wrong ones
    # ("remote" -> "remove", "guess" -> "guest").
    typo_targets: list[Text] = Field(default_factory=list)
    # Words left out of nearest-neighbour similarity (they say nothing about the problem).
    stopwords: list[Text] = Field(default_factory=list)
    # Words that, shortly before a cause phrase, negate it ("no nested groups").
    negators: list[Text] = Field(default_factory=list)
    # Words and phrases that make a message about SCIM provisioning into Cato at all.
    domain_cues: list[Cue] = Field(default_factory=list)
    # Words that tie a message to Cato itself (cato, cma, scim, the playbook's own terms); a message with
    # none of them pays `thresholds.unanchored` off its domain score.
    anchors: list[Text] = Field(default_factory=list)
    # Words and phrases that pull a message away from the domain (other apps, SSO, VPN, pricing...).
    negative_cues: list[Cue] = Field(default_factory=list)
    symptoms: dict[Id, SymptomMaterial] = Field(default_factory=dict)
    # The same material for the pack's topics (reports beyond the playbook), by topic id.
    topics: dict[Id, SymptomMaterial] = Field(default_factory=dict)
    # Phrases that pin a cause (on top of the pack's report cues); a negative weight rules the cause out.
    cause_cues: dict[Id, list[Cue]] = Field(default_factory=dict)
    # Report cues of the pack that are too weak to pin a cause from an opening message on their own.
    ignore_report_cues: list[Text] = Field(default_factory=list)
    off_topic_examples: list[Text] = Field(default_factory=list)
    # Free-form thresholds the classifier reads (kept in data so tuning never touches code).
    thresholds: dict[Id, float] = Field(default_factory=dict)


class Lexicon(Strict):
    """How people say yes, no and not sure, and the conversation commands, in free text."""

    yes: list[Text]
    no: list[Text]
    unsure: list[Text]
    commands: dict[Literal["restart", "help", "escalate", "ticket", "cancel"], list[Text]]
    skip: list[Text]
    # How a console option is said to be off or on, after or before its name ("Create Users is unticked").
    setting_off: list[Text] = Field(default_factory=list)
    setting_on: list[Text] = Field(default_factory=list)
