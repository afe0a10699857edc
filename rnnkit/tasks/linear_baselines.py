"""Logistic-regression baselines of sequence classification (:mod:`rnnkit.tasks.classify`).

Baselines, fitted by scikit-learn and stored as plain tensors (no pickle):
logistic regression on unigram + bigram counts (text), or on each feature's
mean and standard deviation over time (series).

Dimensions: T time, C features, K classes, F baseline features, N cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.settings import COUNT, POSITIVE, check, setting
from rnnkit.tasks.classify_data import TextConfig
from rnnkit.vocab import Vocab


@dataclass(frozen=True)
class LogRegConfig:
    C: float = setting(1.0, POSITIVE)  # inverse strength of the L2 penalty of scikit-learn's LogisticRegression
    max_iter: int = setting(2000, COUNT)  # L-BFGS iterations

    def __post_init__(self) -> None:
        check(self)


def _fit_linear(X, y: Sequence[int], num_classes: int, config: LogRegConfig) -> nn.Linear:
    """A logistic regression fitted by scikit-learn, as a Linear (K, F) whose log_softmax is its
    predict_log_proba. A binary model's one weight vector becomes class 1's row (class 0's is 0)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=config.C, max_iter=config.max_iter).fit(X, np.asarray(y))
    linear = nn.Linear(X.shape[1], num_classes)
    weight = torch.zeros(num_classes, X.shape[1], dtype=torch.float64)  # (K, F)
    bias = torch.full((num_classes,), -1e4, dtype=torch.float64)  # classes absent from training: never chosen
    coef, intercept = torch.from_numpy(lr.coef_), torch.from_numpy(lr.intercept_)
    classes = torch.from_numpy(lr.classes_).long()
    if len(classes) == 2:
        weight[classes[1]], bias[classes] = coef[0], torch.stack([intercept.new_zeros(()), intercept[0]])
    else:
        weight[classes], bias[classes] = coef, intercept
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    return linear


def ngram_vectorizer(text: TextConfig, max_n: int, vocabulary: dict[str, int] | None = None):
    """scikit-learn's CountVectorizer of the 1- to max_n-grams of whitespace-separated words."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(tokenizer=str.split, token_pattern=None, lowercase=text.lowercase,
                           ngram_range=(1, max_n), vocabulary=vocabulary)


class BagOfWords(nn.Module):
    """Logistic regression on word n-gram counts (unigrams and bigrams by default):
    log p(k | x) = log_softmax(W n(x) + b)_k, n(x) (F,) the counts of the vocabulary's n-grams.

    ``ngrams`` lists the F n-grams (words joined by one space); ``model.log_probs(texts) -> (N, K)``.
    """

    def __init__(self, ngrams: Vocab, num_classes: int, text: TextConfig, max_n: int = 2):
        super().__init__()
        self.ngrams, self.text, self.max_n = ngrams, text, max_n
        self.linear = nn.Linear(len(ngrams), num_classes)  # W (K, F), b (K,)

    def counts(self, texts: Sequence[str]):
        """n(x) for each text: a scipy sparse (N, F) matrix."""
        return ngram_vectorizer(self.text, self.max_n, self.ngrams.index).transform(texts)

    @torch.no_grad()
    def log_probs(self, texts: Sequence[str]) -> Tensor:
        weight = self.linear.weight.double().numpy()  # (K, F)
        scores = torch.from_numpy(self.counts(texts) @ weight.T) + self.linear.bias.double()  # (N, K)
        return scores.float().log_softmax(1)

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[int], num_classes: int, text: TextConfig,
            config: LogRegConfig = LogRegConfig(), max_n: int = 2) -> BagOfWords:
        """Every n-gram of the training texts is a feature; fit the regression on their counts."""
        vectorizer = ngram_vectorizer(text, max_n)
        X = vectorizer.fit_transform(texts)  # scipy (N, F)
        model = cls(Vocab(list(vectorizer.get_feature_names_out()), ()), num_classes, text, max_n)
        model.linear = _fit_linear(X, labels, num_classes, config)
        return model


def series_statistics(series: Sequence[np.ndarray]) -> Tensor:
    """Each case's per-feature mean and standard deviation over its non-missing frames: (N, 2C)."""
    rows = []
    for s in series:
        x = torch.from_numpy(np.asarray(s, dtype=np.float64))  # (T, C)
        known = ~torch.isnan(x)
        count = known.sum(0).clamp(min=1)
        mean = torch.where(known, x, 0).sum(0) / count  # (C,)
        std = (torch.where(known, x - mean, 0).square().sum(0) / count).sqrt()  # (C,)
        rows.append(torch.cat([mean, std]))
    return torch.stack(rows).float()  # (N, 2C)


class SeriesStats(nn.Module):
    """Logistic regression on each feature's mean and standard deviation over time, standardised
    with the training set's: log p(k | x) = log_softmax(W (φ(x) − μ) / σ + b)_k, φ(x) (2C,).

    ``model.log_probs(series) -> (N, K)``, each series (T_i, C).
    """

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.num_features = num_features  # C
        self.register_buffer("center", torch.zeros(2 * num_features))  # μ (2C,)
        self.register_buffer("scale", torch.ones(2 * num_features))  # σ (2C,)
        self.linear = nn.Linear(2 * num_features, num_classes)  # W (K, 2C), b (K,)

    def features(self, series: Sequence[np.ndarray]) -> Tensor:
        return (series_statistics(series) - self.center) / self.scale  # (N, 2C)

    @torch.no_grad()
    def log_probs(self, series: Sequence[np.ndarray]) -> Tensor:
        return self.linear(self.features(series)).log_softmax(1)  # (N, K)

    @classmethod
    def fit(cls, series: Sequence[np.ndarray], labels: Sequence[int], num_classes: int,
            config: LogRegConfig = LogRegConfig()) -> SeriesStats:
        model = cls(series[0].shape[1], num_classes)
        phi = series_statistics(series)  # (N, 2C)
        std = phi.std(0, unbiased=False)
        model.center.copy_(phi.mean(0))
        model.scale.copy_(torch.where(std > 0, std, 1.0))
        model.linear = _fit_linear(model.features(series).double().numpy(), labels, num_classes, config)
        return model
