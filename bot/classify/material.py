"""The words the classifier gathers from its material (knowledge/classifier.yaml) and the pack, before
anything is compiled: which words are known, which an unknown word may be a typo of, which are ours, and
how each IdP is named."""

from __future__ import annotations

from bot.classify.analyser import _Analyzer
from bot.text import normalize
from knowledge.schema import Bundle


def vocabulary(bundle: Bundle) -> tuple[set[str], set[str]]:
    """(known, targets): words the material uses, left alone by typo folding, and the words an unknown
    word may be folded onto."""
    mat, pack = bundle.classifier, bundle.pack
    texts = _cue_texts(bundle) + [c.text for c in mat.negative_cues]
    texts += mat.off_topic_examples + mat.stopwords + mat.negators
    for idp in pack.idps:
        texts += idp.aliases
    known: set[str] = set()
    for s in texts:
        known.update(_Analyzer.raw_tokens(normalize(s)))
    targets: set[str] = set()
    for s in mat.typo_targets:
        targets.update(_Analyzer.raw_tokens(normalize(s)))
    return known, targets


def our_words(bundle: Bundle) -> list[str]:
    """Everything the in-domain material and the pack say. Not the off-topic examples or the negative
    cues: they name other applications on purpose, and a provisioning target outside these words is
    taken for another application."""
    mat, pack = bundle.classifier, bundle.pack
    ours = list(mat.stopwords) + list(mat.negators) + list(mat.typo_targets) + _cue_texts(bundle)
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
    return ours


def _cue_texts(bundle: Bundle) -> list[str]:
    """The in-domain phrasing both word lists start from: synonyms, domain, symptom and cause cues, symptom
    examples, and the answers' report cues."""
    mat = bundle.classifier
    texts: list[str] = []
    for canon, variants in mat.synonyms.items():
        texts += [canon, *variants]
    texts += [c.text for c in mat.domain_cues]
    for sm in mat.symptoms.values():
        texts += sm.examples + [c.text for c in sm.cues]
    for cause_cues in mat.cause_cues.values():
        texts += [c.text for c in cause_cues]
    for ch in bundle.pack.checks:
        for a in ch.answers:
            texts += a.report_cues
    return texts


def idp_aliases(bundle: Bundle) -> list[tuple[str, str]]:
    """(alias as tokens, IdP id) for every IdP's name and aliases, longest first. Not the ids: "other" is
    a word."""
    alias_list: list[tuple[str, str]] = []
    for idp in bundle.pack.idps:
        for alias in [idp.name, *idp.aliases]:
            alias_list.append((" ".join(_Analyzer.raw_tokens(normalize(alias))), idp.id))
    alias_list = [(a, i) for a, i in alias_list if a]
    alias_list.sort(key=lambda x: len(x[0]), reverse=True)
    return alias_list
