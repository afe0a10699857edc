"""The hybrid system's statistics, fitted on the frame-labelled training set: each unit's
prior (its share of the training frames), its self-loop probability (from its mean
duration in frames) and the unit bigram (Witten-Bell, over the transcripts, with the
sequence boundary as unit 0). :class:`HybridStats` turns a framewise model's posteriors
into scaled likelihoods and builds the phone loop :func:`rnnkit.decode.viterbi` decodes
(:mod:`rnnkit.decode.hybrid` gives the formula).

Dimensions: T frames, K units (unit 0, the blank, is never a state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnkit.decode.hybrid import PhoneLoop
from rnnkit.ngram import NGram

MAX_SELF_LOOP = 0.99


@dataclass(frozen=True)
class HybridStats:
    log_prior: list[float]  # (K,) log P(k): training frames labelled k, add-one smoothed
    self_loop: list[float]  # (K,) 1 − 1 / (mean run of k in frames); 0 for a unit never seen
    bigram: list[list[float]]  # (K, K) log P_bg(j | i); row 0 is the start, column 0 the end

    @classmethod
    def fit(cls, frame_labels: Sequence[Sequence[int]], transcripts: Sequence[Sequence[int]], K: int) -> HybridStats:
        """From each training utterance's labels at the model's frame rate and its units."""
        counts, runs = np.ones(K), np.zeros(K)
        counts[0] = 0.0  # the blank is no frame's label
        for frames in frame_labels:
            f = np.asarray(frames)
            counts += np.bincount(f, minlength=K)
            starts = f[np.r_[True, f[1:] != f[:-1]]]
            runs += np.bincount(starts, minlength=K)
        with np.errstate(divide="ignore"):
            log_prior = np.log(counts / counts.sum())
        mean = np.divide(counts, runs, out=np.ones(K), where=runs > 0)
        self_loop = np.clip(1.0 - 1.0 / mean, 0.0, MAX_SELF_LOOP)
        stream = np.array([k for y in transcripts for k in (*y, 0)], dtype=np.int64)
        ngram = NGram(2, K).fit(stream)
        bigram = np.stack([ngram.next_log_probs((i,)) for i in range(K)])
        return cls(log_prior.tolist(), self_loop.tolist(), bigram.tolist())

    def to_dict(self) -> dict:
        return {"log_prior": self.log_prior, "self_loop": self.self_loop, "bigram": self.bigram}

    def scaled_likelihoods(self, log_probs: Tensor, prior_scale: float = 1.0) -> Tensor:
        """(…, K) log posteriors − κ · log priors (the blank's stays −inf)."""
        prior = torch.tensor(self.log_prior, dtype=log_probs.dtype, device=log_probs.device)
        return (log_probs - prior_scale * prior).masked_fill(torch.isinf(prior), float("-inf"))

    def loop(self, lm_weight: float, bonus: float) -> PhoneLoop:
        """The phone loop over every unit but the blank, the bigram weighted by ``lm_weight``,
        ``bonus`` added per phone."""
        bigram = torch.tensor(self.bigram, dtype=torch.float64)  # (K, K)
        K = len(bigram)
        states = torch.ones(K, dtype=torch.bool)
        states[0] = False
        return PhoneLoop.build(bigram, bigram[0], bigram[:, 0], torch.tensor(self.self_loop, dtype=torch.float64),
                               states, lm_weight, bonus)
