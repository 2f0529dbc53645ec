"""Nearest neighbours: how close a message is to the material's examples, per symptom and off topic."""

from __future__ import annotations

import math
from collections import defaultdict


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
