"""Divergences between a padded batch of outputs and its targets (seed 002).

Every loss takes padded tensors plus lengths. Padding reaches no computation:
the valid steps are selected (indexing, ``torch.where``), never multiplied by a
mask, so NaN or inf in padded outputs, weights or targets changes neither the
loss nor any gradient, and the gradient at padded positions is exactly 0.

Dimensions: B batch, T time, K classes, O outputs, D features, S target length.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

Lengths = Tensor | Sequence[int]


class Reduction(enum.Enum):
    """How the (weighted) per-step losses become one scalar; an empty batch gives 0.

    SUM: their sum. MEAN: the sum over the number of scored steps (tokens; weights do not count).
    SEQUENCE_MEAN: the sum over the number of sequences (sum per sequence, mean over sequences).
    """

    SUM = "sum"
    MEAN = "mean"
    SEQUENCE_MEAN = "sequence_mean"


class Infeasible(enum.Enum):
    """What :func:`ctc_loss` does with a sample no alignment can produce (see :func:`ctc_feasible`)."""

    ERROR = "error"  # raise ValueError naming every such sample
    SKIP = "skip"  # leave it out of the loss and out of the mean's denominator
    ZERO = "zero"  # it contributes 0 and no gradient, but counts in the mean (torch's zero_infinity)


def _check(x: object, name: str, dims: str, integer: bool = False, **sizes: int) -> Tensor:
    """x must be a floating (or integer) tensor with one dimension per letter of dims, of the given sizes."""
    want = "(" + ", ".join(f"{d}={sizes[d]}" if d in sizes else d for d in dims) + ("," if len(dims) == 1 else "") + ")"
    kind = "an integer" if integer else "a floating-point"
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be {kind} tensor of shape {want}; got {type(x).__name__}")
    if x.dim() != len(dims) or any(d in sizes and n != sizes[d] for d, n in zip(dims, x.shape)):
        raise ValueError(f"{name} must have shape {want}; got {tuple(x.shape)}")
    if integer == (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise ValueError(f"{name} must be {kind} tensor; got {x.dtype}")
    return x


def _lengths(lengths: Lengths, name: str, like: Tensor, high: int | None, dim: str, low: int = 0) -> Tensor:
    """lengths must be integers of shape (B,) on like's device, in [low, high] (high None: no bound); int64."""
    B = like.shape[0]
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device=like.device)
    _check(lengths, name, "B", integer=True, B=B)
    if lengths.device != like.device:
        raise ValueError(f"{name} must be on {like.device} like the other inputs; got {lengths.device}")
    if B and int(lengths.min()) < low:
        raise ValueError(f"{name} must be >= {low}; got {lengths.tolist()}")
    if B and high is not None and int(lengths.max()) > high:
        raise ValueError(f"{name} must be <= {dim}={high}; got {lengths.tolist()}")
    return lengths.long()


def _classes(values: Tensor, name: str, K: int) -> None:
    """Scored class indices must lie in [0, K)."""
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= K):
        raise ValueError(f"{name} must hold class indices in [0, K={K}) at scored positions; "
                         f"got values in [{int(values.min())}, {int(values.max())}]")


def _valid(lengths: Tensor, T: int) -> Tensor:
    return torch.arange(T, device=lengths.device) < lengths.unsqueeze(1)  # (B, T)


def _reduce(per_sequence: Tensor, tokens: Tensor, reduction: Reduction) -> Tensor:
    """per_sequence (B,): each sequence's summed loss; tokens (B,): its number of scored steps."""
    if not isinstance(reduction, Reduction):
        raise ValueError(f"reduction must be a Reduction; got {reduction!r}")
    total = per_sequence.sum()
    if reduction is Reduction.SUM:
        return total
    if reduction is Reduction.MEAN:
        return total / tokens.sum().clamp(min=1)
    return total / max(per_sequence.shape[0], 1)


def _step_ce(logits: Tensor, targets: Tensor, lengths: Lengths, weights: Tensor | None, ignore_index: int | None,
             label_smoothing: float, targets_name: str = "targets") -> tuple[Tensor, Tensor]:
    """Validated per-step cross-entropy: (each sequence's weighted sum (B,), its scored steps (B,))."""
    B, T, K = _check(logits, "logits", "BTK").shape
    _check(targets, targets_name, "BT", integer=True, B=B, T=T)
    lengths = _lengths(lengths, "lengths", logits, T, "T")
    scored = _valid(lengths, T)  # (B, T)
    if ignore_index is not None:
        scored = scored & (targets != ignore_index)
    b, t = scored.nonzero(as_tuple=True)  # (N,), (N,)
    _classes(targets[b, t], targets_name, K)
    step = F.cross_entropy(logits[b, t], targets[b, t], reduction="none", label_smoothing=label_smoothing)  # (N,)
    return _sum_steps(step, b, t, weights, B, T), scored.sum(1)  # (B,), (B,)


def _sum_steps(step: Tensor, b: Tensor, t: Tensor, weights: Tensor | None, B: int, T: int) -> Tensor:
    """Each sequence's weighted sum (B,) of the losses step (N,) of its scored steps (b, t)."""
    if weights is not None:
        step = step * _check(weights, "weights", "BT", B=B, T=T)[b, t]  # (N,)
    return step.new_zeros(B).index_add(0, b, step)  # (B,)


def masked_cross_entropy(logits: Tensor, targets: Tensor, lengths: Lengths, weights: Tensor | None = None,
                         reduction: Reduction = Reduction.MEAN, ignore_index: int | None = None,
                         label_smoothing: float = 0.0) -> Tensor:
    """Per-step cross-entropy over the valid steps: the weighted sum of per-time divergences (seed 002).

    Div = Σ_b Σ_{t < L_b, y_bt ≠ ignore_index} w_bt · (−log softmax(z_bt)[y_bt]), then ``reduction``.
    logits z: (B, T, K); targets y: (B, T) int; lengths L: (B,) in [0, T]; weights w: (B, T) or None (all 1).
    ``label_smoothing`` is as in ``torch.nn.functional.cross_entropy``.

    Example:
        >>> masked_cross_entropy(torch.randn(2, 5, 3), torch.randint(3, (2, 5)), [5, 2])
    """
    per_sequence, tokens = _step_ce(logits, targets, lengths, weights, ignore_index, label_smoothing)
    return _reduce(per_sequence, tokens, reduction)


def masked_mse(outputs: Tensor, targets: Tensor, lengths: Lengths, weights: Tensor | None = None,
               reduction: Reduction = Reduction.MEAN) -> Tensor:
    """Per-step L2 divergence: Div = Σ_b Σ_{t < L_b} w_bt · ‖o_bt − d_bt‖², reduced by ``reduction``.

    Summed over the O outputs, not averaged: MEAN is the mean over valid steps of ‖o − d‖² (torch's
    ``mse_loss`` would also divide by O). outputs o, targets d: (B, T, O); lengths L: (B,); weights w: (B, T).

    Example:
        >>> masked_mse(torch.randn(2, 5, 4), torch.randn(2, 5, 4), [5, 2])
    """
    B, T, O = _check(outputs, "outputs", "BTO").shape
    _check(targets, "targets", "BTO", B=B, T=T, O=O)
    lengths = _lengths(lengths, "lengths", outputs, T, "T")
    b, t = _valid(lengths, T).nonzero(as_tuple=True)  # (N,), (N,)
    step = (outputs[b, t] - targets[b, t]).square().sum(1)  # (N,)
    return _reduce(_sum_steps(step, b, t, weights, B, T), lengths, reduction)


def last_step_outputs(y: Tensor, lengths: Lengths) -> Tensor:
    """y[b, L_b − 1] for every b, each sequence's output at its own last step. y: (B, T, D); L: (B,) in [1, T].

    Example:
        >>> last_step_outputs(torch.randn(2, 5, 3), [5, 2]).shape
        torch.Size([2, 3])
    """
    B, T, _ = _check(y, "y", "BTD").shape
    lengths = _lengths(lengths, "lengths", y, T, "T", low=1)
    return y[torch.arange(B, device=y.device), lengths - 1]  # (B, D)


def last_step_cross_entropy(logits: Tensor, labels: Tensor, lengths: Lengths,
                            reduction: Reduction = Reduction.MEAN) -> Tensor:
    """Many-to-one: Div = Σ_b −log softmax(z_{b, L_b − 1})[c_b]; only the last valid step is scored.

    logits z: (B, T, K); labels c: (B,) int; lengths L: (B,) in [1, T]. MEAN = SEQUENCE_MEAN = mean over B.

    Example:
        >>> last_step_cross_entropy(torch.randn(2, 5, 3), torch.tensor([0, 2]), [5, 2])
    """
    last = last_step_outputs(logits, lengths)  # (B, K)
    _check(labels, "labels", "B", integer=True, B=last.shape[0])
    _classes(labels, "labels", last.shape[1])
    per_sequence = F.cross_entropy(last, labels, reduction="none")  # (B,)
    return _reduce(per_sequence, torch.ones_like(labels), reduction)


def sequence_label_cross_entropy(logits: Tensor, labels: Tensor, lengths: Lengths,
                                 weights: Tensor | None = None) -> Tensor:
    """Every valid step scored against its sequence's label (seed 002), averaged per sequence then over B.

    Div = (1/B) Σ_b (1/L_b) Σ_{t < L_b} w_bt · (−log softmax(z_bt)[c_b]); logits z: (B, T, K);
    labels c: (B,) int; lengths L: (B,) in [1, T]; weights w: (B, T) or None. For another reduction,
    call ``masked_cross_entropy(logits, labels[:, None].expand(B, T), lengths, weights, reduction)``.

    Example:
        >>> sequence_label_cross_entropy(torch.randn(2, 5, 3), torch.tensor([0, 2]), [5, 2])
    """
    B, T, _ = _check(logits, "logits", "BTK").shape
    _check(labels, "labels", "B", integer=True, B=B)
    _lengths(lengths, "lengths", logits, T, "T", low=1)
    targets = labels.unsqueeze(1).expand(B, T)  # (B, T)
    per_sequence, steps = _step_ce(logits, targets, lengths, weights, None, 0.0, targets_name="labels")
    return (per_sequence / steps).mean() if B else per_sequence.sum()


def _repeats(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """R_b, the adjacent repeats within each target's first S_b labels: (B,)."""
    pairs = torch.arange(max(targets.shape[1] - 1, 0), device=targets.device) < target_lengths.unsqueeze(1) - 1
    return ((targets[:, 1:] == targets[:, :-1]) & pairs).sum(1)  # (B,)


def ctc_feasible(targets: Tensor, input_lengths: Lengths, target_lengths: Lengths) -> Tensor:
    """Whether any CTC alignment of each sample exists: L_b ≥ S_b + R_b, a (B,) bool tensor.

    R_b counts target b's adjacent repeats (each needs a blank between its two labels).
    targets: (B, S) int; input_lengths L: (B,); target_lengths S_b: (B,) in [0, S].

    Example:
        >>> ctc_feasible(torch.tensor([[1, 1], [1, 2]]), [2, 2], [2, 2])
        tensor([False,  True])
    """
    S = _check(targets, "targets", "BS", integer=True).shape[1]
    input_lengths = _lengths(input_lengths, "input_lengths", targets, None, "")
    target_lengths = _lengths(target_lengths, "target_lengths", targets, S, "S")
    return input_lengths >= target_lengths + _repeats(targets, target_lengths)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Lengths, target_lengths: Lengths, blank: int = 0,
             infeasible: Infeasible = Infeasible.ERROR, reduction: Reduction = Reduction.MEAN) -> Tensor:
    """Connectionist temporal classification: Div_b = −log Σ_{π : 𝓑(π) = y_b} Π_{t < L_b} p_t(π_t).

    𝓑 collapses an alignment π (merge repeats, then drop blanks). Computed by
    ``torch.nn.functional.ctc_loss`` after an up-front feasibility check (:func:`ctc_feasible`) whose
    outcome ``infeasible`` handles. The result stays one scalar: a caller that needs to know which
    samples SKIP left out calls :func:`ctc_feasible` on the same arguments. MEAN divides by the scored
    target labels Σ S_b (torch's "mean" instead averages Div_b / S_b); SEQUENCE_MEAN by the scored samples.

    log_probs: (B, T, K), log-softmaxed over K; targets: (B, S) int, labels in [0, K) but not blank;
    input_lengths L: (B,) in [0, T]; target_lengths S_b: (B,) in [0, S].

    Example:
        >>> lp = torch.randn(2, 6, 3).log_softmax(2)
        >>> ctc_loss(lp, torch.tensor([[1, 1], [2, 0]]), [6, 4], [2, 1])
    """
    B, T, K = _check(log_probs, "log_probs", "BTK").shape
    S = _check(targets, "targets", "BS", integer=True, B=B).shape[1]
    input_lengths = _lengths(input_lengths, "input_lengths", log_probs, T, "T")
    target_lengths = _lengths(target_lengths, "target_lengths", log_probs, S, "S")
    if not 0 <= blank < K:
        raise ValueError(f"blank must be in [0, K={K}); got {blank}")
    if not isinstance(infeasible, Infeasible):
        raise ValueError(f"infeasible must be an Infeasible; got {infeasible!r}")
    labelled = _valid(target_lengths, S)  # (B, S)
    _classes(targets[labelled], "targets", K)
    if bool((targets[labelled] == blank).any()):
        raise ValueError(f"targets must not hold the blank {blank} within target_lengths")
    repeats = _repeats(targets, target_lengths)  # (B,)
    feasible = input_lengths >= target_lengths + repeats  # (B,)
    if infeasible is Infeasible.ERROR and not bool(feasible.all()):
        raise ValueError("ctc_loss: no alignment exists for " + "; ".join(
            f"sample {b}: input length {int(input_lengths[b])} < target length {int(target_lengths[b])}"
            f" + {int(repeats[b])} repeats" for b in (~feasible).nonzero()[:, 0].tolist()))
    lp = torch.where(_valid(input_lengths, T).unsqueeze(2), log_probs, 0)  # (B, T, K): padding is never read
    tg = torch.where(labelled, targets, (blank + 1) % K)  # (B, S): nor is garbage in padded targets
    if infeasible is Infeasible.SKIP:
        keep = feasible.nonzero()[:, 0]  # (B',)
        lp, tg, input_lengths, target_lengths = lp[keep], tg[keep], input_lengths[keep], target_lengths[keep]
    if lp.shape[0] == 0:
        return log_probs[:0].sum()
    per_sequence = F.ctc_loss(lp.transpose(0, 1), tg, input_lengths, target_lengths, blank=blank,
                              reduction="none", zero_infinity=infeasible is Infeasible.ZERO)  # (B',)
    return _reduce(per_sequence, target_lengths, reduction)


def ctc_greedy_decode(log_probs: Tensor, lengths: Lengths, blank: int = 0) -> list[list[int]]:
    """Best-path decoding (seed 002/004): argmax at each of the L_b steps, merge repeats, drop blanks.

    log_probs: (B, T, K) (any monotone scores will do); lengths: L (B,) in [0, T].

    Example:
        >>> ctc_greedy_decode(torch.eye(3)[[1, 1, 0, 1, 2, 2, 0]].log()[None], [7])
        [[1, 1, 2]]
    """
    B, T, K = _check(log_probs, "log_probs", "BTK").shape
    lengths = _lengths(lengths, "lengths", log_probs, T, "T")
    if not 0 <= blank < K:
        raise ValueError(f"blank must be in [0, K={K}); got {blank}")
    best = log_probs.argmax(2)  # (B, T)
    paths = (torch.unique_consecutive(best[b, :int(lengths[b])]).tolist() for b in range(B))
    return [[k for k in path if k != blank] for path in paths]


def seq2seq_cross_entropy(logits: Tensor, targets: Tensor, target_lengths: Lengths,
                          reduction: Reduction = Reduction.MEAN, label_smoothing: float = 0.0) -> Tensor:
    """Decoder loss of an encoder-decoder: every target symbol is scored, the end symbol included.

    ``targets`` already END with the end symbol: target b is y_b0 … y_b(S_b − 1) = <eos>, and the
    decoder's output at step s is scored against y_bs for s < S_b; padding is not scored. This is
    :func:`masked_cross_entropy` with ``lengths = target_lengths``. logits: (B, S, K); targets: (B, S) int.

    Example:
        >>> seq2seq_cross_entropy(torch.randn(2, 4, 6), torch.tensor([[3, 4, 1, 0], [5, 1, 0, 0]]), [3, 2])
    """
    S = _check(logits, "logits", "BSK").shape[1]
    target_lengths = _lengths(target_lengths, "target_lengths", logits, S, "S")
    return masked_cross_entropy(logits, targets, target_lengths, reduction=reduction,
                                label_smoothing=label_smoothing)
