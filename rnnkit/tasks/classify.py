"""Sequence classification, many-to-one: a recurrent layer reads
a whole sequence (the words of a sentence, or real-valued feature frames) and one
label is predicted for it.

What the output layer sees is chosen by :class:`Pool`:

- LAST: the output at each sequence's own last step; bidirectional: the forward
  direction's last step and the backward direction's first (its final output).
- MEAN, MAX: the mean or the element-wise maximum over the valid steps only.
- ATTENTION: s = Σ_t α_t y_t, α = softmax over the valid steps of v · tanh(W y_t + b).
- EVERY_STEP: no summary; every step is scored against the sequence's label
  (a divergence at every step), and a prediction averages the
  per-step log-probabilities over the valid steps.

Padding never reaches a computation: valid steps are selected with
``torch.where`` (never multiplied by a mask), so NaN in padding changes nothing.

The data (reading, vocabularies, inputs) is :mod:`rnnkit.tasks.classify_data`; the
summaries are :mod:`rnnkit.pooling`; the logistic-regression baselines are
:mod:`rnnkit.tasks.linear_baselines`. :func:`training_job` is the pipeline (files and
configs -> a training job), :func:`train_baseline` fits a baseline, and
:func:`load_classifier` reads any trained model back.

Dimensions: B batch, T time, C features, E embedding, H hidden, D directions,
K classes, V vocabulary, N cases.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.batch import Batch, BatchingConfig, pad_sequences
from rnnkit.checkpoint import Checkpoint, load_weights, read_config, save_model_dir
from rnnkit.data.split import hold_out
from rnnkit.distributed import SINGLE, World
from rnnkit.layers import LAYERS, CellKind
from rnnkit.loader import SequenceLoader
from rnnkit.losses import sequence_label_cross_entropy
from rnnkit.pooling import AttentionPool, last_pool, max_pool, mean_pool
from rnnkit.runner import TrainingJob
from rnnkit.settings import COUNT, FRACTION, NATURAL, check, setting
from rnnkit.tasks.classify_data import (
    Cases,
    Format,
    TextConfig,
    check_cases,
    data_format,
    feature_stats,
    label_ids,
    label_vocab,
    model_inputs,
    read_cases,
    subset,
    word_vocab,
)
from rnnkit.tasks.linear_baselines import BagOfWords, LogRegConfig, SeriesStats
from rnnkit.train import StepOutput
from rnnkit.vocab import Vocab


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


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class ClassifierConfig:
    num_classes: int = setting(rule=NATURAL)  # K; 0 until the data sets it
    vocab_size: int = setting(0, NATURAL)  # V: word inputs, embedded (0 for real-valued inputs)
    embed_size: int = setting(100, COUNT)  # E, width of the word embeddings
    num_features: int = setting(0, NATURAL)  # C: real-valued inputs, standardised (0 for word inputs)
    mean: tuple[float, ...] = ()  # (C,) each feature's training-set mean over all valid frames
    std: tuple[float, ...] = ()  # (C,) its standard deviation (1 where that is 0)
    cell: CellKind = CellKind.LSTM
    hidden_size: int = setting(64, COUNT)  # H, per direction
    num_layers: int = setting(1, COUNT)
    bidirectional: bool = False
    dropout: float = setting(0.0, FRACTION)  # on the word embeddings, between layers and on the summary
    pool: Pool = Pool.LAST
    attention_size: int = setting(64, COUNT)  # A, width of the attention's hidden layer (Pool.ATTENTION)

    def __post_init__(self) -> None:
        check(self)

    def check(self) -> None:
        """The input and output sizes must be set (from the data: :func:`training_job` does it)."""
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
        config.check()
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


# ---------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class Defaults:
    """The settings a classifier trains with when none are given, by the kind of data: a
    bidirectional layer over real-valued frames summarised by its final states (JapaneseVowels:
    97-98% test accuracy), and over words max pooling with dropout and a higher learning rate
    (sentence polarity: ~73%), where words seen once stay <unk>."""

    cell: CellKind
    pool: Pool
    hidden_size: int  # per direction
    dropout: float
    lr: float
    min_freq: int
    bidirectional: bool = True


DEFAULTS = {Format.TS: Defaults(CellKind.GRU, Pool.LAST, hidden_size=64, dropout=0.0, lr=1e-3, min_freq=1),
            Format.TSV: Defaults(CellKind.LSTM, Pool.MAX, hidden_size=100, dropout=0.5, lr=3e-3, min_freq=2)}


@dataclass(frozen=True)
class ClassifyData:
    """The labelled cases a classifier trains on."""

    train: Path  # label<TAB>text .tsv or .ts file
    dev: Path | None = None  # scored each epoch, the best epoch kept; None: held out of train (holdout)
    format: Format | None = None  # None: from the extension
    text: TextConfig = TextConfig()
    batch_size: int = setting(32, COUNT)  # sequences per batch and process
    holdout: float = setting(0.1, FRACTION)  # without dev: the share of train held out, stratified by class
    seed: int = setting(0, NATURAL)  # batch order and the held-out part

    def __post_init__(self) -> None:
        check(self)


def read_data(data: ClassifyData) -> tuple[Cases, Cases | None, str | None]:
    """(train, dev, a note): the dev file's cases, or some held out of train, stratified by label."""
    fmt = data_format(data.train, data.format)
    train = read_cases(data.train, fmt)
    if data.dev is not None:
        return train, read_cases(data.dev, data_format(data.dev, data.format, fmt)), None
    split = hold_out(len(train.labels), data.holdout, data.seed, labels=train.labels)
    if not split.dev:
        return train, None, None
    return subset(train, split.train), subset(train, split.dev), split.describe("cases", str(data.train))


def training_job(data: ClassifyData, config: ClassifierConfig, world: World = SINGLE,
                 resumed: Checkpoint | None = None) -> TrainingJob:
    """The recurrent classifier's job: the classes, the word vocabulary (text) or the features'
    statistics (series) from train, or from the ``resumed`` checkpoint; dev accuracy each epoch.
    ``config``'s input fields (num_classes, vocab_size or num_features with mean and std) are
    set from them."""
    train, dev, note = read_data(data)
    fmt = data_format(data.train, data.format)
    labels = resumed.vocabs["labels"] if resumed else label_vocab(train)
    vocabs = {"labels": labels}
    if fmt is Format.TSV:
        vocabs["words"] = resumed.vocabs["words"] if resumed else word_vocab(train, data.text)
        inputs = {"vocab_size": len(vocabs["words"]), "num_features": 0, "mean": (), "std": ()}
    else:
        saved = resumed.config["classifier"] if resumed else None
        mean, std = (tuple(saved["mean"]), tuple(saved["std"])) if saved else feature_stats(train)
        inputs = {"vocab_size": 0, "num_features": len(mean), "mean": mean, "std": std}
    config = replace(config, num_classes=len(labels), **inputs)
    words = vocabs.get("words")
    x = model_inputs(train, words, data.text, config.num_features)
    examples = list(zip(x, label_ids(train, labels)))
    loader = SequenceLoader(examples, [len(s) for s in x], collate,
                            BatchingConfig(batch_size=data.batch_size, seed=data.seed), world.rank, world.size)
    evaluate = None
    if dev is not None:
        dev_x, dev_y = model_inputs(dev, words, data.text, config.num_features), label_ids(dev, labels)

        def evaluate(model: nn.Module) -> dict[str, float]:
            return classification_metrics(predict_log_probs(model, dev_x, device=next(model.parameters()).device),
                                          dev_y)
    record = {"task": "classify", "model": ModelKind.RNN.value, "format": fmt.value, "text": asdict(data.text),
              "classifier": config.to_dict()}
    model = Classifier(config)
    notes = ([note] if note else []) + [f"{len(x):,} training cases, {len(labels)} classes; "
                                        f"{sum(p.numel() for p in model.parameters()):,} parameters"]
    return TrainingJob(model, make_objective(config.pool), loader, len(loader.sampler), record, vocabs,
                       evaluate=evaluate, metric="accuracy" if dev is not None else None, minimize=False,
                       notes=notes)


@dataclass
class Loaded:
    """A trained model directory, ready to score cases."""

    kind: ModelKind
    fmt: Format  # what it reads
    labels: Vocab  # its classes
    scores: Callable[[Cases], Tensor]  # cases -> (N, K) class scores (log-probabilities)


def train_baseline(data: ClassifyData, kind: ModelKind, logreg: LogRegConfig, out: Path) -> dict[str, float] | None:
    """Fit a logistic-regression baseline on all of train (it needs no dev data to stop), save
    it in ``out``; its metrics on the dev file, if one is given."""
    fmt = data_format(data.train, data.format)
    wants = Format.TSV if kind is ModelKind.BOW_LOGREG else Format.TS
    if fmt is not wants:
        other = "bow-logreg" if fmt is Format.TSV else "stats-logreg"
        raise ValueError(f"--model {kind.value} reads {wants.value} data; {data.train} is {fmt.value} "
                         f"(use --model {other})")
    train, dev, _ = read_data(replace(data, holdout=0.0))
    labels = label_vocab(train)
    y = label_ids(train, labels)
    config = {"task": "classify", "model": kind.value, "format": fmt.value, "text": asdict(data.text),
              "logreg": asdict(logreg)}
    vocabs = {"labels": labels}
    model: nn.Module
    if kind is ModelKind.BOW_LOGREG:
        model = BagOfWords.fit(train.texts, y, len(labels), data.text, logreg)
        config["max_n"] = model.max_n
        vocabs["ngrams"] = model.ngrams
    else:
        model = SeriesStats.fit(train.series, y, len(labels), logreg)
        config["num_features"] = model.num_features
    save_model_dir(out, model, config, vocabs)
    if dev is None:
        return None
    return classification_metrics(load_classifier(out).scores(dev), label_ids(dev, labels))


def load_classifier(directory: Path, device: str = "cpu") -> Loaded:
    """Any trained classifier's model directory (or its run's --out)."""
    ck = read_config(directory)
    config = ck.config
    if config.get("task") != "classify":
        raise ValueError(f"{ck.path} holds a {config.get('task')!r} model, not a classify one")
    kind, fmt, text = ModelKind(config["model"]), Format(config["format"]), TextConfig(**config["text"])
    labels = ck.vocabs["labels"]
    if kind is ModelKind.RNN:
        classifier = ClassifierConfig.from_dict(config["classifier"])
        model = Classifier(classifier)
        load_weights(ck.path, model)
        model.to(device)
        words = ck.vocabs.get("words")

        def scores(cases: Cases) -> Tensor:
            return predict_log_probs(model, model_inputs(cases, words, text, classifier.num_features), device=device)

        return Loaded(kind, fmt, labels, scores)
    if kind is ModelKind.BOW_LOGREG:
        bow = BagOfWords(ck.vocabs["ngrams"], len(labels), text, config["max_n"])
        load_weights(ck.path, bow)

        def bow_scores(cases: Cases) -> Tensor:
            check_cases(cases, fmt)
            return bow.log_probs(cases.texts)

        return Loaded(kind, fmt, labels, bow_scores)
    stats = SeriesStats(config["num_features"], len(labels))
    load_weights(ck.path, stats)

    def stats_scores(cases: Cases) -> Tensor:
        check_cases(cases, fmt, stats.num_features)
        return stats.log_probs(cases.series)

    return Loaded(kind, fmt, labels, stats_scores)
