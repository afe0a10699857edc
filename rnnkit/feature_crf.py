"""Linear-chain CRF over sparse hand-made features (the CRF baseline of seed
000's comparison), trained by CRFsuite (L-BFGS with L1 + L2 regularisation).

Features of token i: the word (lower-cased) and its presence in the
neighbouring positions, prefixes and suffixes of 1-4 characters, and the
word's shape (capitalisation, digits, hyphen)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pycrfsuite

from rnnkit.hmm import shape


def token_features(words: Sequence[str], i: int) -> list[str]:
    w = words[i]
    low = w.lower()
    feats = ["bias", f"w={low}", f"shape={shape(w)}", f"title={w.istitle()}", f"upper={w.isupper()}",
             f"digit={any(c.isdigit() for c in w)}"]
    feats += [f"p{k}={low[:k]}" for k in range(1, 5) if len(low) >= k]
    feats += [f"s{k}={low[-k:]}" for k in range(1, 5) if len(low) >= k]
    for off in (-2, -1, 1, 2):
        j = i + off
        feats.append(f"w{off:+d}={words[j].lower()}" if 0 <= j < len(words) else f"w{off:+d}=<pad>")
    if i > 0:
        feats.append(f"s3-1={words[i - 1].lower()[-3:]}")
    return feats


def sentence_features(words: Sequence[str]) -> list[list[str]]:
    return [token_features(words, i) for i in range(len(words))]


@dataclass(frozen=True)
class FeatureCRFConfig:
    c1: float = 0.05  # L1 regularisation
    c2: float = 0.01  # L2 regularisation
    max_iterations: int = 150  # L-BFGS iterations


class FeatureCRF:
    """Train with :meth:`fit` (writes the CRFsuite model file), tag with :meth:`tag`."""

    def __init__(self, model_file: Path):
        self.model_file = Path(model_file)
        self.tagger: pycrfsuite.Tagger | None = None

    def fit(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
            config: FeatureCRFConfig = FeatureCRFConfig()) -> FeatureCRF:
        trainer = pycrfsuite.Trainer(verbose=False)
        for words, ts in zip(sentences, tags):
            trainer.append(sentence_features(words), list(ts))
        trainer.set_params({"c1": config.c1, "c2": config.c2, "max_iterations": config.max_iterations,
                            "feature.possible_transitions": True})
        self.model_file.parent.mkdir(parents=True, exist_ok=True)
        trainer.train(str(self.model_file))
        return self

    def tag(self, words: Sequence[str]) -> list[str]:
        if self.tagger is None:
            self.tagger = pycrfsuite.Tagger()
            self.tagger.open(str(self.model_file))
        return list(self.tagger.tag(sentence_features(words))) if words else []
