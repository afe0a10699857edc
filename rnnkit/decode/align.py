"""Forced alignment: the most probable CTC alignment of frames to a known labelling
(Viterbi over the CTC topology), and frame labels for framewise training made from it.

CTC's topology for labels y_1..y_S is the sequence z = (∅, y_1, ∅, y_2, …, y_S, ∅) of
2S + 1 states; an alignment visits them in order, staying on a state or moving one step
on, or two when it skips a blank between two different labels. It starts in z_1 or z_2
and ends in z_2S or z_2S+1. The Viterbi recursion keeps, for each frame and state, the
best log-probability of an alignment ending there:

    δ_t(s) = log p_t(z_s) + max(δ_{t−1}(s), δ_{t−1}(s−1), δ_{t−1}(s−2) if z_s ≠ ∅ and z_s ≠ z_{s−2})

Dimensions: B batch, T frames, K labels (blank included), S labels of a target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.checks import LengthsLike, check_lengths, check_tensor

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Alignment:
    frames: list[int]  # the label of each frame (the blank included)
    score: float  # the alignment's log-probability: Σ_t log p_t(frames[t])


def ctc_align(log_probs: Tensor, lengths: LengthsLike, targets: Tensor, target_lengths: LengthsLike,
              blank: int = 0) -> list[Alignment | None]:
    """The best CTC alignment of each utterance's L_b frames to its S_b target labels (None
    where none exists: too few frames). Batched over utterances; padding is never read.

    log_probs: (B, T, K); lengths: (B,); targets: (B, S) int without the blank; target_lengths: (B,).

    Example:
        >>> lp = torch.tensor([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]).log()[None]
        >>> ctc_align(lp, [3], torch.tensor([[1, 2]]), [2])[0].frames
        [1, 0, 2]
    """
    B, T, K = check_tensor(log_probs, "log_probs", "BTK").shape
    S = check_tensor(targets, "targets", "BS", integer=True, B=B).shape[1]
    lengths = check_lengths(lengths, log_probs, "lengths", T, "T").cpu()
    target_lengths = check_lengths(target_lengths, log_probs, "target_lengths", S, "S").cpu()
    lp = log_probs.detach().double().cpu()
    N = 2 * S + 1
    z = torch.full((B, N), blank, dtype=torch.long)  # (B, N): the topology's labels
    z[:, 1::2] = targets.cpu()
    states = torch.arange(N)
    real = states.unsqueeze(0) < (2 * target_lengths + 1).unsqueeze(1)  # (B, N): states of each target
    skip = torch.zeros(B, N, dtype=torch.bool)  # (B, N): may state s be entered from s − 2
    skip[:, 2:] = (z[:, 2:] != blank) & (z[:, 2:] != z[:, :-2])
    emit = lp.gather(2, z.unsqueeze(1).expand(B, T, N))  # (B, T, N)
    delta = torch.full((B, N), NEG_INF, dtype=torch.double)
    delta[:, :2] = emit[:, 0, :2]
    delta = torch.where(real, delta, NEG_INF)
    back = torch.zeros(B, T, N, dtype=torch.int8)  # how far back each state's best predecessor is
    for t in range(1, T):
        stay = delta
        one = torch.cat([torch.full((B, 1), NEG_INF, dtype=torch.double), delta[:, :-1]], 1)
        two = torch.cat([torch.full((B, 2), NEG_INF, dtype=torch.double), delta[:, :-2]], 1)
        two = torch.where(skip, two, NEG_INF)
        best, step = torch.stack([stay, one, two]).max(0)  # (B, N)
        new = torch.where(real, best + emit[:, t], NEG_INF)
        live = (t < lengths).unsqueeze(1)  # frames past an utterance's end keep its last δ
        delta = torch.where(live, new, delta)
        back[:, t] = torch.where(live, step, 0).to(torch.int8)
    out: list[Alignment | None] = []
    for b in range(B):
        L, n = int(lengths[b]), 2 * int(target_lengths[b]) + 1
        if L == 0:
            out.append(None if n > 1 else Alignment([], 0.0))
            continue
        ends = [n - 1] + ([n - 2] if n > 1 else [])
        s = max(ends, key=lambda e: float(delta[b, e]))
        score = float(delta[b, s])
        if score == NEG_INF:
            out.append(None)
            continue
        path = [0] * L
        for t in range(L - 1, -1, -1):
            path[t] = int(z[b, s])
            s -= int(back[b, t, s])
        out.append(Alignment(path, score))
    return out


def frame_labels(frames: list[int], blank: int = 0) -> list[int]:
    """Dense frame labels from a CTC alignment, for framewise training: each label's run of
    frames (its spike) claims the frames around it up to halfway to the next run; the blank
    never remains. An alignment of blanks only has no labels ([] is returned)."""
    runs = []  # (first frame, last frame, label) of each run of one label
    for t, k in enumerate(frames):
        if k == blank:
            continue
        if runs and runs[-1][1] == t - 1 and runs[-1][2] == k:
            runs[-1] = (runs[-1][0], t, k)
        else:
            runs.append((t, t, k))
    if not runs:
        return []
    out = [0] * len(frames)
    for i, (first, last, k) in enumerate(runs):
        start = 0 if i == 0 else (runs[i - 1][1] + first) // 2 + 1
        stop = len(frames) if i == len(runs) - 1 else (last + runs[i + 1][0]) // 2 + 1
        out[start:stop] = [k] * (stop - start)
    return out
