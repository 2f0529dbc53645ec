"""Symptom classifier: which of the pack's symptoms a chat message describes, and — when the text itself
pins it — which cause.

No model runs here: everything is matching material in `knowledge/classifier.yaml` (and the pack's error
signatures and report cues) compiled once in `Classifier.__init__`, then matched with rapidfuzz and a few
dictionaries. The path of a message:

1. `bot.text.normalize` strips Slack/Teams markup and lower-cases.
2. Tokens (apostrophes dropped, so "can't" -> "cant"), typo folding of unknown words onto the material's
   typo targets (Damerau/OSA distance 1, or 2 for long words, via a deletion index verified with
   rapidfuzz), light stemming, then synonym folding on the stems ("azure ad" -> "entra", "licences" ->
   "license", "isn't" -> "not").
3. Weighted cue phrases are found in order, in one pass, with a small gap allowed between their words (a
   skipped negator breaks the match): domain cues, anchors (words tying the message to Cato), negative
   cues, per-symptom cues, per-cause evidence (with a negation check before it). A provisioning target
   that is none of our words ("SCIM to Zscaler") counts as another application.
4. Nearest neighbours: IDF-weighted cosine over unigrams and bigrams against the per-symptom examples and
   the off-topic examples.
5. Error signatures of the pack: `exact` ones verbatim (case-insensitive), `fuzzy` ones piece by piece
   with rapidfuzz's partial_ratio_alignment, over a long enough stretch of the signature.
6. A domain score (domain cues + capped symptom cues + signature - negative cues - no anchor + neighbour
   margin) gates the message; per-symptom scores (cues + neighbours + cause evidence) go through a
   softmax; a cause is reported only when evidence for it is strong, leads the others, is not negated and
   is consistent with the chosen symptom (a wrong cause is worse than none).

All weights and thresholds are in the YAML, so tuning never touches this package. Its rooms: `analyser`
(step 2), `cues` (3), `neighbours` (4), `signatures` (5), `material` (the words gathered from the YAML and
the pack), `classifier` (the `Classifier`: compiling, then step 6), `results` (what it answers).
"""

from __future__ import annotations

from bot.classify.analyser import stem
from bot.classify.classifier import Classifier
from bot.classify.results import Candidate, Classification, SignatureHit

# bot/understand/errors.py matches the error catalogue the way the classifier matches signatures.
from bot.classify.signatures import _chunks, _squash, fuzzy_score

__all__ = ["Candidate", "Classification", "Classifier", "SignatureHit", "_chunks", "_squash", "fuzzy_score", "stem"]
