"""The data of sequence classification (:mod:`rnnkit.tasks.classify`): labelled or
unlabelled cases of a ``label<TAB>text`` file or a ``.ts`` file, the class and word
vocabularies, the features' statistics, and each case's model input.

Dimensions: T time, C features, N cases.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.errors import DataError, read_lines
from rnnkit.data.ts import read_ts
from rnnkit.data.tsv import read_labelled
from rnnkit.settings import COUNT, check, setting
from rnnkit.vocab import PAD, UNK, Vocab


class Format(enum.Enum):
    TSV = "tsv"  # label<TAB>text lines, whitespace-separated words
    TS = "ts"  # sktime .ts cases: real-valued frames (T, C) and a class label


EXTENSIONS = {".tsv": Format.TSV, ".ts": Format.TS}


def data_format(path: str | Path, given: Format | None, default: Format | None = None) -> Format:
    """The format given, else the file's extension, else ``default``."""
    if given is not None:
        return given
    fmt = EXTENSIONS.get(Path(path).suffix.lower(), default)
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the extension {Path(path).suffix!r} "
                         f"(.tsv or .ts); name it with --format tsv|ts")
    return fmt


@dataclass(frozen=True)
class TextConfig:
    lowercase: bool = False  # lowercase before splitting into words
    min_freq: int = setting(1, COUNT)  # training words seen fewer times become <unk>

    def __post_init__(self) -> None:
        check(self)


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


def subset(cases: Cases, indices: list[int]) -> Cases:
    """The cases at ``indices`` (a held-out split)."""
    def pick(values):
        return None if values is None else [values[i] for i in indices]

    return Cases(cases.path, pick(cases.texts), pick(cases.series), pick(cases.labels), pick(cases.lines),
                 cases.declared)


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


def model_inputs(cases: Cases, words_vocab: Vocab | None, text: TextConfig, num_features: int = 0) -> list[Tensor]:
    """The classifier's input for each case: word ids (T,) with a word vocabulary, else frames
    (T, C = num_features); after :func:`check_cases`."""
    check_cases(cases, Format.TSV if words_vocab is not None else Format.TS, num_features)
    if cases.texts is not None:
        return [torch.tensor(words_vocab.encode(words(t, text)), dtype=torch.long) for t in cases.texts]
    return [torch.from_numpy(s) for s in cases.series]
