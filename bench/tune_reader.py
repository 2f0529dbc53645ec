"""Choosing the reader model's settings on the DEV split (writer w2) only: features, regularisation, dense cue
features, thresholds. Prints dev numbers; never reads the held-out split.

    python -m bench.tune_reader
"""

from __future__ import annotations

import itertools
import sys

from bench.classify_eval import decide_pred, score_reports
from bot.classify import Classifier
from bot.redact import scrub_secrets
from bot.text import message_forms
from bot.understand import corpus as corp
from bot.understand import train as tr
from bot.understand.features import ngrams
from bot.understand.model import DEFAULT_THRESHOLDS, cue_features
from knowledge.loader import load_pack


def main() -> int:
    bundle = load_pack()
    clf = Classifier(bundle)
    reports = corp.load("reports")
    train = [r for r in reports if r["split"] == "train"]
    dev = [r for r in reports if r["split"] == "dev"]
    symptoms = [s.id for s in bundle.pack.symptoms]
    topics = list(corp.TOPICS)
    names = tr.dense_names(bundle)

    def prep(rows):
        forms = [message_forms(scrub_secrets(r["text"])) for r in rows]
        cls = [clf.classify_plain(f[1]) for f in forms]
        dense = [cue_features(c, len(f[2].split())) for c, f in zip(cls, forms)]
        return [f[2] for f in forms], cls, dense

    tn, tc, td = prep(train)
    dn, dc, dd = prep(dev)
    syms = set(symptoms)
    ylab = [r["label"] for r in train]
    cidx = [i for i, r in enumerate(train) if r["label"] != "off-topic"]
    ycause = [(train[i].get("cause") or "none") if train[i]["label"] in syms else "none" for i in cidx]
    from sklearn.linear_model import LogisticRegression

    results = []
    for (cmin, cmax), min_df in itertools.product([(2, 5)], [2]):
        docs = [ngrams(n, cmin, cmax) for n in tn]
        vocab, idf, X = tr._vectorise(docs, min_df)
        DX = tr.transform([ngrams(n, cmin, cmax) for n in dn], vocab, idf)
        for dense, scale in [(False, 1.0), (True, 1.0), (True, 0.5)]:
            Xt = tr._with_dense(X, td if dense else None, names, scale)
            Xd = tr._with_dense(DX, dd if dense else None, names, scale)
            for C, cw in itertools.product([3.0, 10.0, 30.0], ["balanced"]):
                lab = LogisticRegression(C=C, max_iter=5000, class_weight=cw, random_state=tr.SEED, tol=1e-4).fit(Xt, ylab)
                cau = LogisticRegression(C=C, max_iter=5000, class_weight=cw, random_state=tr.SEED, tol=1e-4).fit(Xt[cidx], ycause)
                PL = lab.predict_proba(Xd)
                PC = cau.predict_proba(Xd)
                labs = [dict(zip(map(str, lab.classes_), map(float, p))) for p in PL]
                caus = [dict(zip(map(str, cau.classes_), map(float, p))) for p in PC]
                for t_off, t_sym, t_cause in itertools.product([0.3, 0.4, 0.5, 0.6, 0.7], [0.0, 0.3, 0.45], [0.3, 0.4, 0.5, 0.6]):
                    t = {**DEFAULT_THRESHOLDS, "off": t_off, "symptom": t_sym, "topic": t_sym, "cause": t_cause}
                    preds = [decide_pred(lab, c, cl, symptoms, topics, t) for lab, c, cl in zip(labs, caus, dc)]
                    m = score_reports(dev, preds, syms, set(topics))
                    results.append(((cmin, cmax), dense, scale, C, cw, t_off, t_sym, t_cause, m))
                print(f"  chars {cmin}-{cmax} dense={dense}/{scale} C={C} cw={cw}: done", file=sys.stderr)

    def key(x):
        m = x[-1]
        ok = m["ft"] <= 0.03
        return (ok, m["top1"] + m["recall"] + 0.5 * m["cause"] + 0.5 * m["short_recall"])

    results.sort(key=key, reverse=True)
    print("best on dev (FT <= 3% first; then top-1 + recall + cause/2 + short recall/2):")
    for r in results[:15]:
        m = r[-1]
        print(f"chars={r[0]} dense={r[1]}/{r[2]} C={r[3]} cw={r[4]} off={r[5]} sym={r[6]} cause={r[7]} | top1 {m['top1']:.3f} sym {m['symptom']:.3f} topic {m['topic']:.3f} FT {m['ft']:.3f} recall {m['recall']:.3f} short {m['short_recall']:.3f} unclear {m['unclear_picker']:.3f} cause {m['cause']:.3f} spur {m['spurious']:.3f}")
    # The best of each family, for NOTES.
    for dense in (False, True):
        best = next(r for r in results if r[1] == dense)
        m = best[-1]
        print(f"best dense={dense}: {best[:8]} top1 {m['top1']:.3f} FT {m['ft']:.3f} recall {m['recall']:.3f} cause {m['cause']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
