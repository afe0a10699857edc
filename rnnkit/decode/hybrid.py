"""Hybrid decoding (Bourlard & Morgan's hybrid NN/HMM, as the seeds' framewise systems
decode): a framewise network's posteriors divided by the label priors are scaled
likelihoods, and Viterbi over a phone loop finds the best phone sequence.

The loop (a simplification of a phone HMM, documented): one state per phone, entered with
the phone bigram's probability and held with the phone's self-loop probability, so that a
path s_1..s_T scores

    Σ_t [log p(s_t | x_t) − κ · log P(s_t)] + log π(s_1) + Σ_t log A(s_{t−1}, s_t) + log E(s_T)

with A(i, j) = (1 − a_i) · P_bg(j | i)^λ · e^β for j ≠ i, A(i, i) = max(a_i, (1 − a_i) · P_bg(i | i)^λ · e^β),
π(j) = P_bg(j | <s>)^λ · e^β and E(i) = (1 − a_i) · P_bg(</s> | i)^λ; λ is the bigram's weight,
β a bonus per phone, κ the prior's scale. Runs of one state collapse to one phone, so one
phone twice in a row is read as one (the loop has a single state per phone).

Dimensions: B batch, T frames, K labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnkit.checks import LengthsLike, check_lengths, check_tensor

NEG_INF = float("-inf")


@dataclass(frozen=True)
class PhoneLoop:
    """A loop's log start (K,), transition (K, K) and end (K,) scores; -inf closes a state."""

    log_start: Tensor
    log_trans: Tensor
    log_end: Tensor

    @classmethod
    def build(cls, bigram: Tensor, start: Tensor, end: Tensor, self_loop: Tensor, states: Tensor,
              lm_weight: float = 1.0, bonus: float = 0.0) -> PhoneLoop:
        """The loop over the labels where ``states`` (K,) is true.

        bigram: (K, K) log P_bg(j | i); start: (K,) log P_bg(j | <s>); end: (K,) log P_bg(</s> | i);
        self_loop: (K,) each state's probability of staying, in [0, 1).
        """
        stay = torch.log(self_loop)  # (K,)
        leave = torch.log1p(-self_loop)  # (K,)
        trans = leave[:, None] + lm_weight * bigram + bonus  # (K, K)
        diagonal = torch.maximum(stay, trans.diagonal())
        trans = trans.clone()
        trans.diagonal().copy_(diagonal)
        closed = ~states
        trans[closed, :] = NEG_INF
        trans[:, closed] = NEG_INF
        log_start = (lm_weight * start + bonus).masked_fill(closed, NEG_INF)
        log_end = (leave + lm_weight * end).masked_fill(closed, NEG_INF)
        return cls(log_start, trans, log_end)


def viterbi(scores: Tensor, lengths: LengthsLike, loop: PhoneLoop) -> list[list[int]]:
    """Each utterance's best state sequence through ``loop`` (a state per frame), batched.

    scores: (B, T, K) per-frame log scores (scaled likelihoods); lengths: (B,) in [1, T].

    Example:
        >>> loop = PhoneLoop(torch.zeros(2), torch.zeros(2, 2), torch.zeros(2))
        >>> viterbi(torch.tensor([[[0., -1.], [-1., 0.]]]), [2], loop)
        [[0, 1]]
    """
    B, T, K = check_tensor(scores, "scores", "BTK").shape
    lengths = check_lengths(lengths, scores, "lengths", T, "T")
    if B and int(lengths.min()) < 1:
        raise ValueError("viterbi: every utterance needs at least one frame")
    s = scores.detach().to("cpu", torch.float64)
    trans = loop.log_trans.to(torch.float64)  # (K, K)
    delta = loop.log_start.to(torch.float64)[None] + s[:, 0]  # (B, K)
    back = torch.zeros(B, T, K, dtype=torch.long)
    for t in range(1, T):
        best, arg = (delta[:, :, None] + trans[None]).max(1)  # (B, K): over the previous state
        live = (t < lengths)[:, None]  # (B, 1): finished utterances keep their delta
        delta = torch.where(live, best + s[:, t], delta)
        back[:, t] = arg
    final = delta + loop.log_end.to(torch.float64)[None]  # (B, K)
    paths = []
    for b, L in enumerate(lengths.tolist()):
        state = int(final[b].argmax())
        path = [state]
        for t in range(L - 1, 0, -1):
            state = int(back[b, t, state])
            path.append(state)
        paths.append(path[::-1])
    return paths


def collapse(path: list[int]) -> list[int]:
    """A state path's phones: each run of one state read once."""
    return [k for i, k in enumerate(path) if i == 0 or path[i - 1] != k]


def path_score(scores: np.ndarray, path: list[int], loop: PhoneLoop) -> float:
    """One path's score through ``loop``: scores (L, K) summed along it, with its transitions."""
    start, trans, end = (x.double().numpy() for x in (loop.log_start, loop.log_trans, loop.log_end))
    total = start[path[0]] + end[path[-1]] + sum(scores[t, k] for t, k in enumerate(path))
    return float(total + sum(trans[a, b] for a, b in zip(path, path[1:])))
