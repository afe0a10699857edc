"""ARPA back-off language models (the text format of SRILM and KenLM): rnnkit's n-gram
written as one, exactly, and any one read as a decoder's language model over labels.

The format: a ``\\data\\`` section of ``ngram N=COUNT`` lines, then for each order N a
``\\N-grams:`` section of lines ``log10 p*  w1 … wN  [log10 bow]``, then ``\\end\\``. The
probability of w after a context h follows the back-off rule, in log10:

    log p(w | h) = p*(h w)                    if h w is listed
                 = bow(h) + log p(w | h')     otherwise (h' drops h's oldest word)

with bow(h) = 0 when h is not listed or its line has no back-off column, and only the
last N - 1 words of a context counting.

Boundaries. An :class:`rnnkit.ngram.NGram` is fitted on one stream in which an ``end`` id
follows every sequence, so a sequence starts "after end" (:class:`rnnkit.ngram.LabelLM`).
In the file, ``end`` predicted is ``</s>`` and ``end`` opening a context is ``<s>``; an
n-gram with ``end`` anywhere else spans two sequences and is left out (no query made after
``<s>`` reaches it). ``<s>`` is listed as a 1-gram of log10 probability -99 (it is never
predicted; SRILM's convention), carrying the back-off weight of the context ``end``.
:class:`ArpaLM` reads the decoder's ``end_id`` as ``</s>`` and a prefix after ``<s>``, so
reading a written model back gives :class:`~rnnkit.ngram.LabelLM`'s probabilities. In rnnkit's
recognizers the end id is the blank's (0), which a label sequence never holds.

Exactness. Interpolated Witten-Bell gives an unseen w after a seen context h the mass
u(h) / (c(h) + u(h)) · P(w | h'), and P(· | h') is itself the full interpolated model, so
storing each seen n-gram's own P(w | h) and each seen context's bow(h) = u(h) / (c(h) + u(h))
reproduces the model; values are printed with every digit (``repr``), so they read back
bit for bit.

Symbols. A word is one whitespace-free token, so the one-space symbol of character units is
written and read as ``<space>`` (``space=``); any other symbol holding whitespace cannot be
written. A label whose symbol the file lacks is read as ``<unk>`` when the file lists it, else
as a 1-gram of log10 probability :data:`FLOOR` (-99: what KenLM does, at -100) that backs off
like any other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from rnnkit.data.errors import DataError, read_lines
from rnnkit.ngram import NGram

START, END, UNKNOWN, SPACE = "<s>", "</s>", "<unk>", "<space>"
FLOOR = -99.0  # log10 probability of <s> written, and of a word a file without <unk> lacks
LN10 = math.log(10)

Grams = list[dict[tuple[str, ...], tuple[float, float]]]  # per order n - 1: words -> (log10 p*, log10 bow)


def _word(symbol: str, space: str) -> str:
    return space if symbol == " " else symbol


def write_arpa(model: NGram, symbols: Sequence[str], out: str | Path | TextIO, end_id: int, *,
               start: str = START, end: str = END, space: str = SPACE) -> None:
    """Write a fitted ``model`` to ``out`` (a path or a text stream) as an ARPA file: symbol
    i is ``symbols[i]`` (V of them), and ``end_id`` the id that follows each training sequence,
    written ``end`` where it is predicted and ``start`` where it opens a context (the module
    docstring has the rules). Every one of the V symbols is a 1-gram (add-one smoothing gives
    each some mass), with ``start`` at log10 -99; every seen n-gram that does not span two
    sequences follows. ValueError for symbols that cannot be words (empty, whitespace other
    than the one-space symbol, ``start``/``end`` at another id, two alike)."""
    V, N = model.V, model.order
    if not model.tables:
        raise ValueError("the model is not fitted")
    if len(symbols) != V:
        raise ValueError(f"the model has {V} symbols; got {len(symbols)} names")
    if not 0 <= end_id < V:
        raise ValueError(f"end_id must be in [0, V={V}); got {end_id}")
    names = [end if i == end_id else _word(s, space) for i, s in enumerate(symbols)]  # (V,) the predicted word
    for i, name in enumerate(names):
        if i != end_id and (not name or any(c.isspace() for c in name) or name in (start, end)):
            raise ValueError(f"symbol {i} ({symbols[i]!r}) cannot be an ARPA word")
    if len(set(names)) != V:
        raise ValueError("two symbols are written as the same word")
    sections: list[list[str]] = []
    for n in range(1, N + 1):
        codes = model.tables[n - 1][0] if n > 1 else np.arange(V, dtype=np.int64)  # (M,) the n-grams listed
        grams = np.stack([codes // V ** (n - 1 - j) % V for j in range(n)], 1)  # (M, n)
        keep = ~(grams[:, 1:-1] == end_id).any(1)  # end inside: two sequences
        codes, grams = codes[keep], grams[keep]
        probs = model.gram_log_probs(grams) / LN10  # (M,)
        bows = np.full(len(codes), np.nan)  # (M,) log10 bow where the n-gram is a seen context
        if n < N:
            uniq, totals, followers = model.contexts[n - 1]
            pos = np.searchsorted(uniq, codes).clip(max=max(len(uniq) - 1, 0))
            seen = uniq[pos] == codes if len(uniq) else np.zeros(len(codes), bool)
            seen &= (grams[:, -1] != end_id) | (n == 1)  # a context ending in end spans two sequences; (end,) is <s>
            bows[seen] = np.log10(followers[pos[seen]] / (totals[pos[seen]] + followers[pos[seen]]))
        lines = []
        for ids, p, b in zip(grams.tolist(), probs.tolist(), bows.tolist()):
            words = " ".join([start if ids[0] == end_id and n > 1 else names[ids[0]], *(names[i] for i in ids[1:])])
            lines.append(f"{p!r}\t{words}" + ("" if math.isnan(b) else f"\t{b!r}"))
        if n == 1:  # <s>: never predicted; the back-off weight of the context end
            b = float(bows[end_id])
            lines.append(f"{FLOOR!r}\t{start}" + ("" if math.isnan(b) else f"\t{b!r}"))
            lines[end_id] = f"{float(probs[end_id])!r}\t{end}"  # </s> opens no context
        sections.append(lines)
    text = "\n\\data\\\n" + "".join(f"ngram {n}={len(s)}\n" for n, s in enumerate(sections, 1))
    text += "".join(f"\n\\{n}-grams:\n" + "".join(line + "\n" for line in s) for n, s in enumerate(sections, 1))
    text += "\n\\end\\\n"
    if isinstance(out, (str, Path)):
        Path(out).write_text(text, encoding="utf-8")
    else:
        out.write(text)


_COUNT = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")
_SECTION = re.compile(r"\\(\d+)-grams:")


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return None if math.isnan(x) else x


def read_arpa(path: str | Path) -> Grams:
    """Each order's n-grams of an ARPA file: ``grams[n - 1][(w1, …, wn)] = (log10 p*, log10
    bow)``, bow 0 where the line has none (and ignored at the highest order).

    Lines before ``\\data\\`` and after ``\\end\\`` are comments; blank lines and the spacing
    of fields (tabs or spaces) do not matter. DataError names the line of: a malformed
    ``ngram N=COUNT`` line, orders not 1, 2, … in turn, a section out of order or not
    counted, a line without a log10 probability <= 0, N words and perhaps a back-off weight
    (so an n-gram of the wrong order), a word not among the 1-grams, an n-gram listed twice,
    and a count the section does not match (at its ``ngram`` line); and of a file without
    ``\\data\\``, n-grams or ``\\end\\``.
    """
    lines = read_lines(path)
    counts: dict[int, tuple[int, int]] = {}  # order -> (count, line number)
    grams: Grams = []
    section: int | None = None  # None: before \data\; 0: in \data\; n: in \n-grams:
    done = False
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if section is None:
            if line == "\\data\\":
                section = 0
            continue
        if line == "\\end\\":
            done = True
            break
        if line.startswith("\\"):
            match = _SECTION.fullmatch(line)
            if match is None:
                raise DataError(path, number, f"expected '\\N-grams:' or '\\end\\', got {line!r}")
            n = int(match[1])
            if n != len(grams) + 1 or n not in counts:
                raise DataError(path, number, f"{line!r}: the sections must be those \\data\\ counts, in order; "
                                              f"expected '\\{len(grams) + 1}-grams:'")
            if grams:
                _check_count(path, counts, grams)
            grams.append({})
            section = n
        elif section == 0:
            match = _COUNT.fullmatch(line)
            if match is None:
                raise DataError(path, number, f"expected 'ngram N=COUNT' in \\data\\, got {line!r}")
            n = int(match[1])
            if n != len(counts) + 1:
                raise DataError(path, number, f"expected the count of the {len(counts) + 1}-grams, got {line!r}")
            counts[n] = (int(match[2]), number)
        else:
            n = section
            fields = line.split()
            if len(fields) not in (n + 1, n + 2):
                raise DataError(path, number, f"a {n}-gram line holds a log10 probability, {n} word(s) and perhaps "
                                              f"a back-off weight; got {len(fields)} fields")
            prob = _number(fields[0])
            if prob is None or prob > 0:
                raise DataError(path, number, f"expected a log10 probability (a number <= 0), got {fields[0]!r}")
            bow = _number(fields[-1]) if len(fields) == n + 2 else 0.0
            if bow is None:
                raise DataError(path, number, f"expected a back-off weight (a number), got {fields[-1]!r}: "
                                              f"is this a {n + 1}-gram in the {n}-grams?")
            words = tuple(fields[1:n + 1])
            for w in words if n > 1 else ():
                if (w,) not in grams[0]:
                    raise DataError(path, number, f"{w!r} is not among the 1-grams")
            if words in grams[-1]:
                raise DataError(path, number, f"{' '.join(words)!r} is listed twice")
            grams[-1][words] = (prob, bow if n < len(counts) else 0.0)
    if section is None:
        raise DataError(path, None, "no \\data\\ section (not an ARPA file?)")
    if not counts:
        raise DataError(path, None, "\\data\\ counts no n-grams")
    if not done:
        raise DataError(path, len(lines), "the file ends without \\end\\")
    if len(grams) != len(counts):
        raise DataError(path, number, f"\\end\\ before the {len(grams) + 1}-grams that \\data\\ counts")
    _check_count(path, counts, grams)
    return grams


def _check_count(path: str | Path, counts: dict[int, tuple[int, int]], grams: Grams) -> None:
    n = len(grams)
    count, number = counts[n]
    if len(grams[-1]) != count:
        raise DataError(path, number, f"\\data\\ counts {count} {n}-grams; the \\{n}-grams: section lists "
                                      f"{len(grams[-1])}")


class ArpaLM:
    """An ARPA file as a decoder's language model over K labels (the
    :class:`rnnkit.decode.PrefixLM` protocol), by the back-off rule of the module docstring.

    Label i is the word ``symbols[i]`` (the one-space symbol read as ``space``); ``end_id``
    is read as ``end`` (``</s>``) whatever its symbol, or None where no label is the end;
    ``blank`` (if given and not ``end_id``) is a label the model never predicts: its entry is
    -inf. A prefix is the labels read after ``start`` (``<s>``); only its last order - 1
    count. A label the file lacks is read as ``<unk>``, or as a FLOOR 1-gram without one (in
    a context too). Distributions are computed over the whole vocabulary at once and cached
    by context.

    Example:
        >>> lm = ArpaLM("lm.arpa", ["<blank>", "a", "b"], end_id=0)  # blank 0 doubles as the end
        >>> lm.next_log_probs((1,)).shape, lm.end_log_prob((1, 2)) < 0
        ((3,), True)
    """

    def __init__(self, path: str | Path, symbols: Sequence[str], end_id: int | None, *, blank: int | None = None,
                 start: str = START, end: str = END, unk: str = UNKNOWN, space: str = SPACE):
        K = len(symbols)
        for name, value in (("end_id", end_id), ("blank", blank)):
            if value is not None and not 0 <= value < K:
                raise ValueError(f"{name} must be in [0, K={K}); got {value}")
        self.grams = read_arpa(path)
        self.order, self.K, self.end_id, self.blank = len(self.grams), K, end_id, blank
        self.words = [w for (w,) in self.grams[0]]  # (W,) the file's vocabulary
        index = {w: i for i, w in enumerate(self.words)}
        self.unk = index.get(unk, len(self.words))  # the floor is one slot past the file's words
        self.uni = np.array([p for p, _ in self.grams[0].values()] + [FLOOR] * (unk not in index))  # (W or W+1,)
        self.bows: dict[tuple[int, ...], float] = {}  # listed context -> log10 bow
        self.after: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}  # context -> word ids, log10 p*
        for n, table in enumerate(self.grams, 1):
            grouped: dict[tuple[int, ...], tuple[list[int], list[float]]] = {}
            for words, (p, b) in table.items():
                ids = tuple(index[w] for w in words)
                if b != 0.0:
                    self.bows[ids] = b
                if n > 1:
                    entry = grouped.setdefault(ids[:-1], ([], []))
                    entry[0].append(ids[-1])
                    entry[1].append(p)
            self.after.update({h: (np.array(ws), np.array(ps)) for h, (ws, ps) in grouped.items()})
        labels = [end if i == end_id else _word(s, space) for i, s in enumerate(symbols)]
        self.label_ids = np.array([index.get(w, self.unk) for w in labels] + [index.get(end, self.unk)])  # (K+1,)
        self.start_id = index.get(start, -1)  # -1: no n-gram holds it
        self.cache: dict[tuple[int, ...], np.ndarray] = {}

    def log10_prob(self, words: Sequence[str]) -> float:
        """log10 p(words[-1] | words[:-1]) over the file's own words (one missing from it read
        as ``<unk>`` or FLOOR), by the rule; only the last order - 1 of the context count."""
        if self.unk < len(self.words):  # the file's <unk> stands for a missing word
            words = [w if (w,) in self.grams[0] else self.words[self.unk] for w in words]
        *context, word = words
        context = context[-(self.order - 1):] if self.order > 1 else []
        back = 0.0  # the back-off weights of the longer contexts passed by
        for s in range(len(context) + 1):
            hit = self.grams[len(context) - s].get((*context[s:], word))
            if hit is not None:
                return hit[0] + back
            if s < len(context):
                back += self.grams[len(context) - s - 1].get(tuple(context[s:]), (0.0, 0.0))[1]
        return FLOOR + back

    def _distribution(self, context: tuple[int, ...]) -> np.ndarray:
        """(W or W+1,) log10 p(w | context) of every word of the file (and the floor slot)."""
        p = self.uni.copy()
        for k in range(1, len(context) + 1):  # p(. | h) = bow(h) + p(. | h'), then the listed h w
            h = context[-k:]
            p += self.bows.get(h, 0.0)
            if h in self.after:
                ws, ps = self.after[h]
                p[ws] = ps
        return p

    def _row(self, prefix: tuple[int, ...]) -> np.ndarray:
        """(K+1,) natural-log probabilities of the K labels and the end after ``prefix``."""
        keep = self.order - 1
        key = (() if keep == 0 else tuple(prefix[-keep:]) if len(prefix) >= keep else (-1, *prefix))
        row = self.cache.get(key)
        if row is None:
            context = tuple(self.start_id if k == -1 else int(self.label_ids[k]) for k in key)
            row = self._distribution(context)[self.label_ids] * LN10
            if self.blank is not None and self.blank != self.end_id:
                row[self.blank] = -math.inf
            row.flags.writeable = False
            self.cache[key] = row
        return row

    def next_log_probs(self, prefix: tuple[int, ...]) -> np.ndarray:
        """(K,) natural-log probability of each label after ``<s>`` + ``prefix``."""
        return self._row(prefix)[:self.K]

    def end_log_prob(self, prefix: tuple[int, ...]) -> float:
        """log P(``</s>`` | ``<s>`` + ``prefix``), natural log."""
        return float(self._row(prefix)[self.K])

    def sequence_log_prob(self, labels: Sequence[int]) -> float:
        """log P(labels, then the end | ``<s>``), natural log: each label after those before it."""
        labels = tuple(labels)
        return sum(float(self.next_log_probs(labels[:i])[k]) for i, k in enumerate(labels)) + self.end_log_prob(labels)
