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
from typing import Any, Protocol

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


Extension = tuple[int, float, int, Any]  # (label, LM log-probability added, bonus units added, the new state)


class LabelScorer:
    """The plain search's rule: any label may follow any prefix, scored by ``lm`` (if any)
    as it is added, the end of sequence once the input ends; the bonus counts labels."""

    def __init__(self, lm: PrefixLM | None):
        self.lm = lm

    def initial(self) -> None:
        return None

    def extensions(self, prefix: tuple[int, ...], state: None, candidates: list[int]) -> list[Extension]:
        if self.lm is None:
            return [(k, 0.0, 1, None) for k in candidates]
        following = self.lm.next_log_probs(prefix).tolist()
        return [(k, following[k], 1, None) for k in candidates]

    def final(self, prefix: tuple[int, ...], state: None) -> tuple[float, int] | None:
        return (0.0 if self.lm is None else float(self.lm.end_log_prob(prefix)), 0)


class Scorer(Protocol):
    """What the prefix search may extend a prefix by and what each extension costs. A prefix's
    state is a function of the prefix (the search keeps one per prefix)."""

    def initial(self) -> Any:
        """The empty prefix's state."""
        ...

    def extensions(self, prefix: tuple[int, ...], state: Any, candidates: list[int]) -> list[Extension]:
        """The allowed labels among ``candidates`` (never the blank), each with its LM term,
        its bonus units and the state of the longer prefix."""
        ...

    def final(self, prefix: tuple[int, ...], state: Any) -> tuple[float, int] | None:
        """(LM term, bonus units) added when the input ends after ``prefix``; None: it may not end there."""
        ...


def prefix_search(lp: np.ndarray, beam: int, blank: int, scorer: Scorer, alpha: float, beta: float,
                  prune: float | None) -> list[Hypothesis]:
    """One utterance's prefix beam search, lp (L, K) log-probabilities, under ``scorer``'s
    rule; every surviving hypothesis that may end, best first. A hypothesis ranks by
    acoustic + α · (its LM terms) + β · (its bonus units)."""
    K = lp.shape[1]
    labels = [k for k in range(K) if k != blank]
    # prefix: [p_b, p_nb, LM terms, bonus units, state]
    beams: dict[tuple[int, ...], list] = {(): [0.0, NEG_INF, 0.0, 0, scorer.initial()]}
    for row in lp:
        candidates = labels if prune is None else [k for k in labels if row[k] >= prune]
        new: dict[tuple[int, ...], list] = {}
        for prefix, (pb, pnb, lm_score, units, state) in beams.items():
            total = _logaddexp(pb, pnb)
            stay = new.setdefault(prefix, [NEG_INF, NEG_INF, lm_score, units, state])
            stay[0] = _logaddexp(stay[0], total + row[blank])  # a blank: the prefix is unchanged
            last = prefix[-1] if prefix else None
            if last is not None:  # the last label repeated without a blank between: merged
                stay[1] = _logaddexp(stay[1], pnb + row[last])
            for k, lm_term, bonus, after in scorer.extensions(prefix, state, candidates) if candidates else ():
                ext = prefix + (k,)
                entry = new.setdefault(ext, [NEG_INF, NEG_INF, lm_score + lm_term, units + bonus, after])
                # a repeated label is a new one only after a blank
                entry[1] = _logaddexp(entry[1], (pb if k == last else total) + row[k])
        ranked = sorted(new.items(), key=lambda item: -(_logaddexp(item[1][0], item[1][1]) + alpha * item[1][2]
                                                       + beta * item[1][3]))
        beams = dict(ranked[:beam])
    out = []
    for prefix, (pb, pnb, lm_score, units, state) in beams.items():
        acoustic = _logaddexp(pb, pnb)
        end = scorer.final(prefix, state)
        if acoustic == NEG_INF or end is None:  # no alignment of these frames gives it, or it may not end here
            continue
        lm_score, units = lm_score + end[0], units + end[1]
        out.append(Hypothesis(list(prefix), float(acoustic + alpha * lm_score + beta * units), float(acoustic),
                              float(lm_score)))
    return sorted(out, key=lambda h: -h.score)


def check_search(log_probs: Tensor, lengths: LengthsLike, beam: int, blank: int,
                 nbest: int) -> tuple[np.ndarray, list[int]]:
    """The arguments every prefix search takes, checked: the log-probabilities as float64
    (B, T, K) on the CPU, and the lengths."""
    B, T, K = check_tensor(log_probs, "log_probs", "BTK").shape
    lengths = check_lengths(lengths, log_probs, "lengths", T, "T")
    if not 0 <= blank < K:
        raise ValueError(f"blank must be in [0, K={K}); got {blank}")
    if beam < 1 or nbest < 1:
        raise ValueError(f"beam and nbest must be >= 1; got {beam} and {nbest}")
    return log_probs.detach().to("cpu", torch.float64).numpy(), lengths.tolist()


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
    lp, lengths = check_search(log_probs, lengths, beam, blank, nbest)
    scorer = LabelScorer(lm)
    return [prefix_search(lp[b, :L], beam, blank, scorer, alpha, beta, prune)[:nbest] for b, L in enumerate(lengths)]
