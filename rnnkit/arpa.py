"""ARPA back-off language models (the text format of SRILM and KenLM): rnnkit's n-gram
written as one, and any one read as a decoder's language model over labels.

An :class:`rnnkit.ngram.NGram` is fitted on a stream in which an ``end`` id follows every
sequence. In the file, ``end`` as the predicted symbol is ``</s>`` and ``end`` opening a
context is ``<s>``; n-grams with ``end`` anywhere else span two sequences and are left out
(a decoder never asks for them). Witten-Bell interpolation converts exactly: a seen n-gram
h·w stores the model's own P(w | h), and a seen context h the back-off weight
u(h) / (c(h) + u(h)), since an unseen w gets u(h) / (c(h) + u(h)) · P(w | h').

Reading follows the standard rule, in log10: log p(w | h) = p*(h w) if h w is listed, else
bow(h) + log p(w | h′) (bow 0 for a context not listed); a word the file lacks takes
``<unk>``'s probability, or :data:`FLOOR` without one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from rnnkit.data.errors import DataError
from rnnkit.ngram import NGram

START, END, UNKNOWN = "<s>", "</s>", "<unk>"
FLOOR = -99.0  # log10 probability of what a file cannot give
LN10 = math.log(10)


def write_arpa(model: NGram, symbols: Sequence[str], out: TextIO, end_id: int) -> None:
    """Write ``model`` (symbol i is ``symbols[i]``; ``end_id`` the end symbol) to ``out``."""
    name = lambda i, first: (START if first else END) if i == end_id else symbols[i]  # noqa: E731
    V, order = model.V, model.order
    sections: list[list[str]] = []
    uni = model.next_log_probs(()) / LN10  # (V,)
    lines = [f"{uni[w]:.9f}\t{name(w, False)}" for w in range(V)]
    contexts = {}  # context tuple -> bow (log10), for contexts the model has seen
    for n in range(2, order + 1):
        uniq, totals, followers = model.contexts[n - 2]
        for code, c, u in zip(uniq.tolist(), totals.tolist(), followers.tolist()):
            ids = _decode(code, n - 1, V)
            if end_id not in ids[1:]:
                contexts[ids] = math.log10(u / (c + u))
    start_bow = contexts.get((end_id,), 0.0)
    lines = [f"{p}\t{contexts[(i,)]:.9f}" if (i,) in contexts and i != end_id else p
             for i, p in zip(range(V), lines)]
    lines.append(f"{FLOOR}\t{START}\t{start_bow:.9f}")
    sections.append(lines)
    for n in range(2, order + 1):
        codes, _ = model.tables[n - 1]
        by_context: dict[tuple[int, ...], list[int]] = {}
        for code in codes.tolist():
            ids = _decode(code, n, V)
            if end_id not in ids[1:-1]:
                by_context.setdefault(ids[:-1], []).append(ids[-1])
        lines = []
        for ctx, words in sorted(by_context.items()):
            if ctx[0] != end_id and end_id in ctx:
                continue
            probs = model.next_log_probs(ctx) / LN10  # (V,)
            for w in words:
                text = " ".join([name(ctx[0], True), *(name(i, False) for i in ctx[1:]), name(w, False)])
                bow = contexts.get(ctx + (w,)) if n < order and w != end_id else None
                lines.append(f"{probs[w]:.9f}\t{text}" + (f"\t{bow:.9f}" if bow is not None else ""))
        sections.append(lines)
    out.write("\n\\data\\\n" + "".join(f"ngram {n}={len(s)}\n" for n, s in enumerate(sections, 1)))
    for n, lines in enumerate(sections, 1):
        out.write(f"\n\\{n}-grams:\n" + "".join(line + "\n" for line in lines))
    out.write("\n\\end\\\n")


def _decode(code: int, n: int, V: int) -> tuple[int, ...]:
    ids = []
    for _ in range(n):
        code, k = divmod(code, V)
        ids.append(k)
    return tuple(reversed(ids))


def read_arpa(path: str | Path) -> list[dict[tuple[str, ...], tuple[float, float]]]:
    """Each order's n-grams: words -> (log10 p, log10 bow). DataError names a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file")
    counts: dict[int, int] = {}
    grams: list[dict[tuple[str, ...], tuple[float, float]]] = []
    section = None  # None: before \data\; 0: in \data\; n: in \n-grams:
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = 0
        elif line == "\\end\\":
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            try:
                section = int(line[1:-len("-grams:")])
            except ValueError:
                raise DataError(path, number, f"a malformed section header {line!r}") from None
            if section != len(grams) + 1 or section not in counts:
                raise DataError(path, number, f"section {line!r} out of order or not counted in \\data\\")
            grams.append({})
        elif section == 0:
            key, _, value = line.partition("=")
            if not key.startswith("ngram ") or not value.strip().isdigit() or not key[6:].strip().isdigit():
                raise DataError(path, number, f"expected 'ngram N=COUNT' in \\data\\, got {line!r}")
            counts[int(key[6:])] = int(value)
        elif section:
            fields = line.split()
            if len(fields) not in (section + 1, section + 2):
                raise DataError(path, number, f"a {section}-gram line needs {section + 1} or {section + 2} fields, "
                                              f"got {len(fields)}")
            try:
                prob = float(fields[0])
                bow = float(fields[section + 1]) if len(fields) == section + 2 else 0.0
            except ValueError:
                raise DataError(path, number, f"not a number in {line!r}") from None
            grams[-1][tuple(fields[1:section + 1])] = (prob, bow)
        elif section is None:
            continue  # text before \data\ is a comment
    for n, count in counts.items():
        if n > len(grams) or len(grams[n - 1]) != count:
            got = len(grams[n - 1]) if n <= len(grams) else 0
            raise DataError(path, None, f"\\data\\ counts {count} {n}-grams, the file lists {got}")
    if not grams:
        raise DataError(path, None, "no n-grams (not an ARPA file?)")
    return grams


class ArpaLM:
    """An ARPA file as a decoder's language model over labels (the
    :class:`rnnkit.decode.PrefixLM` protocol): label i is ``symbols[i]`` and ``end_id`` is
    ``</s>``; a prefix is read after ``<s>``."""

    def __init__(self, path: str | Path, symbols: Sequence[str], end_id: int):
        self.grams = read_arpa(path)
        self.order = len(self.grams)
        self.words = [END if i == end_id else s for i, s in enumerate(symbols)]
        unk = self.grams[0].get((UNKNOWN,), (FLOOR, 0.0))[0]
        self.unknown = unk
        self.end_id = end_id
        self.cache: dict[tuple[str, ...], np.ndarray] = {}

    def _log10(self, context: tuple[str, ...], word: str) -> float:
        for start in range(len(context) + 1):
            h = context[start:]
            hit = self.grams[len(h)].get(h + (word,)) if len(h) < self.order else None
            if hit is not None:
                return hit[0] + sum(self.grams[len(context) - s - 1].get(context[s:], (0.0, 0.0))[1]
                                    for s in range(start))
        back = sum(self.grams[len(context) - s - 1].get(context[s:], (0.0, 0.0))[1] for s in range(len(context)))
        return self.unknown + back

    def next_log_probs(self, prefix: tuple[int, ...]) -> np.ndarray:
        context = (START, *(self.words[i] for i in prefix))[-(self.order - 1):] if self.order > 1 else ()
        if context not in self.cache:
            self.cache[context] = np.array([self._log10(context, w) for w in self.words]) * LN10
        return self.cache[context]

    def end_log_prob(self, prefix: tuple[int, ...]) -> float:
        return float(self.next_log_probs(prefix)[self.end_id])
