"""`Classifier`: the material compiled once from the bundle, then one message's evidence weighed into a
`Classification` (the steps are told in bot/classify/__init__.py)."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from bot.classify.analyser import _Analyzer
from bot.classify.cues import _Cue, _CueSet
from bot.classify.material import idp_aliases, our_words, vocabulary
from bot.classify.neighbours import _Neighbours
from bot.classify.results import Candidate, Classification, SignatureHit
from bot.classify.signatures import _squash, best_signature, compile_signatures
from bot.text import normalize, strip_markup
from knowledge.schema import CLASSIFIER_THRESHOLDS, Bundle, ClassifierMaterial

# A capitalised name right before SCIM / provisioning: "Zoom SCIM", "Atlassian Cloud provisioning".
_NAME_BEFORE = re.compile(r"\b([A-Z][A-Za-z0-9]{1,40}) (?:SCIM|[Pp]rovisioning)\b")
# "350 of 350", "1000/1000": every seat taken (used as licence evidence, next to licence words).
_FULL_COUNT = re.compile(r"\b(\d{1,7})\s{0,3}(?:/|of)\s{0,3}\1\b")

_DEFAULTS = CLASSIFIER_THRESHOLDS  # names and defaults live with the schema; the YAML explains them


def _sigmoid(x: float) -> float:
    if x < -40:
        return 0.0
    if x > 40:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class _Tally:
    """One message's evidence as it is read, kept in the order it was found: `explain` shows it so."""

    sym_cue: dict[str, float]
    evidence: list[tuple[str, str, float]] = field(default_factory=list)
    dom: float = 0.0
    neg: float = 0.0
    cause_ev: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # all evidence for a cause
    steer_ev: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # the part that may steer the symptom
    ruled_out: set[str] = field(default_factory=set)

    def steering(self, cause: str, weight: float, label: str, text: str) -> None:
        """Evidence for a cause that also steers the symptom (every licence taken, a pasted signature)."""
        self.cause_ev[cause] += weight
        self.steer_ev[cause] += weight
        self.evidence.append((label, text, weight))


class Classifier:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        mat = bundle.classifier
        t = dict(_DEFAULTS)
        t.update(mat.thresholds)
        self.t = t
        self._index_pack(bundle)
        # Typo folding: known words stay as they are; unknown ones may fold onto a typo target.
        known, targets = vocabulary(bundle)
        self.an = _Analyzer(mat.synonyms, known | targets, targets, int(t["typo-min-len"]), int(t["typo-long-word"]))
        self.negators = {st[0] for st in map(self._stems_of, mat.negators) if len(st) == 1}
        self._compile_cues(bundle)
        self._compile_targets(bundle)
        # "350 of 350 licences": evidence for the licence cause, when the pack has it.
        self._license_stem = self._stems_of("license")[0]
        self._full_count_cause = "insufficient-licenses" if "insufficient-licenses" in self.cause_titles else None
        self.nn = self._compile_neighbours(mat)
        self.signatures = compile_signatures(bundle)
        # IdP names and aliases, longest first, on word boundaries.
        alias_list = idp_aliases(bundle)
        self._idp_of = dict(alias_list[::-1])
        self._idp_rx = re.compile(
            r"(?<![^ ])(?:" + "|".join(re.escape(a) for a, _ in alias_list) + r")(?![^ ])"
        )

    # ---- compiling the material --------------------------------------------------------------------------

    def _index_pack(self, bundle: Bundle) -> None:
        pack = bundle.pack
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

    def _stems_of(self, text: str) -> tuple[str, ...]:
        return tuple(self.an.analyse(normalize(text), typo=False))

    def _cue(self, text: str, weight: float, label: str, gap: int, negatable: bool = True) -> _Cue:
        # "email ... empty": the words may be further apart (up to `wide-gap` words in between).
        if "..." in text:
            wide = int(self.t["wide-gap"])
            return _Cue(self._stems_of(text.replace("...", " ")), weight, label, text, max(gap, wide), negatable)
        return _Cue(self._stems_of(text), weight, label, text, gap, negatable)

    def _compile_cues(self, bundle: Bundle) -> None:
        mat = bundle.classifier
        gap = int(self.t["cue-gap"])
        negators = frozenset(self.negators)
        cues: list[_Cue] = []
        for c in mat.domain_cues:
            cues.append(self._cue(c.text, c.weight, "domain", gap))
        for c in mat.negative_cues:
            cues.append(self._cue(c.text, c.weight, "negative", gap))
        for sid, sm in mat.symptoms.items():
            for c in sm.cues:
                cues.append(self._cue(c.text, c.weight, sid, gap))
        self._cue_list = cues
        ccues = self._cause_cue_list(bundle)
        self.cause_cues = _CueSet(ccues, negators)  # kept apart for inspection; matched in one pass below
        # Words that tie a message to Cato; a message with none of them needs more evidence to be ours.
        anchors = [self._cue(a, 1.0, "anchor", gap) for a in mat.anchors]
        self.has_anchors = bool(anchors)
        # Everything is matched in one pass over the message's words; the order of this list is the order
        # evidence is reported in.
        self.cues = _CueSet(self._cue_list + anchors + ccues, negators)

    def _cause_cue_list(self, bundle: Bundle) -> list[_Cue]:
        """Cause evidence: the pack's report cues of answers that confirm a cause (and those that rule one
        out, which cancel), plus the classifier's own cause cues."""
        mat, t = bundle.classifier, self.t
        cgap = int(t["cause-gap"])
        rc_w = t["report-cue-weight"]
        ccues: list[_Cue] = []
        ignored = {self._stems_of(x) for x in mat.ignore_report_cues}
        for ch in bundle.pack.checks:
            for a in ch.answers:
                if a.confirms:
                    for rc in a.report_cues:
                        if self._stems_of(rc) in ignored:
                            continue
                        ccues.append(_Cue(self._stems_of(rc), rc_w, "cause:" + a.confirms, rc, cgap))
                for cid in a.rules_out:
                    for rc in a.report_cues:
                        ccues.append(_Cue(self._stems_of(rc), 1.0, "rules-out:" + cid, rc, cgap))
        for cid, cl in mat.cause_cues.items():
            for c in cl:
                label = ("rules-out:" if c.weight < 0 else "pin:") + cid
                ccues.append(self._cue(c.text, abs(c.weight), label, cgap, c.negatable))
        return ccues

    def _compile_targets(self, bundle: Bundle) -> None:
        # "provisioning to Zscaler", "Dropbox SCIM": a provisioning target that is no word of ours is
        # another application.
        self.our_stems = {st for x in our_words(bundle) for st in self._stems_of(x)}
        self.target_verbs = {self._stems_of(w)[0] for w in ("scim", "provision", "sync", "push")}
        self.target_preps = {self._stems_of(w)[0] for w in ("to", "into")}
        self.target_skip = {self._stems_of(w)[0] for w in ("the", "our", "a", "an", "their", "my", "new")}

    def _compile_neighbours(self, mat: ClassifierMaterial) -> _Neighbours:
        stop = {s for w in mat.stopwords for s in self._stems_of(w)}
        docs: list[tuple[str, list[str]]] = []
        for sid, sm in mat.symptoms.items():
            for ex in sm.examples:
                docs.append((sid, list(self._stems_of(ex))))
        for ex in mat.off_topic_examples:
            docs.append(("none", list(self._stems_of(ex))))
        return _Neighbours(docs, stop, self.t["bigram-weight"])

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
        return best_signature(self.signatures, hay, words, self.t)

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

        tally = _Tally({s: 0.0 for s in self.symptom_ids})
        found, anchored = self._count_cues(tally, stems, positions)
        self._count_strangers(tally, anchored, stems, plain)
        self._count_causes(tally, found, stems)
        if self._full_count_cause and self._license_stem in positions and _FULL_COUNT.search(plain):
            cid = self._full_count_cause
            tally.steering(cid, t["full-count"], "cause " + cid, "every licence taken")
        sig = self._match_signature_plain(_squash(plain), set(_Analyzer.raw_tokens(plain)))
        if sig is not None:
            tally.steering(sig.cause, 10.0 * sig.score, "signature " + sig.cause, sig.text[:60])
        return self._decide(tally, stems, sig, idp)

    def _count_cues(
        self, tally: _Tally, stems: list[str], positions: dict[str, list[int]]
    ) -> tuple[list[tuple[_Cue, int, int]], bool]:
        """Domain, negative and symptom cues into `tally`; returns the cause phrases found (weighed apart,
        see `_count_causes`) and whether an anchor was."""
        anchored = False
        found: list[tuple[_Cue, int, int]] = []
        for hit in self.cues.find(stems, positions):
            cue = hit[0]
            if cue.label == "anchor":
                anchored = True
                continue
            if cue.label.startswith(("cause:", "pin:", "rules-out:")):
                found.append(hit)
                continue
            if cue.label == "domain":
                tally.dom += cue.weight
            elif cue.label == "negative":
                tally.neg += cue.weight
            elif cue.label in tally.sym_cue:
                tally.sym_cue[cue.label] += cue.weight
            tally.evidence.append((cue.label, cue.text, cue.weight))
        return found, anchored

    def _count_strangers(self, tally: _Tally, anchored: bool, stems: list[str], plain: str) -> None:
        """What makes a message someone else's: no word tying it to Cato, another application as the target."""
        t = self.t
        if self.has_anchors and not anchored:
            tally.neg += t["unanchored"]
            tally.evidence.append(("negative", "no word that ties it to Cato", t["unanchored"]))
        other = self._other_target(stems, plain)
        if other:
            tally.neg += t["other-target"]
            tally.evidence.append(("negative", f"provisioning target '{other}' is another application", t["other-target"]))

    def _count_causes(self, tally: _Tally, found: list[tuple[_Cue, int, int]], stems: list[str]) -> None:
        """Cause evidence, minus negated phrases and phrases inside a "rules out" phrase."""
        t = self.t
        spans_out: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for cue, a, b in found:
            if cue.label.startswith("rules-out:"):
                spans_out[cue.label[10:]].append((a, b))
        window = int(t["negation-window"])
        for cue, a, b in found:
            if cue.label.startswith("rules-out:"):
                tally.ruled_out.add(cue.label[10:])
                continue
            kind, _, cid = cue.label.partition(":")
            if any(x <= a and b <= y for x, y in spans_out.get(cid, ())):
                continue
            if cue.negatable and cue.stems[0] not in self.negators and any(
                stems[j] in self.negators for j in range(max(0, a - window), a)
            ):
                continue
            tally.cause_ev[cid] += cue.weight
            if kind == "cause":
                tally.steer_ev[cid] += cue.weight
            tally.evidence.append(("cause " + cid, cue.text, cue.weight))
        for cid in tally.ruled_out:
            if cid in tally.cause_ev and tally.cause_ev[cid] < 2 * t["report-cue-weight"]:
                del tally.cause_ev[cid]
                tally.steer_ev.pop(cid, None)

    def _decide(self, tally: _Tally, stems: list[str], sig: SignatureHit | None, idp: str | None) -> Classification:
        """The message's evidence weighed: in the domain or not, which symptom, how sure, what to ask, which cause."""
        t = self.t
        nn = self.nn.best_by_label(stems)
        domain_score = self._domain_score(tally, nn, sig)
        in_domain = domain_score >= t["domain"]
        p_domain = _sigmoid((domain_score - t["domain"]) * t["domain-slope"] + 1.0)

        scores = self._symptom_scores(tally, nn)
        if sig is not None and in_domain:
            scores = self._pin_to_signature(scores, sig)
        probs = self._softmax(scores)
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
        clarify = self._clarify(scores, probs, ranked, nn) if in_domain else []
        cause_ev = tally.cause_ev
        return Classification(
            symptom=symptom,
            cause=self._pick_cause(symptom, cause_ev, sig),
            confidence=round(confidence, 4),
            candidates=candidates,
            in_domain=in_domain,
            clarify=clarify,
            idp=idp,
            signature=sig if in_domain else None,
            domain_score=round(domain_score, 3),
            evidence=tuple(tally.evidence),
            ruled_out=tuple(sorted(c for c in tally.ruled_out if c not in cause_ev)),
            cause_scores=tuple(sorted(cause_ev.items(), key=lambda kv: -kv[1])),
            pasted=sig,
        )

    def _knn(self, nn: dict[str, float], label: str) -> float:
        """The closest example's similarity for `label` above the floor, rescaled to 0..1."""
        floor = self.t["knn-floor"]
        v = nn.get(label, 0.0)
        return max(0.0, v - floor) / (1.0 - floor)

    def _domain_score(self, tally: _Tally, nn: dict[str, float], sig: SignatureHit | None) -> float:
        t = self.t
        nn_in = max((self._knn(nn, s) for s in self.symptom_ids), default=0.0)
        nn_off = self._knn(nn, "none")
        best_sym_cue = max(tally.sym_cue.values())
        return (
            tally.dom
            + min(t["symptom-cue-domain"] * best_sym_cue, t["symptom-cue-domain-cap"])
            - tally.neg
            + t["knn-domain"] * (nn_in - nn_off)
            + (t["signature-domain"] * sig.score if sig else 0.0)
        )

    def _symptom_scores(self, tally: _Tally, nn: dict[str, float]) -> dict[str, float]:
        t = self.t
        scores: dict[str, float] = {}
        cap = t["cause-symptom-cap"]
        for sid in self.symptom_ids:
            score = tally.sym_cue[sid] + t["knn-symptom"] * self._knn(nn, sid)
            for cid, ev in tally.steer_ev.items():
                rel = self.cause_syms.get(cid, {}).get(sid)
                if rel:
                    # Shared causes barely prefer a symptom: the text decides.
                    prior = t["shared-cause-prior"]
                    score += t["cause-symptom"] * min(ev, cap) * ((1 - prior) + prior * rel)
            scores[sid] = max(0.0, score)
        return scores

    def _pin_to_signature(self, scores: dict[str, float], sig: SignatureHit) -> dict[str, float]:
        """A signature pins its cause: only symptoms that list it stay in the running."""
        allowed = set(self.cause_syms.get(sig.cause, {}))
        if allowed and any(scores[s] > 0 for s in allowed):
            return {s: (v if s in allowed else 0.0) for s, v in scores.items()}
        if allowed:
            top_allowed = max(allowed, key=lambda s: self.cause_syms[sig.cause][s])
            return {s: (1.0 if s == top_allowed else 0.0) for s in scores}
        return scores

    def _softmax(self, scores: dict[str, float]) -> dict[str, float]:
        temp = self.t["temperature"]
        mx = max(scores.values())
        exps = {s: math.exp((v - mx) / temp) if v > 0 else 0.0 for s, v in scores.items()}
        z = sum(exps.values()) or 1.0
        return {s: e / z for s, e in exps.items()}

    def _clarify(self, scores: dict[str, float], probs: dict[str, float], ranked: list[str], nn: dict[str, float]) -> list[str]:
        """The symptoms to ask about for an in-domain message, if any."""
        t = self.t
        top = ranked[0] if ranked else None
        if top is None or scores[top] < t["min-evidence"]:
            # In the domain but nothing points anywhere ("scim is broken, help"): offer the three
            # symptoms the message is least far from, so the engine asks instead of giving up.
            order = {sid: i for i, sid in enumerate(self.symptom_ids)}
            vague = sorted(self.symptom_ids, key=lambda s: (-scores[s], -nn.get(s, 0.0), order[s]))
            return vague[:3]
        close = [s for s in ranked[:3] if probs[s] >= t["clarify-ratio"] * probs[top]]
        return close if len(close) >= 2 else []

    def _pick_cause(self, symptom: str | None, cause_ev: dict[str, float], sig: SignatureHit | None) -> str | None:
        """The cause: strong, unopposed evidence consistent with the symptom (a wrong cause is worse than none)."""
        t = self.t
        cause = None
        if symptom is not None and cause_ev:
            by_evidence = sorted(cause_ev.items(), key=lambda kv: -kv[1])
            cid, ev = by_evidence[0]
            runner = by_evidence[1][1] if len(by_evidence) > 1 else 0.0
            if ev >= t["cause-min"] and ev - runner >= t["cause-margin"] and cid in self.sym_causes[symptom]:
                cause = cid
        if sig is not None and symptom is not None and sig.cause in self.sym_causes[symptom]:
            cause = sig.cause
        return cause

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
