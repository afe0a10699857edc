"""Interpolated Witten-Bell n-gram model over integer ids: the count-based
baseline that recurrent language models are measured against."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _codes(ids: np.ndarray, order: int, base: int) -> np.ndarray:
    """Code of the n-gram ending at each position >= order-1: sum of ids · base^k."""
    n = len(ids) - order + 1
    code = np.zeros(max(n, 0), dtype=np.int64)
    for k in range(order):
        code = code * base + ids[k:k + n]
    return code


class NGram:
    """Witten-Bell interpolated model of a given order (1 = unigram).

        P(w | h) = (c(h w) + u(h) · P(w | h')) / (c(h) + u(h))

    where h' drops h's oldest symbol and u(h) is the number of distinct
    symbols seen after h; the base case is add-one smoothed unigrams.

    Example:
        >>> lm = NGram(order=3, vocab_size=4).fit(np.array([0, 1, 2, 0, 1, 3]))
        >>> round(lm.bits_per_symbol(np.array([0, 1, 2])), 3) > 0
        True
    """

    def __init__(self, order: int, vocab_size: int):
        if order < 1:
            raise ValueError(f"order must be >= 1; got {order}")
        if vocab_size ** order >= 2 ** 62:
            raise ValueError(f"vocab_size ** order is too large for 64-bit codes: {vocab_size}^{order}")
        self.order, self.V = order, vocab_size
        self.tables: list[tuple[np.ndarray, np.ndarray]] = []  # per order: sorted codes, counts

    def fit(self, ids: np.ndarray) -> NGram:
        ids = np.asarray(ids, dtype=np.int64)
        self.tables = [np.unique(_codes(ids, n, self.V), return_counts=True) for n in range(1, self.order + 1)]
        # for each context (order n-1 >= 1): total count and number of distinct followers
        self.contexts = []
        for n in range(2, self.order + 1):
            codes, counts = self.tables[n - 1]
            ctx = codes // self.V
            uniq, first = np.unique(ctx, return_index=True)
            totals = np.add.reduceat(counts, first)
            followers = np.diff(np.append(first, len(ctx)))
            self.contexts.append((uniq, totals, followers))
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, table: np.ndarray, values: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(table, keys).clip(max=max(len(table) - 1, 0))
        hit = table[pos] == keys if len(table) else np.zeros(len(keys), bool)
        return np.where(hit, values[pos] if len(table) else 0, 0)

    def log_probs(self, ids: np.ndarray) -> np.ndarray:
        """Natural-log probability of each symbol given up to order-1 predecessors."""
        ids = np.asarray(ids, dtype=np.int64)
        codes1, counts1 = self.tables[0]
        uni = (self._lookup(ids, codes1, counts1) + 1) / (counts1.sum() + self.V)
        p = uni
        for n in range(2, self.order + 1):
            # positions i >= n-1 have a full context of n-1 symbols
            gram = np.full(len(ids), -1, dtype=np.int64)
            gram[n - 1:] = _codes(ids, n, self.V)
            ctx = gram // self.V
            codes, counts = self.tables[n - 1]
            uniq, totals, followers = self.contexts[n - 2]
            c_hw = self._lookup(gram, codes, counts)
            c_h = self._lookup(ctx, uniq, totals)
            u_h = self._lookup(ctx, uniq, followers)
            seen = (c_h > 0) & (gram >= 0)
            p = np.where(seen, (c_hw + u_h * p) / np.maximum(c_h + u_h, 1), p)
        return np.log(p)

    def bits_per_symbol(self, ids: np.ndarray) -> float:
        return float(-self.log_probs(ids).mean() / math.log(2))

    def next_log_probs(self, context: Sequence[int]) -> np.ndarray:
        """(V,) natural-log P(w | context) of every symbol w: what :meth:`log_probs` gives the
        symbol after ``context`` (only its last order-1 symbols count)."""
        w = np.arange(self.V, dtype=np.int64)
        codes1, counts1 = self.tables[0]
        p = (self._lookup(w, codes1, counts1) + 1) / (counts1.sum() + self.V)
        history = [int(s) for s in context][-(self.order - 1):] if self.order > 1 else []
        for n in range(2, min(self.order, len(history) + 1) + 1):
            h = 0
            for s in history[len(history) - (n - 1):]:
                h = h * self.V + s
            codes, counts = self.tables[n - 1]
            uniq, totals, followers = self.contexts[n - 2]
            key = np.array([h], dtype=np.int64)
            c_h, u_h = self._lookup(key, uniq, totals)[0], self._lookup(key, uniq, followers)[0]
            if c_h > 0:
                p = (self._lookup(h * self.V + w, codes, counts) + u_h * p) / (c_h + u_h)
        return np.log(p)

    def gram_log_probs(self, grams: np.ndarray) -> np.ndarray:
        """(M,) natural-log P(w | h) of each row h·w of ``grams`` (M, n), 1 <= n <= order: what
        :meth:`next_log_probs` gives the row's last symbol after the n - 1 before it, for many
        n-grams at once."""
        grams = np.asarray(grams, dtype=np.int64)
        if grams.ndim != 2 or not 1 <= grams.shape[1] <= self.order:
            raise ValueError(f"grams must be (M, n) with 1 <= n <= order={self.order}; got shape {grams.shape}")
        n = grams.shape[1]
        codes1, counts1 = self.tables[0]
        p = (self._lookup(grams[:, -1], codes1, counts1) + 1) / (counts1.sum() + self.V)  # (M,)
        gram = grams[:, -1].copy()  # (M,) code of the last k symbols of each row
        for k in range(2, n + 1):
            gram = gram + grams[:, n - k] * self.V ** (k - 1)
            codes, counts = self.tables[k - 1]
            uniq, totals, followers = self.contexts[k - 2]
            ctx = gram // self.V
            c_hw = self._lookup(gram, codes, counts)
            c_h, u_h = self._lookup(ctx, uniq, totals), self._lookup(ctx, uniq, followers)
            p = np.where(c_h > 0, (c_hw + u_h * p) / np.maximum(c_h + u_h, 1), p)
        return np.log(p)


class LabelLM:
    """An :class:`NGram` over a decoder's labels as its language model (the
    :class:`rnnkit.decode.PrefixLM` protocol): sequences were fitted with symbol ``end``
    after each one, and each prefix is read after an ``end`` (the start of a sequence)."""

    def __init__(self, model: NGram, end: int):
        self.model, self.end = model, end
        self.cache: dict[tuple[int, ...], np.ndarray] = {}

    def next_log_probs(self, prefix: tuple[int, ...]) -> np.ndarray:
        context = ((self.end,) + tuple(prefix))[-(self.model.order - 1):] if self.model.order > 1 else ()
        if context not in self.cache:
            self.cache[context] = self.model.next_log_probs(context)
        return self.cache[context]

    def end_log_prob(self, prefix: tuple[int, ...]) -> float:
        return float(self.next_log_probs(prefix)[self.end])
