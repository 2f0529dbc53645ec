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

All weights and thresholds are in the YAML, so tuning never touches this file.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from bot.text import normalize, strip_markup
from knowledge.schema import CLASSIFIER_THRESHOLDS, Bundle

# ---- results ---------------------------------------------------------------------------------------


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


# ---- text analysis ---------------------------------------------------------------------------------

_APOS = re.compile(r"['\u2019\u2018\u02bc`\u00b4]")
# Words: runs of letters or of digits ("aadsts50076" -> "aadsts", "50076"; "can't" -> "cant" first).
_TOKEN = re.compile(r"[^\W\d_]+|\d+")
# A capitalised name right before SCIM / provisioning: "Zoom SCIM", "Atlassian Cloud provisioning".
_NAME_BEFORE = re.compile(r"\b([A-Z][A-Za-z0-9]{1,40}) (?:SCIM|[Pp]rovisioning)\b")
# "350 of 350", "1000/1000": every seat taken (used as licence evidence, next to licence words).
_FULL_COUNT = re.compile(r"\b(\d{1,7})\s{0,3}(?:/|of)\s{0,3}\1\b")


def stem(word: str) -> str:
    """A deliberately tiny stemmer, applied alike to material and messages: plural, -ing, -ed, final e."""
    w = word
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss") and not w.endswith("us"):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        nxt: set[str] = set()
        for w in frontier:
            for i in range(len(w)):
                nxt.add(w[:i] + w[i + 1 :])
        out |= nxt
        frontier = nxt
    return out


class _Analyzer:
    """Turns normalised text into folded, stemmed tokens. Material and messages go through the same path,
    except that only messages get typo folding (material defines the vocabulary)."""

    def __init__(
        self,
        synonyms: dict[str, list[str]],
        vocabulary: Iterable[str],
        targets: Iterable[str],
        min_typo_len: int,
        long_word: int,
    ):
        self.min_typo_len = min_typo_len
        self.long_word = long_word
        # Synonym folding on the space-joined raw tokens, longest variant first.
        # Folding runs on stems, so one inflection of a variant covers the others ("any user" = "any users").
        table: dict[str, str] = {}
        for canonical, variants in synonyms.items():
            canon = " ".join(stem(w) for w in self.raw_tokens(canonical))
            for v in variants:
                key = " ".join(stem(w) for w in self.raw_tokens(v))
                if key and key != canon:
                    table[key] = canon
        self.synonyms = table
        if table:
            alts = sorted(table, key=len, reverse=True)
            self._syn_rx: re.Pattern[str] | None = re.compile(
                r"(?<![^ ])(?:" + "|".join(re.escape(a) for a in alts) + r")(?![^ ])"
            )
        else:
            self._syn_rx = None
        # Typo folding: known words are left alone; others may fold onto a target one or two edits away.
        self.vocab = {w for w in vocabulary if w}
        self._index: dict[str, list[str]] = defaultdict(list)
        targets = {w for w in targets if w}
        # Longer words cannot be a typo of any target: never generate their deletions (a 4000-letter
        # "word" would otherwise make millions).
        self.max_typo_len = max((len(w) for w in targets), default=0) + 2
        for w in sorted(targets):
            if len(w) < self.min_typo_len - 1 or w.isdigit():
                continue
            for d in _deletes(w, 2 if len(w) >= self.long_word else 1):
                self._index[d].append(w)
        self._typo_cache: dict[str, str] = {}
        self._stem_cache: dict[str, str] = {}

    @staticmethod
    def raw_tokens(text: str) -> list[str]:
        return _TOKEN.findall(_APOS.sub("", text.lower()))

    def correct(self, token: str) -> str:
        if (
            token in self.vocab
            or len(token) < self.min_typo_len
            or len(token) > self.max_typo_len
            or not token.isalpha()
        ):
            return token
        hit = self._typo_cache.get(token)
        if hit is not None:
            return hit
        depth = 2 if len(token) >= self.long_word else 1
        best: tuple[int, int, int, str] | None = None
        seen: set[str] = set()
        for d in _deletes(token, depth):
            for cand in self._index.get(d, ()):
                if cand in seen:
                    continue
                seen.add(cand)
                dist = OSA.distance(token, cand, score_cutoff=depth)
                if dist > depth:
                    continue
                key = (dist, 0 if cand[0] == token[0] else 1, abs(len(cand) - len(token)), cand)
                if best is None or key < best:
                    best = key
        out = best[3] if best else token
        if len(self._typo_cache) > 50_000:
            self._typo_cache.clear()
        self._typo_cache[token] = out
        return out

    def fold(self, tokens: list[str]) -> list[str]:
        if not tokens:
            return tokens
        joined = " ".join(tokens)
        if self._syn_rx is not None:
            joined = self._syn_rx.sub(lambda m: self.synonyms[m.group(0)], joined)
        return joined.split()

    def stem(self, token: str) -> str:
        s = self._stem_cache.get(token)
        if s is None:
            s = stem(token)
            if len(self._stem_cache) > 50_000:
                self._stem_cache.clear()
            self._stem_cache[token] = s
        return s

    def analyse(self, normalised: str, typo: bool = True) -> list[str]:
        raw = self.raw_tokens(normalised)
        if typo:
            raw = [self.correct(t) for t in raw]
        return self.fold([self.stem(t) for t in raw])


# ---- cue matching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cue:
    stems: tuple[str, ...]
    weight: float
    # What it counts for: "domain", "negative", a symptom id, "cause:<id>" (pack report cue: pins the cause
    # and steers the symptom), "pin:<id>" (classifier cause cue: pins the cause once the symptom is known),
    # "rules-out:<id>".
    label: str
    text: str
    gap: int
    negatable: bool = True
    rest: frozenset[str] = field(init=False, repr=False, compare=False)  # the words after the first

    def __post_init__(self) -> None:
        object.__setattr__(self, "rest", frozenset(self.stems[1:]))


class _CueSet:
    """Phrases matched in order over stems, allowing `gap` extra tokens in between (in total). A word
    skipped inside the phrase must not be a negator unless the phrase has one itself: "user create" does
    not match "user couldn't be created"."""

    def __init__(self, cues: list[_Cue], negators: frozenset[str] = frozenset()):
        self.negators = negators
        # Two phrases that fold to the same words count once, with the larger weight.
        best: dict[tuple[tuple[str, ...], str], _Cue] = {}
        for c in cues:
            if not c.stems:
                continue
            key = (c.stems, c.label)
            if key not in best or c.weight > best[key].weight:
                best[key] = c
        by_first: dict[str, list[_Cue]] = defaultdict(list)
        for c in best.values():
            by_first[c.stems[0]].append(c)
        self.by_first = dict(by_first)
        self.plain = {id(c): not (set(c.stems) & negators) for c in best.values()}

    def find(self, stems: list[str], positions: dict[str, list[int]]) -> list[tuple[_Cue, int, int]]:
        out: list[tuple[_Cue, int, int]] = []
        n = len(stems)
        by_first = self.by_first
        for first, starts in positions.items():
            cues = by_first.get(first)
            if not cues:
                continue
            for cue in cues:
                k = len(cue.stems)
                if k == 1:
                    out.append((cue, starts[0], starts[0] + 1))
                    continue
                if not cue.rest <= positions.keys():
                    continue
                limit = k + cue.gap
                guard = self.plain[id(cue)] and self.negators
                for p in starts:
                    j, q = 1, p + 1
                    end = min(n, p + limit)
                    while q < end and j < k:
                        if stems[q] == cue.stems[j]:
                            j += 1
                        elif guard and stems[q] in guard:
                            break
                        q += 1
                    if j == k:
                        out.append((cue, p, q))
                        break
        return out


# ---- nearest neighbours --------------------------------------------------------------------------------


class _Neighbours:
    """IDF-weighted cosine over unigram and bigram features, with an inverted index."""

    def __init__(self, docs: list[tuple[str, list[str]]], stopwords: set[str], bigram_weight: float):
        self.stop = stopwords
        self.bigram_weight = bigram_weight
        self.labels = [label for label, _ in docs]
        feats = [self._features(stems) for _, stems in docs]
        df: dict[str, int] = defaultdict(int)
        for f in feats:
            for k in f:
                df[k] += 1
        n = max(1, len(docs))
        self.idf = {k: math.log((n + 1) / (v + 0.5)) for k, v in df.items()}
        self.default_idf = math.log((n + 1) / 0.5)
        self.index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        # Features in more than a third of the examples say little and cost the most: not indexed (they
        # still count in each vector's norm).
        common = {k for k, v in df.items() if v > n / 3}
        for i, f in enumerate(feats):
            vec = self._weigh(f)
            for k, w in vec.items():
                if k not in common:
                    self.index[k].append((i, w))

    def _features(self, stems: list[str]) -> dict[str, float]:
        content = [s for s in stems if s not in self.stop]
        out: dict[str, float] = {}
        for s in content:
            out[s] = 1.0
        for a, b in zip(content, content[1:]):
            out[a + "_" + b] = self.bigram_weight
        return out

    def _weigh(self, feats: dict[str, float]) -> dict[str, float]:
        vec = {k: v * self.idf.get(k, self.default_idf) for k, v in feats.items()}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {k: w / norm for k, w in vec.items()}

    def best_by_label(self, stems: list[str]) -> dict[str, float]:
        """Highest cosine similarity per label."""
        feats = self._features(stems)
        if not feats:
            return {}
        q = self._weigh(feats)
        acc: dict[int, float] = defaultdict(float)
        for k, w in q.items():
            for i, dw in self.index.get(k, ()):
                acc[i] += w * dw
        best: dict[str, float] = {}
        for i, s in acc.items():
            label = self.labels[i]
            if s > best.get(label, 0.0):
                best[label] = s
        return best


# ---- signatures --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signature:
    cause: str
    text: str
    source: str
    exact: bool
    needle: str  # lower-cased, whitespace-squashed
    keys: frozenset[str]  # distinctive words that must be present before fuzzy matching is tried
    chunks: tuple[str, ...]  # the needle in pieces of a few words, each looked for on its own


def _chunks(needle: str, size: int = 24) -> tuple[str, ...]:
    """Cut a long signature at word boundaries into pieces of about `size` characters, so a retyped or
    truncated paste still matches piece by piece even when the admin's own words surround it."""
    words = needle.split(" ")
    out: list[str] = []
    cur: list[str] = []
    for w in words:
        cur.append(w)
        if len(" ".join(cur)) >= size:
            out.append(" ".join(cur))
            cur = []
    if cur:
        if out and len(" ".join(cur)) < size // 2:
            out[-1] = out[-1] + " " + " ".join(cur)
        else:
            out.append(" ".join(cur))
    return tuple(out)


_SQUASH = re.compile(r"\s+")
_SPACE_PUNCT = re.compile(r"\s*([=:])\s*")


def _squash(s: str) -> str:
    return _SPACE_PUNCT.sub(r" \1 ", _SQUASH.sub(" ", s.lower())).strip()


# ---- the classifier ------------------------------------------------------------------------------------

_DEFAULTS = CLASSIFIER_THRESHOLDS  # names and defaults live with the schema; the YAML explains them


def _sigmoid(x: float) -> float:
    if x < -40:
        return 0.0
    if x > 40:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


class Classifier:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        mat = bundle.classifier
        pack = bundle.pack
        t = dict(_DEFAULTS)
        t.update(mat.thresholds)
        self.t = t
        self.symptom_ids = [s.id for s in pack.symptoms]
        self.symptom_titles = {s.id: s.title for s in pack.symptoms}
        self.cause_titles = {c.id: c.title for c in pack.causes}
        # symptom -> {cause: prior weight}, and cause -> symptoms with their relative weight.
        self.sym_causes = {s.id: {w.cause: w.weight for w in s.causes} for s in pack.symptoms}
        self.cause_syms: dict[str, dict[str, float]] = defaultdict(dict)
        for sid, causes in self.sym_causes.items():
            for cid, w in causes.items():
                self.cause_syms[cid][sid] = w
        for syms in self.cause_syms.values():
            top = max(syms.values())
            for sid in syms:
                syms[sid] = syms[sid] / top

        # Typo folding: known words stay as they are; unknown ones may fold onto a typo target.
        texts: list[str] = []
        for canon, variants in mat.synonyms.items():
            texts.append(canon)
            texts.extend(variants)
        texts += [c.text for c in mat.domain_cues] + [c.text for c in mat.negative_cues]
        for sm in mat.symptoms.values():
            texts += sm.examples + [c.text for c in sm.cues]
        texts += mat.off_topic_examples + mat.stopwords + mat.negators
        for cause_cues in mat.cause_cues.values():
            texts += [c.text for c in cause_cues]
        for ch in pack.checks:
            for a in ch.answers:
                texts += a.report_cues
        for idp in pack.idps:
            texts += idp.aliases
        known: set[str] = set()
        for s in texts:
            known.update(_Analyzer.raw_tokens(normalize(s)))
        targets: set[str] = set()
        for s in mat.typo_targets:
            targets.update(_Analyzer.raw_tokens(normalize(s)))
        self.an = _Analyzer(mat.synonyms, known | targets, targets, int(t["typo-min-len"]), int(t["typo-long-word"]))

        def stems_of(text: str) -> tuple[str, ...]:
            return tuple(self.an.analyse(normalize(text), typo=False))

        gap = int(t["cue-gap"])
        wide = int(t["wide-gap"])

        def cue(text: str, weight: float, label: str, g: int, negatable: bool = True) -> _Cue:
            # "email ... empty": the words may be further apart (up to `wide-gap` words in between).
            if "..." in text:
                return _Cue(stems_of(text.replace("...", " ")), weight, label, text, max(g, wide), negatable)
            return _Cue(stems_of(text), weight, label, text, g, negatable)

        cgap = int(t["cause-gap"])
        self.negators = {st[0] for st in map(stems_of, mat.negators) if len(st) == 1}
        negators = frozenset(self.negators)
        cues: list[_Cue] = []
        for c in mat.domain_cues:
            cues.append(cue(c.text, c.weight, "domain", gap))
        for c in mat.negative_cues:
            cues.append(cue(c.text, c.weight, "negative", gap))
        for sid, sm in mat.symptoms.items():
            for c in sm.cues:
                cues.append(cue(c.text, c.weight, sid, gap))
        self._cue_list = cues

        # Cause evidence: the pack's report cues of answers that confirm a cause (and those that rule one
        # out, which cancel), plus the classifier's own cause cues.
        rc_w = t["report-cue-weight"]
        ccues: list[_Cue] = []
        ignored = {stems_of(x) for x in mat.ignore_report_cues}
        for ch in pack.checks:
            for a in ch.answers:
                if a.confirms:
                    for rc in a.report_cues:
                        if stems_of(rc) in ignored:
                            continue
                        ccues.append(_Cue(stems_of(rc), rc_w, "cause:" + a.confirms, rc, cgap))
                for cid in a.rules_out:
                    for rc in a.report_cues:
                        ccues.append(_Cue(stems_of(rc), 1.0, "rules-out:" + cid, rc, cgap))
        for cid, cl in mat.cause_cues.items():
            for c in cl:
                label = ("rules-out:" if c.weight < 0 else "pin:") + cid
                ccues.append(cue(c.text, abs(c.weight), label, cgap, c.negatable))
        self.cause_cues = _CueSet(ccues, negators)  # kept apart for inspection; matched in one pass below

        # "provisioning to Zscaler", "Dropbox SCIM": a provisioning target that is no word of ours is
        # another application. Our words: everything the in-domain material says (not the off-topic
        # examples or negative cues, which name other apps on purpose).
        ours: list[str] = list(mat.stopwords) + list(mat.negators) + list(mat.typo_targets)
        for canon, variants in mat.synonyms.items():
            ours += [canon, *variants]
        ours += [c.text for c in mat.domain_cues]
        for sm in mat.symptoms.values():
            ours += sm.examples + [c.text for c in sm.cues]
        for cause_cues in mat.cause_cues.values():
            ours += [c.text for c in cause_cues]
        for ch in pack.checks:
            for a in ch.answers:
                ours += a.report_cues
        for idp in pack.idps:
            ours += [idp.id, idp.name, *idp.aliases, idp.console]
        for sym in pack.symptoms:
            ours += [sym.title, sym.summary]
        for ch in pack.checks:
            ours += [ch.title, ch.ask, ch.path or "", ch.look_for or "", ch.quote or ""]
            ours += [a.label for a in ch.answers]
        for cause in pack.causes:
            ours += [cause.title, cause.summary, *(sg.text for sg in cause.signatures)]
            ours += [st.text for st in cause.resolution.steps] + [st.path or "" for st in cause.resolution.steps]
        self.our_stems = {st for x in ours for st in stems_of(x)}
        self.target_verbs = {stems_of(w)[0] for w in ("scim", "provision", "sync", "push")}
        # Words that tie a message to Cato; a message with none of them needs more evidence to be ours.
        anchors = [cue(a, 1.0, "anchor", gap) for a in mat.anchors]
        self.has_anchors = bool(anchors)
        # Everything is matched in one pass over the message's words.
        self.cues = _CueSet(self._cue_list + anchors + ccues, negators)
        self.target_preps = {stems_of(w)[0] for w in ("to", "into")}
        self.target_skip = {stems_of(w)[0] for w in ("the", "our", "a", "an", "their", "my", "new")}
        # "350 of 350 licences": evidence for the licence cause, when the pack has it.
        self._license_stem = stems_of("license")[0]
        self._full_count_cause = "insufficient-licenses" if "insufficient-licenses" in self.cause_titles else None

        # Neighbours.
        stop = {s for w in mat.stopwords for s in stems_of(w)}
        docs: list[tuple[str, list[str]]] = []
        for sid, sm in mat.symptoms.items():
            for ex in sm.examples:
                docs.append((sid, list(stems_of(ex))))
        for ex in mat.off_topic_examples:
            docs.append(("none", list(stems_of(ex))))
        self.nn = _Neighbours(docs, stop, t["bigram-weight"])

        # Signatures.
        sigs: list[_Signature] = []
        for cause in pack.causes:
            for sg in cause.signatures:
                needle = _squash(sg.text)
                words = [w for w in _Analyzer.raw_tokens(sg.text) if len(w) >= 5 and w not in mat.stopwords]
                sigs.append(
                    _Signature(
                        cause.id, sg.text, sg.source, sg.match == "exact", needle, frozenset(words[:12]), _chunks(needle)
                    )
                )
        self.signatures = sigs

        # IdP names and aliases (not ids: "other" is a word), longest first, on word boundaries.
        alias_list: list[tuple[str, str]] = []
        for idp in pack.idps:
            for alias in [idp.name, *idp.aliases]:
                alias_list.append((" ".join(_Analyzer.raw_tokens(normalize(alias))), idp.id))
        alias_list = [(a, i) for a, i in alias_list if a]
        alias_list.sort(key=lambda x: len(x[0]), reverse=True)
        self._idp_of = dict(alias_list[::-1])
        self._idp_rx = re.compile(
            r"(?<![^ ])(?:" + "|".join(re.escape(a) for a, _ in alias_list) + r")(?![^ ])"
        )

    # ---- parts ----------------------------------------------------------------------------------------

    def detect_idp(self, text: str) -> str | None:
        norm = normalize(text)
        return self._detect_idp_norm(norm)

    def _detect_idp_norm(self, norm: str) -> str | None:
        joined = " ".join(_Analyzer.raw_tokens(norm))
        counts: dict[str, int] = defaultdict(int)
        first: dict[str, int] = {}
        for m in self._idp_rx.finditer(joined):
            idp = self._idp_of[m.group(0)]
            counts[idp] += 1
            first.setdefault(idp, m.start())
        if not counts:
            return None
        # Most mentioned wins; on a tie the one named last (in "we moved from Okta to Entra" the
        # current one tends to come last).
        return max(counts, key=lambda i: (counts[i], first[i]))

    def match_signature(self, text: str) -> SignatureHit | None:
        plain = strip_markup(text)
        if not plain:
            return None
        return self._match_signature_plain(_squash(plain), set(_Analyzer.raw_tokens(plain)))

    def _match_signature_plain(self, hay: str, words: set[str]) -> SignatureHit | None:
        best: SignatureHit | None = None
        for sg in self.signatures:
            if sg.exact:
                if sg.needle in hay:
                    hit = SignatureHit(sg.cause, sg.text, sg.source, 1.0)
                    if best is None or len(sg.needle) > len(best.text):
                        best = hit
                continue
            if sg.keys and len(sg.keys & words) < min(2, len(sg.keys)):
                continue
            if sg.needle in hay:
                score = 1.0
            else:
                # Piece by piece: how much of the signature is in the message, nearly verbatim. Only the
                # span of each piece that aligned counts, so a short message inside a long piece covers
                # little ("invalid credentials" is not the whole Entra error).
                covered, total = 0, 0.0
                for chunk in sg.chunks:
                    al = fuzz.partial_ratio_alignment(chunk, hay, score_cutoff=self.t["fuzzy-signature"])
                    if al is None:
                        continue
                    span = al.src_end - al.src_start
                    covered += span
                    total += al.score * span
                need = max(min(self.t["fuzzy-min-chars"], len(sg.needle)), self.t["fuzzy-min-share"] * len(sg.needle))
                if covered < need:
                    continue
                score = (total / covered / 100.0) * min(1.0, covered / len(sg.needle) + 0.3)
            hit = SignatureHit(sg.cause, sg.text, sg.source, round(score, 3))
            if best is None or hit.score > best.score:
                best = hit
        return best

    def _other_target(self, stems: list[str], plain: str = "") -> str | None:
        """An unknown word as the object of provisioning ("scim to zscaler"), or a capitalised unknown name
        right before it ("Dropbox SCIM", "ServiceNow provisioning"): most likely another application."""
        ours, verbs = self.our_stems, self.target_verbs
        for m in _NAME_BEFORE.finditer(plain):
            name = self.an.stem(m.group(1).lower())
            if name not in ours:
                return name
        n = len(stems)
        for i, s in enumerate(stems):
            if s not in verbs:
                continue
            if i + 1 < n and stems[i + 1] in self.target_preps:
                j = i + 2
                while j < n and stems[j] in self.target_skip:
                    j += 1
                if j < n and stems[j] not in ours and stems[j].isalpha():
                    return stems[j]
        return None

    # ---- classify ----------------------------------------------------------------------------------------

    def classify(self, text: str) -> Classification:
        return self.classify_plain(strip_markup(text))

    def classify_plain(self, plain: str) -> Classification:
        """`classify` of text already through `strip_markup` (the reader normalises once per message)."""
        t = self.t
        norm = plain.lower()
        idp = self._detect_idp_norm(norm) if norm else None
        # Cap the words analysed: the problem is stated early, and work stays bounded on pasted walls of
        # text (signatures are still looked for in the whole message).
        stems = self.an.analyse(norm)[: int(t["max-words"])] if norm else []
        if not stems:
            return Classification(None, None, 0.0, [], False, [], idp, None)

        positions: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(stems):
            positions[s].append(i)

        evidence: list[tuple[str, str, float]] = []
        dom = neg = 0.0
        sym_cue = {s: 0.0 for s in self.symptom_ids}
        anchored = False
        found: list[tuple[_Cue, int, int]] = []  # cause phrases, handled below
        for hit in self.cues.find(stems, positions):
            cue = hit[0]
            if cue.label == "anchor":
                anchored = True
                continue
            if cue.label.startswith(("cause:", "pin:", "rules-out:")):
                found.append(hit)
                continue
            if cue.label == "domain":
                dom += cue.weight
            elif cue.label == "negative":
                neg += cue.weight
            elif cue.label in sym_cue:
                sym_cue[cue.label] += cue.weight
            evidence.append((cue.label, cue.text, cue.weight))

        if self.has_anchors and not anchored:
            neg += t["unanchored"]
            evidence.append(("negative", "no word that ties it to Cato", t["unanchored"]))

        other = self._other_target(stems, plain)
        if other:
            neg += t["other-target"]
            evidence.append(("negative", f"provisioning target '{other}' is another application", t["other-target"]))

        # Cause evidence, minus negated phrases and phrases inside a "rules out" phrase.
        spans_out: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for cue, a, b in found:
            if cue.label.startswith("rules-out:"):
                spans_out[cue.label[10:]].append((a, b))
        cause_ev: dict[str, float] = defaultdict(float)  # all evidence for a cause
        steer_ev: dict[str, float] = defaultdict(float)  # the part that may steer the symptom
        ruled_out: set[str] = set()
        window = int(t["negation-window"])
        for cue, a, b in found:
            if cue.label.startswith("rules-out:"):
                ruled_out.add(cue.label[10:])
                continue
            kind, _, cid = cue.label.partition(":")
            if any(x <= a and b <= y for x, y in spans_out.get(cid, ())):
                continue
            if cue.negatable and cue.stems[0] not in self.negators and any(
                stems[j] in self.negators for j in range(max(0, a - window), a)
            ):
                continue
            cause_ev[cid] += cue.weight
            if kind == "cause":
                steer_ev[cid] += cue.weight
            evidence.append(("cause " + cid, cue.text, cue.weight))
        for cid in ruled_out:
            if cid in cause_ev and cause_ev[cid] < 2 * t["report-cue-weight"]:
                del cause_ev[cid]
                steer_ev.pop(cid, None)

        if self._full_count_cause and self._license_stem in positions and _FULL_COUNT.search(plain):
            cause_ev[self._full_count_cause] += t["full-count"]
            steer_ev[self._full_count_cause] += t["full-count"]
            evidence.append(("cause " + self._full_count_cause, "every licence taken", t["full-count"]))

        sig = self._match_signature_plain(_squash(plain), set(_Analyzer.raw_tokens(plain)))
        if sig is not None:
            cause_ev[sig.cause] += 10.0 * sig.score
            steer_ev[sig.cause] += 10.0 * sig.score
            evidence.append(("signature " + sig.cause, sig.text[:60], 10.0 * sig.score))

        nn = self.nn.best_by_label(stems)
        floor = t["knn-floor"]

        def nnv(label: str) -> float:
            v = nn.get(label, 0.0)
            return max(0.0, v - floor) / (1.0 - floor)

        nn_in = max((nnv(s) for s in self.symptom_ids), default=0.0)
        nn_off = nnv("none")

        best_sym_cue = max(sym_cue.values())
        domain_score = (
            dom
            + min(t["symptom-cue-domain"] * best_sym_cue, t["symptom-cue-domain-cap"])
            - neg
            + t["knn-domain"] * (nn_in - nn_off)
            + (t["signature-domain"] * sig.score if sig else 0.0)
        )
        in_domain = domain_score >= t["domain"]
        p_domain = _sigmoid((domain_score - t["domain"]) * t["domain-slope"] + 1.0)

        # Symptom scores.
        scores: dict[str, float] = {}
        cap = t["cause-symptom-cap"]
        for sid in self.symptom_ids:
            score = sym_cue[sid] + t["knn-symptom"] * nnv(sid)
            for cid, ev in steer_ev.items():
                rel = self.cause_syms.get(cid, {}).get(sid)
                if rel:
                    # Shared causes barely prefer a symptom: the text decides.
                    prior = t["shared-cause-prior"]
                    score += t["cause-symptom"] * min(ev, cap) * ((1 - prior) + prior * rel)
            scores[sid] = max(0.0, score)

        # A signature pins its cause: only symptoms that list it stay in the running.
        if sig is not None and in_domain:
            allowed = set(self.cause_syms.get(sig.cause, {}))
            if allowed and any(scores[s] > 0 for s in allowed):
                scores = {s: (v if s in allowed else 0.0) for s, v in scores.items()}
            elif allowed:
                top_allowed = max(allowed, key=lambda s: self.cause_syms[sig.cause][s])
                scores = {s: (1.0 if s == top_allowed else 0.0) for s in scores}

        temp = t["temperature"]
        mx = max(scores.values())
        exps = {s: math.exp((v - mx) / temp) if v > 0 else 0.0 for s, v in scores.items()}
        z = sum(exps.values()) or 1.0
        probs = {s: e / z for s, e in exps.items()}
        ranked = sorted((s for s in self.symptom_ids if scores[s] > 0), key=lambda s: -probs[s])
        # Candidates: every symptom with a score that survives rounding in the JSON (3 decimals).
        candidates = [Candidate(s, round(probs[s] * p_domain, 4)) for s in ranked[:5] if probs[s] * p_domain >= 0.0005]

        top = ranked[0] if ranked else None
        if in_domain and (top is None or scores[top] < t["min-evidence"]) and domain_score < t["vague-domain"]:
            # Nothing points at a symptom and the domain evidence is thin: not ours ("a new Cato socket").
            in_domain = False
        symptom = top if (in_domain and top is not None and scores[top] >= t["min-evidence"]) else None
        confidence = p_domain * probs[top] if top else 0.0
        if symptom is None and not in_domain:
            confidence = min(confidence, p_domain)

        clarify: list[str] = []
        if in_domain:
            if top is None or scores[top] < t["min-evidence"]:
                # In the domain but nothing points anywhere ("scim is broken, help"): offer the three
                # symptoms the message is least far from, so the engine asks instead of giving up.
                order = {sid: i for i, sid in enumerate(self.symptom_ids)}
                vague = sorted(self.symptom_ids, key=lambda s: (-scores[s], -nn.get(s, 0.0), order[s]))
                clarify = vague[:3]
            else:
                close = [s for s in ranked[:3] if probs[s] >= t["clarify-ratio"] * probs[top]]
                if len(close) >= 2:
                    clarify = close

        # The cause: strong, unopposed evidence consistent with the symptom.
        cause = None
        if symptom is not None and cause_ev:
            by_evidence = sorted(cause_ev.items(), key=lambda kv: -kv[1])
            cid, ev = by_evidence[0]
            runner = by_evidence[1][1] if len(by_evidence) > 1 else 0.0
            if ev >= t["cause-min"] and ev - runner >= t["cause-margin"] and cid in self.sym_causes[symptom]:
                cause = cid
        if sig is not None and symptom is not None and sig.cause in self.sym_causes[symptom]:
            cause = sig.cause

        return Classification(
            symptom=symptom,
            cause=cause,
            confidence=round(confidence, 4),
            candidates=candidates,
            in_domain=in_domain,
            clarify=clarify,
            idp=idp,
            signature=sig if in_domain else None,
            domain_score=round(domain_score, 3),
            evidence=tuple(evidence),
            ruled_out=tuple(sorted(c for c in ruled_out if c not in cause_ev)),
            cause_scores=tuple(sorted(cause_ev.items(), key=lambda kv: -kv[1])),
            pasted=sig,
        )

    # ---- presentation -------------------------------------------------------------------------------------

    def ambient_ok(self, c: Classification) -> bool:
        return bool(
            c.in_domain
            and c.symptom is not None
            and not c.clarify
            and c.confidence >= self.t["ambient"]
            and c.domain_score >= self.t["ambient-domain"]
        )

    def offer(self, c: Classification) -> list[str]:
        """Symptoms worth offering someone who addressed the bot directly with a message the domain gate
        turned down ("okta users missing" never names Cato or SCIM): in a DM with scim-help the context
        supplies what the words leave out, so a plausible candidate gets a "did you mean" instead of a
        brush-off. Empty when nothing is plausible."""
        if c.symptom or c.clarify or not c.candidates or c.candidates[0].score < self.t["directed-offer"]:
            return []
        top = c.candidates[0].score
        return [x.symptom for x in c.candidates[:3] if x.score >= top * self.t["clarify-ratio"]]

    def explain(self, c: Classification) -> str:
        lines: list[str] = []
        if c.symptom:
            lines.append(f"symptom:    {c.symptom} — {self.symptom_titles.get(c.symptom, '')}")
        elif c.in_domain:
            lines.append("symptom:    (unsure) — looks like SCIM provisioning, but which problem is unclear")
        else:
            lines.append("symptom:    none — does not look like a Cato SCIM provisioning problem")
        if c.cause:
            lines.append(f"cause:      {c.cause} — {self.cause_titles.get(c.cause, '')}")
        else:
            lines.append("cause:      (not pinned by the text)")
        lines.append(f"confidence: {c.confidence:.2f}   in domain: {'yes' if c.in_domain else 'no'} (score {c.domain_score:.1f})")
        if c.idp:
            lines.append(f"idp:        {c.idp}")
        if c.signature:
            lines.append(f"signature:  \"{c.signature.text}\" ({c.signature.source}; score {c.signature.score:.2f})")
        if c.candidates:
            lines.append("candidates:")
            for cand in c.candidates:
                lines.append(f"  {cand.score:5.2f}  {cand.symptom}")
        if c.clarify:
            lines.append("would ask:  which of these fits best? " + ", ".join(c.clarify))
        if c.evidence:
            lines.append("evidence:")
            for label, phrase, weight in c.evidence[:24]:
                lines.append(f"  {label}: {phrase} ({weight:+g})")
        return "\n".join(lines)
