"""Sequence classification, many-to-one (seeds 002, 004): a recurrent layer reads
a whole sequence (the words of a sentence, or real-valued feature frames) and one
label is predicted for it.

What the output layer sees is chosen by :class:`Pool`:

- LAST: the output at each sequence's own last step; bidirectional: the forward
  direction's last step and the backward direction's first (its final output).
- MEAN, MAX: the mean or the element-wise maximum over the valid steps only.
- ATTENTION: s = Σ_t α_t y_t, α = softmax over the valid steps of v · tanh(W y_t + b).
- EVERY_STEP: no summary; every step is scored against the sequence's label
  (seed 002's divergence at every step), and a prediction averages the
  per-step log-probabilities over the valid steps.

Padding never reaches a computation: valid steps are selected with
``torch.where`` (never multiplied by a mask), so NaN in padding changes nothing.

Baselines, fitted by scikit-learn and stored as plain tensors (no pickle):
logistic regression on unigram + bigram counts (text), or on each feature's
mean and standard deviation over time (series).

Dimensions: B batch, T time, C features, E embedding, H hidden, D directions,
K classes, V vocabulary, F baseline features, N cases.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.batch import Batch, pad_sequences
from rnnkit.data.errors import DataError, read_lines
from rnnkit.data.ts import read_ts
from rnnkit.data.tsv import read_labelled
from rnnkit.losses import last_step_outputs, sequence_label_cross_entropy
from rnnkit.tasks.toys import LAYERS, CellKind
from rnnkit.train import StepOutput
from rnnkit.vocab import PAD, UNK, Vocab


class Format(enum.Enum):
    TSV = "tsv"  # label<TAB>text lines, whitespace-separated words
    TS = "ts"  # sktime .ts cases: real-valued frames (T, C) and a class label


class Pool(enum.Enum):
    LAST = "last"
    MEAN = "mean"
    MAX = "max"
    ATTENTION = "attention"
    EVERY_STEP = "every-step"


class ModelKind(enum.Enum):
    RNN = "rnn"  # Classifier, trained by the common engine
    BOW_LOGREG = "bow-logreg"  # BagOfWords: text
    STATS_LOGREG = "stats-logreg"  # SeriesStats: .ts series


# ---------------------------------------------------------------- pooling


def valid_steps(lengths: Tensor, T: int) -> Tensor:
    """(B, T) bool: True at t < L_b."""
    return torch.arange(T, device=lengths.device) < lengths.unsqueeze(1)


def last_pool(y: Tensor, lengths: Tensor, directions: int = 1) -> Tensor:
    """Each sequence's final outputs: y (B, T, D·H), lengths (B,) in [1, T] -> (B, D·H).

    Forward: y[b, L_b − 1]. Backward (D = 2, the second half of the features):
    y[b, 0], where the backward direction ends. Example:
        >>> last_pool(torch.randn(2, 5, 8), torch.tensor([5, 2]), directions=2).shape
        torch.Size([2, 8])
    """
    last = last_step_outputs(y, lengths)  # (B, D·H)
    if directions == 1:
        return last
    H = y.shape[2] // 2
    return torch.cat([last[:, :H], y[:, 0, H:]], dim=1)  # (B, 2H)


def mean_pool(y: Tensor, lengths: Tensor) -> Tensor:
    """(1/L_b) Σ_{t < L_b} y[b, t]: y (B, T, F), lengths (B,) in [1, T] -> (B, F)."""
    valid = valid_steps(lengths, y.shape[1]).unsqueeze(2)  # (B, T, 1)
    return torch.where(valid, y, 0).sum(1) / lengths.unsqueeze(1).to(y.dtype)  # (B, F)


def max_pool(y: Tensor, lengths: Tensor) -> Tensor:
    """max_{t < L_b} y[b, t] per feature: y (B, T, F), lengths (B,) in [1, T] -> (B, F)."""
    valid = valid_steps(lengths, y.shape[1]).unsqueeze(2)  # (B, T, 1)
    return torch.where(valid, y, -torch.inf).amax(1)  # (B, F)


class AttentionPool(nn.Module):
    """Additive attention pooling (Bahdanau et al. 2015; Yang et al. 2016):

        e_t = v · tanh(W y_t + b),  α = softmax over t < L of e (padding −inf),  s = Σ_t α_t y_t.

    ``pool(y, lengths) -> s``: y (B, T, F), lengths (B,) in [1, T], s (B, F).
    W: (A, F), b: (A,), v: (A,), A = ``attention_size``.
    """

    def __init__(self, size: int, attention_size: int):
        super().__init__()
        self.proj = nn.Linear(size, attention_size)  # W, b
        self.score = nn.Linear(attention_size, 1, bias=False)  # v

    def weights(self, y: Tensor, lengths: Tensor) -> Tensor:
        """α (B, T): zero on padding, summing to 1 over each sequence's steps."""
        valid = valid_steps(lengths, y.shape[1])  # (B, T)
        y = torch.where(valid.unsqueeze(2), y, 0)  # (B, T, F): padding reaches no computation
        e = self.score(torch.tanh(self.proj(y))).squeeze(2)  # (B, T)
        return e.masked_fill(~valid, -torch.inf).softmax(1)  # (B, T)

    def forward(self, y: Tensor, lengths: Tensor) -> Tensor:
        alpha = self.weights(y, lengths)  # (B, T)
        valid = valid_steps(lengths, y.shape[1]).unsqueeze(2)  # (B, T, 1)
        return (alpha.unsqueeze(2) * torch.where(valid, y, 0)).sum(1)  # (B, F)


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class ClassifierConfig:
    num_classes: int  # K
    vocab_size: int = 0  # V: word inputs, embedded (0 for real-valued inputs)
    embed_size: int = 100  # E, width of the word embeddings
    num_features: int = 0  # C: real-valued inputs, standardised (0 for word inputs)
    mean: tuple[float, ...] = ()  # (C,) each feature's training-set mean over all valid frames
    std: tuple[float, ...] = ()  # (C,) its standard deviation (1 where that is 0)
    cell: CellKind = CellKind.LSTM
    hidden_size: int = 64  # H, per direction
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # on the word embeddings, between layers and on the summary
    pool: Pool = Pool.LAST
    attention_size: int = 64  # A, width of the attention's hidden layer (Pool.ATTENTION)

    def __post_init__(self) -> None:
        if (self.vocab_size > 0) == (self.num_features > 0):
            raise ValueError(f"exactly one of vocab_size and num_features must be > 0; "
                             f"got {self.vocab_size} and {self.num_features}")
        if self.num_features and not len(self.mean) == len(self.std) == self.num_features:
            raise ValueError(f"mean and std must have num_features={self.num_features} values; "
                             f"got {len(self.mean)} and {len(self.std)}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {self.num_classes}")

    def to_dict(self) -> dict:
        return {**asdict(self), "cell": self.cell.value, "pool": self.pool.value}

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        return cls(**{**d, "cell": CellKind(d["cell"]), "pool": Pool(d["pool"]),
                      "mean": tuple(d["mean"]), "std": tuple(d["std"])})


class Standardize(nn.Module):
    """(x − mean) / std per feature; missing values (NaN) become 0, the training mean. x: (B, T, C)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)  # (C,)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)  # (C,)

    def forward(self, x: Tensor) -> Tensor:
        return torch.nan_to_num((x - self.mean) / self.std, nan=0.0)  # (B, T, C)


class Classifier(nn.Module):
    """Embedding (words) or standardisation (frames) -> recurrent layer -> pooling -> linear to K classes.

    ``model(x, lengths) -> logits``: x (B, T) word ids or (B, T, C) frames;
    lengths (B,) in [1, T]; logits (B, K), or per step (B, T, K) for Pool.EVERY_STEP.
    :meth:`log_probs` gives the (B, K) class scores predictions are made from.

    Example:
        >>> model = Classifier(ClassifierConfig(num_classes=3, vocab_size=50, pool=Pool.MEAN))
        >>> model(torch.randint(0, 50, (2, 7)), torch.tensor([7, 4])).shape
        torch.Size([2, 3])
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        c = self.config = config
        if c.vocab_size:
            self.inputs: nn.Module = nn.Sequential(nn.Embedding(c.vocab_size, c.embed_size, padding_idx=0),
                                                   nn.Dropout(c.dropout))  # ids -> (B, T, E)
        else:
            self.inputs = Standardize(c.mean, c.std)  # (B, T, C) -> (B, T, C)
        width = c.embed_size if c.vocab_size else c.num_features
        self.rnn = LAYERS[c.cell](width, c.hidden_size, c.num_layers, bidirectional=c.bidirectional,
                                  dropout=c.dropout)
        self.attention = AttentionPool(self.rnn.output_size, c.attention_size) if c.pool is Pool.ATTENTION else None
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(self.rnn.output_size, c.num_classes)  # (K, D·H)

    def summary(self, y: Tensor, lengths: Tensor) -> Tensor:
        """The pooled outputs (B, D·H) of y (B, T, D·H)."""
        pool = self.config.pool
        if pool is Pool.LAST:
            return last_pool(y, lengths, self.rnn.num_directions)
        if pool is Pool.MEAN:
            return mean_pool(y, lengths)
        if pool is Pool.MAX:
            return max_pool(y, lengths)
        if pool is Pool.ATTENTION:
            return self.attention(y, lengths)
        raise ValueError(f"{pool} has no summary: every step is scored")

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if x.shape[0] and int(lengths.min()) < 1:
            raise ValueError(f"every sequence needs at least one step; got lengths {lengths.tolist()}")
        y, _ = self.rnn(self.inputs(x), lengths)  # (B, T, D·H)
        if self.config.pool is Pool.EVERY_STEP:
            return self.out(self.drop(y))  # (B, T, K)
        return self.out(self.drop(self.summary(y, lengths)))  # (B, K)

    def log_probs(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Class scores (B, K): log softmax of the logits; for EVERY_STEP the mean over the
        valid steps of the per-step log-probabilities (unnormalised; argmax predicts)."""
        logits = self(x, lengths)
        if self.config.pool is not Pool.EVERY_STEP:
            return logits.log_softmax(1)  # (B, K)
        return mean_pool(logits.log_softmax(2), lengths)  # (B, K): over the valid steps


def collate(examples: list[tuple[Tensor, int]], indices: list[int]) -> Batch:
    """(inputs (T_i,) ids or (T_i, C) frames, label) pairs -> a Batch with targets (B,)."""
    inputs, lengths = pad_sequences([x for x, _ in examples])  # (B, T) or (B, T, C)
    labels = torch.tensor([y for _, y in examples], dtype=torch.long)  # (B,)
    return Batch(inputs, lengths, labels, indices=torch.tensor(indices))


def make_objective(pool: Pool):
    """The summed divergence of a batch: cross-entropy of each sequence's label; for
    EVERY_STEP each sequence's mean per-step cross-entropy against its label."""

    def objective(model: nn.Module, batch: Batch, state) -> StepOutput:
        logits = model(batch.inputs, batch.lengths)  # (B, K) or (B, T, K)
        if pool is Pool.EVERY_STEP:
            loss = sequence_label_cross_entropy(logits, batch.targets, batch.lengths) * batch.size
        else:
            loss = F.cross_entropy(logits, batch.targets, reduction="sum")
        return StepOutput(loss, batch.size)

    return objective


@torch.no_grad()
def predict_log_probs(model: Classifier, inputs: Sequence[Tensor], batch_size: int = 256,
                      device: str | torch.device = "cpu") -> Tensor:
    """Class scores (N, K) of N sequences, computed in batches of similar length."""
    model.eval()
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    scores = torch.zeros(len(inputs), model.config.num_classes)  # (N, K)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = collate([(inputs[i], 0) for i in chunk], chunk).to(device)
        scores[chunk] = model.log_probs(batch.inputs, batch.lengths).float().cpu()
    return scores


def classification_metrics(scores: Tensor, labels: Sequence[int]) -> dict[str, float]:
    """accuracy, loss (mean −score of the true class: the cross-entropy when the scores are
    log-probabilities), count and macro F1 over all K classes. scores: (N, K); labels: N ids."""
    from sklearn.metrics import f1_score

    y = torch.as_tensor(list(labels), dtype=torch.long)  # (N,)
    predicted = scores.argmax(1)  # (N,)
    loss = -scores.gather(1, y.unsqueeze(1)).mean()
    f1 = f1_score(y.numpy(), predicted.numpy(), labels=list(range(scores.shape[1])), average="macro",
                  zero_division=0)
    return {"accuracy": float((predicted == y).float().mean()), "loss": float(loss), "count": float(len(y)),
            "f1": float(f1)}


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class TextConfig:
    lowercase: bool = False  # lowercase before splitting into words
    min_freq: int = 1  # training words seen fewer times become <unk>


@dataclass
class Cases:
    """What a data file holds: its cases and, where the file gives them, their labels."""

    path: str  # where they came from, for errors
    texts: list[str] | None  # text cases (tsv)
    series: list[np.ndarray] | None  # real-valued cases (ts), each (T_i, C) float32, NaN where missing
    labels: list[str] | None  # one label per case, when the file has them
    lines: list[int] | None  # each text case's 1-based line
    declared: list[str] | None = None  # the labels a .ts header declares, in its order


def read_cases(path: str | Path, fmt: Format) -> Cases:
    """Labelled cases of a ``label<TAB>text`` file or a ``.ts`` file; DataError naming the file (and line)."""
    if fmt is Format.TSV:
        rows = read_labelled(path)  # DataError for an empty file, a bad line
        return Cases(str(path), [r.text for r in rows], None, [r.label for r in rows], [r.line for r in rows])
    data = read_ts(path)
    if data.labels is None:
        raise DataError(path, None, "the cases have no class labels (@classLabel false)")
    return Cases(str(path), None, data.series, data.labels, None, data.class_labels)


def read_unlabelled_texts(path: str, lines: list[str]) -> Cases:
    """Texts to classify, one per line; a line ``label<TAB>text`` gives its text. Blank lines are skipped."""
    texts, where = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        text = line.split("\t", 1)[1] if "\t" in line else line
        if not text.strip():
            raise DataError(path, n, "empty text after the TAB")
        texts.append(text)
        where.append(n)
    if not texts:
        raise DataError(path, None, "no text to classify")
    return Cases(path, texts, None, None, where)


def read_unlabelled(path: str | Path, fmt: Format) -> Cases:
    """Cases to classify: lines of text (or label<TAB>text), or the cases of a .ts file (labels optional)."""
    if fmt is Format.TSV:
        return read_unlabelled_texts(str(path), read_lines(path))
    data = read_ts(path)
    return Cases(str(path), None, data.series, None, None, data.class_labels)


def words(text: str, config: TextConfig) -> list[str]:
    return (text.lower() if config.lowercase else text).split()


def label_vocab(cases: Cases) -> Vocab:
    """The classes: a .ts header's declared labels in order, else the labels seen, sorted."""
    seen = sorted(set(cases.labels))
    if len(seen) < 2:
        raise DataError(cases.path, None, f"a classifier needs at least 2 classes; the labels are only {seen}")
    return Vocab(list(cases.declared or seen), ())


def label_ids(cases: Cases, labels: Vocab) -> list[int]:
    """Each case's class id; DataError (with the line, for text) for a label the model does not know."""
    ids = []
    for i, label in enumerate(cases.labels):
        if label not in labels:
            line = cases.lines[i] if cases.lines else None
            where = "" if line else f"case {i + 1}: "
            raise DataError(cases.path, line, f"{where}label {label!r} is not one of the model's classes "
                                              f"{' '.join(labels.symbols)}")
        ids.append(labels[label])
    return ids


def word_vocab(cases: Cases, config: TextConfig) -> Vocab:
    return Vocab.build((words(t, config) for t in cases.texts), specials=(PAD, UNK), min_freq=config.min_freq)


def feature_stats(cases: Cases) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each feature's mean and standard deviation over every non-missing frame: (C,), (C,)."""
    frames = np.concatenate(cases.series).astype(np.float64)  # (ΣT, C)
    known = ~np.isnan(frames)
    count = np.maximum(known.sum(0), 1)
    mean = np.where(known, frames, 0).sum(0) / count  # (C,)
    std = np.sqrt(np.where(known, (frames - mean) ** 2, 0).sum(0) / count)  # (C,)
    return tuple(mean.tolist()), tuple(np.where(std > 0, std, 1.0).tolist())


def check_cases(cases: Cases, fmt: Format, num_features: int = 0) -> None:
    """The cases must be what the model reads: text, or series of ``num_features`` dimensions."""
    if (cases.texts is not None) != (fmt is Format.TSV):
        have = "text" if cases.texts is not None else ".ts series"
        raise DataError(cases.path, None, f"{have}, but the model was trained on {fmt.value} data")
    if fmt is Format.TS and cases.series[0].shape[1] != num_features:
        raise DataError(cases.path, None, f"the cases have {cases.series[0].shape[1]} dimensions; "
                                          f"the model was trained on {num_features}")


def model_inputs(cases: Cases, config: ClassifierConfig, words_vocab: Vocab | None,
                 text: TextConfig) -> list[Tensor]:
    """The classifier's input for each case: word ids (T,) or frames (T, C), after :func:`check_cases`."""
    check_cases(cases, Format.TSV if config.vocab_size else Format.TS, config.num_features)
    if cases.texts is not None:
        return [torch.tensor(words_vocab.encode(words(t, text)), dtype=torch.long) for t in cases.texts]
    return [torch.from_numpy(s) for s in cases.series]


# ---------------------------------------------------------------- baselines


@dataclass(frozen=True)
class LogRegConfig:
    C: float = 1.0  # inverse strength of the L2 penalty of scikit-learn's LogisticRegression
    max_iter: int = 2000  # L-BFGS iterations


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
