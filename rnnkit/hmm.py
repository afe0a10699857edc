"""Supervised first-order HMM tagger: smoothed counts and Viterbi, the count-based
baseline taggers are measured against, with unknown words handled by their suffix and shape.

    P(t_1..t_n, w_1..w_n) = Π_i P(t_i | t_{i-1}) · P(w_i | t_i)

Transitions are add-k smoothed bigrams (with start and end states). Known
words use their relative frequency; an unknown word w gets
P(w | t) ∝ P(t | signature(w)) / P(t), where P(t | signature) is learned from
the rare training words (seen once) that share its signature (suffix and
shape), backing off to shorter suffixes (Brants 2000, simplified).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def shape(word: str) -> str:
    """A coarse shape class: capitalisation, digits, hyphens."""
    parts = ["C" if word[:1].isupper() else "c"]
    if any(ch.isdigit() for ch in word):
        parts.append("d")
    if "-" in word:
        parts.append("h")
    if word.isupper() and len(word) > 1:
        parts.append("U")
    return "".join(parts)


def signatures(word: str, max_suffix: int = 4) -> list[str]:
    """From specific to general: shape + suffix of length 4, 3, 2, 1, then shape alone."""
    s, low = shape(word), word.lower()
    return [f"{s}|{low[-k:]}" for k in range(min(max_suffix, len(low)), 0, -1)] + [s]


class HMMTagger:
    """Fit with :meth:`fit`, tag with :meth:`tag`; saved and loaded as JSON.

    Example:
        >>> hmm = HMMTagger().fit([["the", "dog"]], [["DT", "NN"]])
        >>> hmm.tag(["the", "cat"])
        ['DT', 'NN']
    """

    def __init__(self, transition_k: float = 0.1, suffix_min_count: int = 1):
        self.k, self.suffix_min_count = transition_k, suffix_min_count
        self.tags: list[str] = []

    def fit(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> HMMTagger:
        self.tags = sorted({t for ts in tags for t in ts})
        index = {t: i for i, t in enumerate(self.tags)}
        K = len(self.tags)
        trans = np.full((K + 1, K + 1), self.k)  # row K = start, column K = end
        word_tag: dict[str, Counter] = defaultdict(Counter)
        for ws, ts in zip(sentences, tags):
            prev = K
            for w, t in zip(ws, ts):
                trans[prev, index[t]] += 1
                word_tag[w][index[t]] += 1
                prev = index[t]
            trans[prev, K] += 1
        self.log_trans = np.log(trans / trans.sum(1, keepdims=True))  # (K+1, K+1)
        tag_counts = np.zeros(K)
        for counts in word_tag.values():
            for t, n in counts.items():
                tag_counts[t] += n
        self.log_prior = np.log(tag_counts / tag_counts.sum())
        self.emit = {w: {t: math.log(n / tag_counts[t]) for t, n in c.items()} for w, c in word_tag.items()}
        sig: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(K))
        for w, c in word_tag.items():
            if sum(c.values()) == 1:  # hapax words stand for the unknown ones
                for s in signatures(w):
                    for t, n in c.items():
                        sig[s][t] += n
        self.sig = {s: v for s, v in sig.items() if v.sum() >= self.suffix_min_count}
        return self

    def _unknown(self, word: str) -> np.ndarray:
        """log P(w | t) up to a constant, for a word never seen in training: (K,)."""
        K = len(self.tags)
        for s in signatures(word):
            if s in self.sig:
                p_t_given_sig = (self.sig[s] + 0.01) / (self.sig[s].sum() + 0.01 * K)
                return np.log(p_t_given_sig) - self.log_prior - 12.0  # unknown words are rare events
        return np.full(K, -30.0)

    def _emissions(self, words: Sequence[str]) -> np.ndarray:
        K = len(self.tags)
        out = np.empty((len(words), K))
        for i, w in enumerate(words):
            if w in self.emit:
                row = np.full(K, -np.inf)
                for t, lp in self.emit[w].items():
                    row[t] = lp
                out[i] = row
            else:
                out[i] = self._unknown(w)
        return out  # (T, K)

    def tag(self, words: Sequence[str]) -> list[str]:
        """Viterbi: the most probable tag sequence."""
        if not words:
            return []
        K = len(self.tags)
        E = self._emissions(words)
        A = self.log_trans[:K, :K]
        score = self.log_trans[K, :K] + E[0]  # (K,)
        back = np.zeros((len(words), K), dtype=np.int64)
        for i in range(1, len(words)):
            cand = score[:, None] + A  # (K prev, K next)
            back[i] = cand.argmax(0)
            score = cand.max(0) + E[i]
        score = score + self.log_trans[:K, K]
        best = [int(score.argmax())]
        for i in range(len(words) - 1, 0, -1):
            best.append(int(back[i, best[-1]]))
        return [self.tags[t] for t in reversed(best)]

    def save(self, path: Path) -> None:
        data = {"k": self.k, "tags": self.tags, "log_trans": self.log_trans.tolist(),
                "log_prior": self.log_prior.tolist(), "emit": self.emit,
                "sig": {s: v.tolist() for s, v in self.sig.items()}}
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> HMMTagger:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        hmm = cls(d["k"])
        hmm.tags, hmm.log_trans, hmm.log_prior = d["tags"], np.array(d["log_trans"]), np.array(d["log_prior"])
        hmm.emit = {w: {int(t): lp for t, lp in c.items()} for w, c in d["emit"].items()}
        hmm.sig = {s: np.array(v) for s, v in d["sig"].items()}
        return hmm
