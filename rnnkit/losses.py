"""Divergences between a padded batch of outputs and its targets.

Every loss takes padded tensors plus lengths. Padding reaches no computation:
the valid steps are selected (indexing, ``torch.where``), never multiplied by a
mask, so NaN or inf in padded outputs, weights or targets changes neither the
loss nor any gradient, and the gradient at padded positions is exactly 0.

Dimensions: B batch, T time, K classes, O outputs, D features, S target length.
"""

from __future__ import annotations

import enum

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.checks import LengthsLike, check_classes, check_lengths, check_tensor, valid_mask


class Reduction(enum.Enum):
    """How the (weighted) per-step losses become one scalar; an empty batch gives 0.

    SUM: their sum. MEAN: the sum over the number of scored steps (tokens; weights do not count).
    SEQUENCE_MEAN: the sum over the number of sequences (sum per sequence, mean over sequences).
    """

    SUM = "sum"
    MEAN = "mean"
    SEQUENCE_MEAN = "sequence_mean"


def reduce_losses(per_sequence: Tensor, tokens: Tensor, reduction: Reduction) -> Tensor:
    """One scalar from each sequence's summed loss per_sequence (B,) and its number of scored
    steps tokens (B,), as ``reduction`` says."""
    if not isinstance(reduction, Reduction):
        raise ValueError(f"reduction must be a Reduction; got {reduction!r}")
    total = per_sequence.sum()
    if reduction is Reduction.SUM:
        return total
    if reduction is Reduction.MEAN:
        return total / tokens.sum().clamp(min=1)
    return total / max(per_sequence.shape[0], 1)


class Infeasible(enum.Enum):
    """What :func:`ctc_loss` does with a sample no alignment can produce (see :func:`ctc_feasible`)."""

    ERROR = "error"  # raise ValueError naming every such sample
    SKIP = "skip"  # leave it out of the loss and out of the mean's denominator
    ZERO = "zero"  # it contributes 0 and no gradient, but counts in the mean (torch's zero_infinity)


def _step_ce(logits: Tensor, targets: Tensor, lengths: LengthsLike, weights: Tensor | None, ignore_index: int | None,
             label_smoothing: float, targets_name: str = "targets") -> tuple[Tensor, Tensor]:
    """Validated per-step cross-entropy: (each sequence's weighted sum (B,), its scored steps (B,))."""
    B, T, K = check_tensor(logits, "logits", "BTK").shape
    check_tensor(targets, targets_name, "BT", integer=True, B=B, T=T)
    lengths = check_lengths(lengths, logits, "lengths", T, "T")
    scored = valid_mask(lengths, T)  # (B, T)
    if ignore_index is not None:
        scored = scored & (targets != ignore_index)
    b, t = scored.nonzero(as_tuple=True)  # (N,), (N,)
    check_classes(targets[b, t], targets_name, K)
    step = F.cross_entropy(logits[b, t], targets[b, t], reduction="none", label_smoothing=label_smoothing)  # (N,)
    return _sum_steps(step, b, t, weights, B, T), scored.sum(1)  # (B,), (B,)


def _sum_steps(step: Tensor, b: Tensor, t: Tensor, weights: Tensor | None, B: int, T: int) -> Tensor:
    """Each sequence's weighted sum (B,) of the losses step (N,) of its scored steps (b, t)."""
    if weights is not None:
        step = step * check_tensor(weights, "weights", "BT", B=B, T=T)[b, t]  # (N,)
    return step.new_zeros(B).index_add(0, b, step)  # (B,)


def masked_cross_entropy(logits: Tensor, targets: Tensor, lengths: LengthsLike, weights: Tensor | None = None,
                         reduction: Reduction = Reduction.MEAN, ignore_index: int | None = None,
                         label_smoothing: float = 0.0) -> Tensor:
    """Per-step cross-entropy over the valid steps: the weighted sum of per-time divergences.

    Div = Σ_b Σ_{t < L_b, y_bt ≠ ignore_index} w_bt · (−log softmax(z_bt)[y_bt]), then ``reduction``.
    logits z: (B, T, K); targets y: (B, T) int; lengths L: (B,) in [0, T]; weights w: (B, T) or None (all 1).
    ``label_smoothing`` is as in ``torch.nn.functional.cross_entropy``.

    Example:
        >>> masked_cross_entropy(torch.randn(2, 5, 3), torch.randint(3, (2, 5)), [5, 2])
    """
    per_sequence, tokens = _step_ce(logits, targets, lengths, weights, ignore_index, label_smoothing)
    return reduce_losses(per_sequence, tokens, reduction)


def masked_mse(outputs: Tensor, targets: Tensor, lengths: LengthsLike, weights: Tensor | None = None,
               reduction: Reduction = Reduction.MEAN) -> Tensor:
    """Per-step L2 divergence: Div = Σ_b Σ_{t < L_b} w_bt · ‖o_bt − d_bt‖², reduced by ``reduction``.

    Summed over the O outputs, not averaged: MEAN is the mean over valid steps of ‖o − d‖² (torch's
    ``mse_loss`` would also divide by O). outputs o, targets d: (B, T, O); lengths L: (B,); weights w: (B, T).

    Example:
        >>> masked_mse(torch.randn(2, 5, 4), torch.randn(2, 5, 4), [5, 2])
    """
    B, T, O = check_tensor(outputs, "outputs", "BTO").shape
    check_tensor(targets, "targets", "BTO", B=B, T=T, O=O)
    lengths = check_lengths(lengths, outputs, "lengths", T, "T")
    b, t = valid_mask(lengths, T).nonzero(as_tuple=True)  # (N,), (N,)
    step = (outputs[b, t] - targets[b, t]).square().sum(1)  # (N,)
    return reduce_losses(_sum_steps(step, b, t, weights, B, T), lengths, reduction)


def last_step_outputs(y: Tensor, lengths: LengthsLike) -> Tensor:
    """y[b, L_b − 1] for every b, each sequence's output at its own last step. y: (B, T, D); L: (B,) in [1, T].

    Example:
        >>> last_step_outputs(torch.randn(2, 5, 3), [5, 2]).shape
        torch.Size([2, 3])
    """
    B, T, _ = check_tensor(y, "y", "BTD").shape
    lengths = check_lengths(lengths, y, "lengths", T, "T", low=1)
    return y[torch.arange(B, device=y.device), lengths - 1]  # (B, D)


def last_step_cross_entropy(logits: Tensor, labels: Tensor, lengths: LengthsLike,
                            reduction: Reduction = Reduction.MEAN) -> Tensor:
    """Many-to-one: Div = Σ_b −log softmax(z_{b, L_b − 1})[c_b]; only the last valid step is scored.

    logits z: (B, T, K); labels c: (B,) int; lengths L: (B,) in [1, T]. MEAN = SEQUENCE_MEAN = mean over B.

    Example:
        >>> last_step_cross_entropy(torch.randn(2, 5, 3), torch.tensor([0, 2]), [5, 2])
    """
    last = last_step_outputs(logits, lengths)  # (B, K)
    check_tensor(labels, "labels", "B", integer=True, B=last.shape[0])
    check_classes(labels, "labels", last.shape[1])
    per_sequence = F.cross_entropy(last, labels, reduction="none")  # (B,)
    return reduce_losses(per_sequence, torch.ones_like(labels), reduction)


def sequence_label_cross_entropy(logits: Tensor, labels: Tensor, lengths: LengthsLike,
                                 weights: Tensor | None = None) -> Tensor:
    """Every valid step scored against its sequence's label, averaged per sequence then over B.

    Div = (1/B) Σ_b (1/L_b) Σ_{t < L_b} w_bt · (−log softmax(z_bt)[c_b]); logits z: (B, T, K);
    labels c: (B,) int; lengths L: (B,) in [1, T]; weights w: (B, T) or None. For another reduction,
    call ``masked_cross_entropy(logits, labels[:, None].expand(B, T), lengths, weights, reduction)``.

    Example:
        >>> sequence_label_cross_entropy(torch.randn(2, 5, 3), torch.tensor([0, 2]), [5, 2])
    """
    B, T, _ = check_tensor(logits, "logits", "BTK").shape
    check_tensor(labels, "labels", "B", integer=True, B=B)
    check_lengths(lengths, logits, "lengths", T, "T", low=1)
    targets = labels.unsqueeze(1).expand(B, T)  # (B, T)
    per_sequence, steps = _step_ce(logits, targets, lengths, weights, None, 0.0, targets_name="labels")
    return (per_sequence / steps).mean() if B else per_sequence.sum()


def _repeats(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """R_b, the adjacent repeats within each target's first S_b labels: (B,)."""
    pairs = torch.arange(max(targets.shape[1] - 1, 0), device=targets.device) < target_lengths.unsqueeze(1) - 1
    return ((targets[:, 1:] == targets[:, :-1]) & pairs).sum(1)  # (B,)


def ctc_feasible(targets: Tensor, input_lengths: LengthsLike, target_lengths: LengthsLike) -> Tensor:
    """Whether any CTC alignment of each sample exists: L_b ≥ S_b + R_b, a (B,) bool tensor.

    R_b counts target b's adjacent repeats (each needs a blank between its two labels).
    targets: (B, S) int; input_lengths L: (B,); target_lengths S_b: (B,) in [0, S].

    Example:
        >>> ctc_feasible(torch.tensor([[1, 1], [1, 2]]), [2, 2], [2, 2])
        tensor([False,  True])
    """
    S = check_tensor(targets, "targets", "BS", integer=True).shape[1]
    input_lengths = check_lengths(input_lengths, targets, "input_lengths", None, "")
    target_lengths = check_lengths(target_lengths, targets, "target_lengths", S, "S")
    return input_lengths >= target_lengths + _repeats(targets, target_lengths)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: LengthsLike, target_lengths: LengthsLike,
             blank: int = 0, infeasible: Infeasible = Infeasible.ERROR,
             reduction: Reduction = Reduction.MEAN) -> Tensor:
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
    B, T, K = check_tensor(log_probs, "log_probs", "BTK").shape
    S = check_tensor(targets, "targets", "BS", integer=True, B=B).shape[1]
    input_lengths = check_lengths(input_lengths, log_probs, "input_lengths", T, "T")
    target_lengths = check_lengths(target_lengths, log_probs, "target_lengths", S, "S")
    if not 0 <= blank < K:
        raise ValueError(f"blank must be in [0, K={K}); got {blank}")
    if not isinstance(infeasible, Infeasible):
        raise ValueError(f"infeasible must be an Infeasible; got {infeasible!r}")
    labelled = valid_mask(target_lengths, S)  # (B, S)
    check_classes(targets[labelled], "targets", K)
    if bool((targets[labelled] == blank).any()):
        raise ValueError(f"targets must not hold the blank {blank} within target_lengths")
    repeats = _repeats(targets, target_lengths)  # (B,)
    feasible = input_lengths >= target_lengths + repeats  # (B,)
    if infeasible is Infeasible.ERROR and not bool(feasible.all()):
        raise ValueError("ctc_loss: no alignment exists for " + "; ".join(
            f"sample {b}: input length {int(input_lengths[b])} < target length {int(target_lengths[b])}"
            f" + {int(repeats[b])} repeats" for b in (~feasible).nonzero()[:, 0].tolist()))
    lp = torch.where(valid_mask(input_lengths, T).unsqueeze(2), log_probs, 0)  # (B, T, K): padding is never read
    tg = torch.where(labelled, targets, (blank + 1) % K)  # (B, S): nor is garbage in padded targets
    if infeasible is Infeasible.SKIP:
        keep = feasible.nonzero()[:, 0]  # (B',)
        lp, tg, input_lengths, target_lengths = lp[keep], tg[keep], input_lengths[keep], target_lengths[keep]
    if lp.shape[0] == 0:
        return log_probs[:0].sum()
    per_sequence = F.ctc_loss(lp.transpose(0, 1), tg, input_lengths, target_lengths, blank=blank,
                              reduction="none", zero_infinity=infeasible is Infeasible.ZERO)  # (B',)
    return reduce_losses(per_sequence, target_lengths, reduction)


def seq2seq_cross_entropy(logits: Tensor, targets: Tensor, target_lengths: LengthsLike,
                          reduction: Reduction = Reduction.MEAN, label_smoothing: float = 0.0) -> Tensor:
    """Decoder loss of an encoder-decoder: every target symbol is scored, the end symbol included.

    ``targets`` already END with the end symbol: target b is y_b0 … y_b(S_b − 1) = <eos>, and the
    decoder's output at step s is scored against y_bs for s < S_b; padding is not scored. This is
    :func:`masked_cross_entropy` with ``lengths = target_lengths``. logits: (B, S, K); targets: (B, S) int.

    Example:
        >>> seq2seq_cross_entropy(torch.randn(2, 4, 6), torch.tensor([[3, 4, 1, 0], [5, 1, 0, 0]]), [3, 2])
    """
    S = check_tensor(logits, "logits", "BSK").shape[1]
    target_lengths = check_lengths(target_lengths, logits, "target_lengths", S, "S")
    return masked_cross_entropy(logits, targets, target_lengths, reduction=reduction,
                                label_smoothing=label_smoothing)
