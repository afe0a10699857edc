"""Decoding CTC outputs (Graves et al. 2006): the best path, and the prefix beam search
of Hannun et al. 2014 with an optional language model over the output units.

The prefix search keeps, for each labelling prefix ℓ, the probabilities of all alignments
of the frames so far that collapse to ℓ, split by whether they end in a blank (p_b) or in
ℓ's last label (p_nb); one frame extends them exactly. Without pruning (a beam holding
every prefix) p_b + p_nb at the end is the exact sum over every alignment of the labelling,
so the search returns the exact most probable labelling. A hypothesis is ranked by

    log P_ctc(ℓ | x) + α · log P_lm(ℓ) + β · |ℓ|

(with the LM's end-of-sequence term once the input ends); the acoustic and LM terms are
kept apart, so the scores a hypothesis reports are the model's own.

Dimensions: B batch, T time, K labels (blank included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from rnnkit.checks import LengthsLike, check_lengths, check_tensor

NEG_INF = -math.inf


class PrefixLM(Protocol):
    """A language model over the output labels, queried one prefix at a time."""

    def next_log_probs(self, prefix: tuple[int, ...]) -> np.ndarray:
        """(K,) natural-log probability of each label following ``prefix`` (blank's: ignored)."""
        ...

    def end_log_prob(self, prefix: tuple[int, ...]) -> float:
        """log P(end of sequence | ``prefix``)."""
        ...


@dataclass(frozen=True)
class Hypothesis:
    labels: list[int]  # the labelling, blanks removed
    score: float  # acoustic + α · lm + β · len(labels): the ranking
    acoustic: float  # log P_ctc(labels | x): every alignment of the frames to the labels
    lm: float  # log P_lm(labels), the end of sequence included (0 without a language model)


def ctc_greedy_decode(log_probs: Tensor, lengths: LengthsLike, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: argmax at each of the L_b steps, merge repeats, drop blanks.

    log_probs: (B, T, K) (any monotone scores will do); lengths: L (B,) in [0, T].

    Example:
        >>> ctc_greedy_decode(torch.eye(3)[[1, 1, 0, 1, 2, 2, 0]].log()[None], [7])
        [[1, 1, 2]]
    """
    B, T, K = check_tensor(log_probs, "log_probs", "BTK").shape
    lengths = check_lengths(lengths, log_probs, "lengths", T, "T")
    if not 0 <= blank < K:
        raise ValueError(f"blank must be in [0, K={K}); got {blank}")
    best = log_probs.argmax(2)  # (B, T)
    paths = (torch.unique_consecutive(best[b, :L]).tolist() for b, L in enumerate(lengths.tolist()))
    return [[k for k in path if k != blank] for path in paths]


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _search(lp: np.ndarray, beam: int, blank: int, lm: PrefixLM | None, alpha: float, beta: float,
            prune: float | None) -> list[Hypothesis]:
    """One utterance: lp (L, K) log-probabilities."""
    K = lp.shape[1]
    labels = [k for k in range(K) if k != blank]
    beams: dict[tuple[int, ...], tuple[float, float, float]] = {(): (0.0, NEG_INF, 0.0)}  # prefix: p_b, p_nb, lm
    for row in lp:
        candidates = labels if prune is None else [k for k in labels if row[k] >= prune]
        new: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb, lm_score) in beams.items():
            total = _logaddexp(pb, pnb)
            stay = new.setdefault(prefix, [NEG_INF, NEG_INF, lm_score])
            stay[0] = _logaddexp(stay[0], total + row[blank])  # a blank: the prefix is unchanged
            last = prefix[-1] if prefix else None
            if last is not None:  # the last label repeated without a blank between: merged
                stay[1] = _logaddexp(stay[1], pnb + row[last])
            following = lm.next_log_probs(prefix) if lm is not None and candidates else None
            for k in candidates:
                ext = prefix + (k,)
                entry = new.setdefault(ext, [NEG_INF, NEG_INF, lm_score + (following[k] if lm is not None else 0.0)])
                # a repeated label is a new one only after a blank
                entry[1] = _logaddexp(entry[1], (pb if k == last else total) + row[k])
        ranked = sorted(new.items(), key=lambda item: -(_logaddexp(item[1][0], item[1][1]) + alpha * item[1][2]
                                                       + beta * len(item[0])))
        beams = {prefix: tuple(v) for prefix, v in ranked[:beam]}
    out = []
    for prefix, (pb, pnb, lm_score) in beams.items():
        acoustic = _logaddexp(pb, pnb)
        if acoustic == NEG_INF:  # no alignment of these frames gives it (too many labels)
            continue
        if lm is not None:
            lm_score += float(lm.end_log_prob(prefix))
        out.append(Hypothesis(list(prefix), float(acoustic + alpha * lm_score + beta * len(prefix)),
                              float(acoustic), float(lm_score)))
    return sorted(out, key=lambda h: -h.score)


def ctc_prefix_beam_search(log_probs: Tensor, lengths: LengthsLike, beam: int = 16, *, blank: int = 0,
                           lm: PrefixLM | None = None, alpha: float = 0.5, beta: float = 0.0, nbest: int = 1,
                           prune: float | None = -10.0) -> list[list[Hypothesis]]:
    """The ``nbest`` best labellings of each utterance by CTC prefix beam search.

    log_probs: (B, T, K), log-softmaxed over K; lengths: L (B,) in [0, T]. ``beam`` prefixes
    survive each frame; a frame extends them only by labels whose log-probability there
    is at least ``prune`` (None: every label, which with an unbounded beam makes the
    search exact). ``lm`` (weight ``alpha``) scores each label as it is added and the end
    of the sequence; ``beta`` is a bonus per label. Each utterance is searched on its own
    (on the CPU, in float64), so a batch gives what one-by-one calls give.

    Example:
        >>> p = torch.tensor([[[0.6, 0.4], [0.6, 0.4]]]).log()  # blank 0 is each frame's best...
        >>> ctc_prefix_beam_search(p, [2])[0][0].labels  # ...but label 1 has 0.16 + 0.24 + 0.24
        [1]
    """
    B, T, K = check_tensor(log_probs, "log_probs", "BTK").shape
    lengths = check_lengths(lengths, log_probs, "lengths", T, "T")
    if not 0 <= blank < K:
        raise ValueError(f"blank must be in [0, K={K}); got {blank}")
    if beam < 1 or nbest < 1:
        raise ValueError(f"beam and nbest must be >= 1; got {beam} and {nbest}")
    lp = log_probs.detach().to("cpu", torch.float64).numpy()
    return [_search(lp[b, :L], beam, blank, lm, alpha, beta, prune)[:nbest] for b, L in enumerate(lengths.tolist())]
