"""The reader's model artefact (knowledge/model/): present, loadable with numpy alone, trained on the corpus as
it is now (a stale model fails here, loudly), and used by the Reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bot.understand import corpus
from bot.understand.model import MODEL_DIR, Model

ROOT = Path(__file__).resolve().parent.parent


def test_artefact_matches_the_corpus() -> None:
    meta = json.loads((MODEL_DIR / "reader.json").read_text(encoding="utf-8"))
    assert meta["corpus_hash"] == corpus.corpus_hash(), (
        "knowledge/model/ was trained on another version of knowledge/corpus/: run `scim-help kb train` and commit"
    )
    assert "heldout" not in meta["trained_on"]["splits"]


def test_artefact_loads_with_numpy_alone() -> None:
    model = Model.load()
    assert model is not None
    assert set(model.heads) == {"label_ngram", "label", "cause", "act", "kind"}
    label, cause = model.report("new hires never show up in cato")
    assert abs(sum(label.values()) - 1.0) < 1e-4 and abs(sum(cause.values()) - 1.0) < 1e-4
    assert "sklearn" not in sys.modules and "torch" not in sys.modules


def test_artefact_is_small() -> None:
    size = sum(p.stat().st_size for p in MODEL_DIR.glob("reader.*"))
    assert size < 8 * 1024 * 1024


def test_corpus_is_valid(bundle) -> None:
    problems, summary = corpus.validate(bundle=bundle)
    assert problems == []
    assert summary["writers"] == corpus.SPLITS
    reports = corpus.load("reports")
    assert len(reports) >= 2500
    off = [r for r in reports if r["label"] == "off-topic"]
    assert sum(bool(r["hard"]) for r in off) / len(off) >= 0.40
