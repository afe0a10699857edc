"""Losses: each equals a per-sequence loop over torch's functional losses (CTC: brute-force enumeration of
all alignments); padding (NaN, inf, garbage targets) never reaches the loss or a gradient; float64 gradcheck;
infeasible CTC samples; bad arguments raise ValueErrors naming themselves."""

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from rnnkit.losses import (
    Infeasible,
    Reduction,
    ctc_feasible,
    ctc_loss,
    last_step_cross_entropy,
    last_step_outputs,
    masked_cross_entropy,
    masked_mse,
    seq2seq_cross_entropy,
    sequence_label_cross_entropy,
)

B, T, K, O = 4, 6, 5, 3
LENGTHS = [6, 3, 1, 4]


def reduce_loop(sums, counts, reduction):
    """The reductions, written out from per-sequence sums and scored-step counts."""
    total = sum(sums)
    if reduction is Reduction.SUM:
        return total
    if reduction is Reduction.MEAN:
        return total / max(sum(counts), 1)
    return total / len(sums)


def ce_loop(logits, targets, lengths, weights=None, reduction=Reduction.MEAN, ignore_index=None, smoothing=0.0):
    """Each sequence alone: torch's cross_entropy on its valid steps, times the step weights."""
    sums, counts = [], []
    for b, L in enumerate(lengths):
        z, y = logits[b, :L], targets[b, :L]
        keep = torch.ones(L, dtype=torch.bool) if ignore_index is None else y != ignore_index
        step = F.cross_entropy(z[keep], y[keep], reduction="none", label_smoothing=smoothing)
        if weights is not None:
            step = step * weights[b, :L][keep]
        sums.append(step.sum())
        counts.append(int(keep.sum()))
    return reduce_loop(sums, counts, reduction)


def padded(x, lengths, value):
    """x with every position t >= lengths[b] set to value (a float or a tensor of x's shape)."""
    valid = torch.arange(x.shape[1]) < torch.tensor(lengths).unsqueeze(1)
    valid = valid.view(*valid.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.where(valid, x, value)


def dirty(x, lengths):
    """Padding filled with NaN and +inf (alternating over time), or with garbage integers."""
    if not x.is_floating_point():
        return padded(x, lengths, torch.randint(-7, 99, x.shape))
    junk = torch.full_like(x, math.nan)
    junk[:, ::2] = math.inf
    return padded(x, lengths, junk)


@pytest.mark.parametrize("reduction", list(Reduction))
@pytest.mark.parametrize("weighted", [False, True])
def test_masked_cross_entropy_matches_loop(reduction, weighted):
    logits, targets = torch.randn(B, T, K), torch.randint(K, (B, T))
    weights = torch.rand(B, T) * 3 if weighted else None
    got = masked_cross_entropy(logits, targets, torch.tensor(LENGTHS), weights, reduction=reduction)
    torch.testing.assert_close(got, ce_loop(logits, targets, LENGTHS, weights, reduction))


@pytest.mark.parametrize("reduction", list(Reduction))
def test_masked_cross_entropy_ignore_index_and_label_smoothing(reduction):
    logits, targets = torch.randn(B, T, K), torch.randint(K, (B, T))
    targets[0, 1] = targets[3, 0] = -100
    got = masked_cross_entropy(logits, targets, LENGTHS, reduction=reduction, ignore_index=-100, label_smoothing=0.1)
    torch.testing.assert_close(got, ce_loop(logits, targets, LENGTHS, None, reduction, -100, 0.1))


def test_weights_scale_each_step():
    logits, targets = torch.randn(B, T, K), torch.randint(K, (B, T))
    weights = torch.zeros(B, T)
    weights[1, 2] = 2.5
    got = masked_cross_entropy(logits, targets, LENGTHS, weights, reduction=Reduction.SUM)
    torch.testing.assert_close(got, 2.5 * F.cross_entropy(logits[1, 2], targets[1, 2]))


@pytest.mark.parametrize("reduction", list(Reduction))
@pytest.mark.parametrize("weighted", [False, True])
def test_masked_mse_matches_loop(reduction, weighted):
    outputs, targets = torch.randn(B, T, O), torch.randn(B, T, O)
    weights = torch.rand(B, T) if weighted else None
    sums = []
    for b, L in enumerate(LENGTHS):
        step = F.mse_loss(outputs[b, :L], targets[b, :L], reduction="none").sum(1)  # summed over O
        sums.append((step if weights is None else step * weights[b, :L]).sum())
    got = masked_mse(outputs, targets, LENGTHS, weights, reduction=reduction)
    torch.testing.assert_close(got, reduce_loop(sums, LENGTHS, reduction))


def test_masked_mse_default_is_mean_over_steps_of_squared_distance():
    outputs, targets = torch.randn(1, 3, O), torch.randn(1, 3, O)
    expected = (outputs[0, :2] - targets[0, :2]).pow(2).sum() / 2
    torch.testing.assert_close(masked_mse(outputs, targets, [2]), expected)


LABELS = torch.tensor([3, 0, 4, 1])
LOGITS_LOSSES = {  # loss of (logits (B, T, K), targets (B, T), weights (B, T)); each scores only valid steps
    "masked_ce": lambda z, y, w: masked_cross_entropy(z, y, LENGTHS, w),
    "masked_ce_sequence_mean": lambda z, y, w: masked_cross_entropy(
        z, y, LENGTHS, w, Reduction.SEQUENCE_MEAN, ignore_index=2, label_smoothing=0.2),
    "seq2seq": lambda z, y, w: seq2seq_cross_entropy(z, y, LENGTHS, Reduction.SUM),
    "sequence_label": lambda z, y, w: sequence_label_cross_entropy(z, LABELS, LENGTHS, w),
    "last_step": lambda z, y, w: last_step_cross_entropy(z, LABELS, LENGTHS),
}


@pytest.mark.parametrize("name", list(LOGITS_LOSSES))
def test_padding_never_contributes(name):
    loss = LOGITS_LOSSES[name]
    logits, targets, weights = torch.randn(B, T, K), torch.randint(K, (B, T)), torch.rand(B, T)
    clean, bad = logits.clone().requires_grad_(), dirty(logits, LENGTHS).requires_grad_()
    value = loss(clean, targets, weights)
    value_bad = loss(bad, dirty(targets, LENGTHS), dirty(weights, LENGTHS))
    grad, = torch.autograd.grad(value, clean)
    grad_bad, = torch.autograd.grad(value_bad, bad)
    assert torch.isfinite(value) and torch.equal(value_bad, value)
    assert torch.equal(grad_bad, grad)
    assert torch.equal(padded(grad_bad, LENGTHS, 0.0), grad_bad)  # exactly 0 in padding


def test_masked_mse_padding_never_contributes():
    outputs, targets = torch.randn(B, T, O), torch.randn(B, T, O)
    weights = torch.rand(B, T)
    clean, bad = outputs.clone().requires_grad_(), dirty(outputs, LENGTHS).requires_grad_()
    loss = masked_mse(clean, targets, LENGTHS, weights)
    loss_bad = masked_mse(bad, dirty(targets, LENGTHS), LENGTHS, dirty(weights, LENGTHS))
    assert torch.equal(loss, loss_bad)
    g, = torch.autograd.grad(loss, clean)
    g_bad, = torch.autograd.grad(loss_bad, bad)
    assert torch.equal(g, g_bad) and torch.equal(padded(g_bad, LENGTHS, 0.0), g_bad)


@pytest.mark.parametrize("reduction", list(Reduction))
def test_last_step_scores_only_each_last_step(reduction):
    logits, labels = torch.randn(B, T, K, requires_grad=True), torch.randint(K, (B,))
    loss = last_step_cross_entropy(logits, labels, torch.tensor(LENGTHS), reduction=reduction)
    last = torch.stack([logits[b, L - 1] for b, L in enumerate(LENGTHS)])
    expected = F.cross_entropy(last, labels, reduction="sum" if reduction is Reduction.SUM else "mean")
    torch.testing.assert_close(loss, expected)
    grad, = torch.autograd.grad(loss, logits)
    at_last = torch.zeros(B, T, 1, dtype=torch.bool)
    at_last[torch.arange(B), torch.tensor(LENGTHS) - 1] = True
    assert torch.equal(grad, torch.where(at_last, grad, 0.0)) and (grad.abs().sum(2) > 0).sum() == B


def test_last_step_outputs_gathers_each_sequences_last_step():
    y = torch.randn(B, T, 7)
    expected = torch.stack([y[b, L - 1] for b, L in enumerate(LENGTHS)])
    assert torch.equal(last_step_outputs(y, LENGTHS), expected)


@pytest.mark.parametrize("weighted", [False, True])
def test_sequence_label_cross_entropy_is_mean_of_per_sequence_means(weighted):
    logits, labels = torch.randn(B, T, K), torch.randint(K, (B,))
    weights = torch.rand(B, T) if weighted else torch.ones(B, T)
    per_sequence = [(F.cross_entropy(logits[b, :L], labels[b].expand(L), reduction="none") * weights[b, :L]).mean()
                    for b, L in enumerate(LENGTHS)]
    got = sequence_label_cross_entropy(logits, labels, LENGTHS, weights if weighted else None)
    torch.testing.assert_close(got, torch.stack(per_sequence).mean())


def test_seq2seq_scores_end_symbol_and_not_padding():
    EOS, PAD = 1, 0
    targets = torch.tensor([[3, 4, 2, EOS, PAD, PAD], [2, EOS, PAD, PAD, PAD, PAD]])
    lengths = [4, 2]  # including the end symbol
    logits = torch.randn(2, T, K)
    expected = sum(F.cross_entropy(logits[b, :L], targets[b, :L], reduction="sum") for b, L in enumerate(lengths)) / 6
    torch.testing.assert_close(seq2seq_cross_entropy(logits, targets, lengths), expected)
    torch.testing.assert_close(seq2seq_cross_entropy(logits, targets, lengths, reduction=Reduction.SUM),
                               masked_cross_entropy(logits, targets, lengths, reduction=Reduction.SUM))
    without_eos = masked_cross_entropy(logits, targets, [3, 1], reduction=Reduction.SUM)
    eos_terms = F.cross_entropy(logits[[0, 1], [3, 1]], targets[[0, 1], [3, 1]], reduction="sum")
    torch.testing.assert_close(seq2seq_cross_entropy(logits, targets, lengths, reduction=Reduction.SUM),
                               without_eos + eos_terms)


# CTC, against enumeration of every alignment: K = 3 (blank 0 and labels 1, 2), T <= 4.
CTC_TARGETS = [[1, 1], [1, 1], [2, 1], [2], [], [1, 2, 1], [2, 2, 2]]
CTC_INPUTS = [3, 4, 2, 4, 3, 4, 4]  # the last is infeasible: 3 labels + 2 repeats > 4


def collapse(path, blank=0):
    return [k for k, _ in itertools.groupby(path) if k != blank]


def brute_force_ctc(log_probs, target, length):
    """−log Σ over all K^L alignments that collapse to target of Π_t p_t(π_t)."""
    total = sum(math.exp(sum(log_probs[t, k].item() for t, k in enumerate(path)))
                for path in itertools.product(range(log_probs.shape[1]), repeat=length) if collapse(path) == target)
    return -math.log(total) if total > 0 else math.inf


def ctc_batch(n=7):
    targets = torch.tensor([t + [0] * (3 - len(t)) for t in CTC_TARGETS[:n]])  # (B, S=3)
    log_probs = torch.randn(n, 4, 3, dtype=torch.float64).log_softmax(2)
    return log_probs, targets, torch.tensor(CTC_INPUTS[:n]), torch.tensor([len(t) for t in CTC_TARGETS[:n]])


def test_ctc_matches_brute_force_per_sample():
    log_probs, targets, inputs, target_lengths = ctc_batch(6)
    for b in range(6):
        got = ctc_loss(log_probs[b:b + 1], targets[b:b + 1], inputs[b:b + 1], target_lengths[b:b + 1],
                       reduction=Reduction.SUM)
        assert got.item() == pytest.approx(brute_force_ctc(log_probs[b], CTC_TARGETS[b], CTC_INPUTS[b]), rel=1e-10)


@pytest.mark.parametrize("reduction", list(Reduction))
def test_ctc_batch_with_variable_lengths_matches_brute_force(reduction):
    log_probs, targets, inputs, target_lengths = ctc_batch(6)
    log_probs = dirty(log_probs, CTC_INPUTS[:6]).requires_grad_()  # padding in time is never read
    targets = dirty(targets, target_lengths.tolist())
    sums = [brute_force_ctc(log_probs[b].detach(), CTC_TARGETS[b], CTC_INPUTS[b]) for b in range(6)]
    got = ctc_loss(log_probs, targets, inputs, target_lengths, reduction=reduction)
    assert got.item() == pytest.approx(reduce_loop(sums, target_lengths.tolist(), reduction), rel=1e-10)
    grad, = torch.autograd.grad(got, log_probs)
    assert torch.isfinite(grad).all() and torch.equal(padded(grad, CTC_INPUTS[:6], 0.0), grad)


def test_ctc_feasible():
    _, targets, inputs, target_lengths = ctc_batch()
    assert ctc_feasible(targets, inputs, target_lengths).tolist() == [True] * 6 + [False]
    assert ctc_feasible(torch.tensor([[1, 1], [1, 2]]), [2, 2], [2, 2]).tolist() == [False, True]
    assert ctc_feasible(torch.tensor([[1, 1, 2]]), [2], [1]).tolist() == [True]  # padding is not a repeat


def test_ctc_infeasible_error_names_each_sample():
    log_probs, targets, inputs, target_lengths = ctc_batch()
    inputs[2] = 1
    with pytest.raises(ValueError, match=r"sample 2: input length 1 < target length 2 \+ 0 repeats; "
                                         r"sample 6: input length 4 < target length 3 \+ 2 repeats"):
        ctc_loss(log_probs, targets, inputs, target_lengths)


@pytest.mark.parametrize("reduction", list(Reduction))
def test_ctc_infeasible_skip_and_zero(reduction):
    log_probs, targets, inputs, target_lengths = ctc_batch()
    log_probs.requires_grad_()
    assert brute_force_ctc(log_probs[6].detach(), CTC_TARGETS[6], CTC_INPUTS[6]) == math.inf
    sums = [brute_force_ctc(log_probs[b].detach(), CTC_TARGETS[b], CTC_INPUTS[b]) for b in range(6)]
    skip = ctc_loss(log_probs, targets, inputs, target_lengths, infeasible=Infeasible.SKIP, reduction=reduction)
    assert skip.item() == pytest.approx(reduce_loop(sums, target_lengths[:6].tolist(), reduction), rel=1e-10)
    zero = ctc_loss(log_probs, targets, inputs, target_lengths, infeasible=Infeasible.ZERO, reduction=reduction)
    expected = reduce_loop(sums + [0.0], target_lengths.tolist(), reduction)  # counted, contributes 0
    assert zero.item() == pytest.approx(expected, rel=1e-10)
    for loss in (skip, zero):
        grad, = torch.autograd.grad(loss, log_probs)
        assert torch.isfinite(grad).all() and torch.equal(grad[6], torch.zeros(4, 3, dtype=torch.float64))


def test_ctc_all_skipped_is_zero_with_a_gradient():
    log_probs, targets, inputs, target_lengths = ctc_batch()
    log_probs = log_probs[6:].requires_grad_()
    loss = ctc_loss(log_probs, targets[6:], inputs[6:], target_lengths[6:], infeasible=Infeasible.SKIP)
    grad, = torch.autograd.grad(loss, log_probs)
    assert loss.item() == 0 and torch.equal(grad, torch.zeros_like(grad))


def test_gradcheck_float64():
    d = dict(dtype=torch.float64, requires_grad=True)
    b, t, k, lengths = 3, 4, 3, [4, 2, 1]
    logits, weights, targets = torch.randn(b, t, k, **d), torch.rand(b, t, **d), torch.randint(k, (b, t))
    labels = torch.randint(k, (b,))
    outputs, wanted = torch.randn(b, t, 2, **d), torch.randn(b, t, 2, **d)
    for reduction in Reduction:
        assert torch.autograd.gradcheck(
            lambda z, w, r=reduction: masked_cross_entropy(z, targets, lengths, w, r, label_smoothing=0.1),
            (logits, weights))
        assert torch.autograd.gradcheck(lambda o, y, w, r=reduction: masked_mse(o, y, lengths, w, r),
                                        (outputs, wanted, weights))
        assert torch.autograd.gradcheck(lambda z, r=reduction: last_step_cross_entropy(z, labels, lengths, r),
                                        (logits,))
    assert torch.autograd.gradcheck(lambda z, w: sequence_label_cross_entropy(z, labels, lengths, w),
                                    (logits, weights))


def bad_calls():
    z, y, lengths = torch.randn(2, 3, 4), torch.randint(4, (2, 3)), [3, 1]
    yield lambda: masked_cross_entropy(z[0], y, lengths), "logits must have shape"
    yield lambda: masked_cross_entropy(z, y[:, :2], lengths), r"targets must have shape \(B=2, T=3\)"
    yield lambda: masked_cross_entropy(z, y.float(), lengths), "targets must be an integer tensor"
    yield lambda: masked_cross_entropy(z, y, [3, 4]), r"lengths must be <= T=3"
    yield lambda: masked_cross_entropy(z, y, [3, -1]), "lengths must be >= 0"
    yield lambda: masked_cross_entropy(z, y, [3]), r"lengths must have shape \(B=2,\)"
    yield lambda: masked_cross_entropy(z, y + 4, lengths), r"targets must hold class indices in \[0, K=4\)"
    yield lambda: masked_cross_entropy(z, y, lengths, torch.ones(2, 2)), r"weights must have shape \(B=2, T=3\)"
    yield lambda: masked_cross_entropy(z, y, lengths, reduction="mean"), "reduction must be a Reduction"
    yield lambda: masked_mse(z, z[..., :2], lengths), r"targets must have shape \(B=2, T=3, O=4\)"
    yield lambda: last_step_cross_entropy(z, y[:, 0], [3, 0]), "lengths must be >= 1"
    yield lambda: last_step_cross_entropy(z, y, lengths), r"labels must have shape \(B=2,\)"
    yield lambda: sequence_label_cross_entropy(z, y[:, 0] + 9, lengths), "labels must hold class indices"
    yield lambda: last_step_outputs(z[0], lengths), r"y must have shape \(B, T, D\)"
    yield lambda: seq2seq_cross_entropy(z, y, [4, 1]), r"target_lengths must be <= S=3"
    lp = z.log_softmax(2)
    yield lambda: ctc_loss(lp, y[:, :2], [3, 3], [3, 1]), r"target_lengths must be <= S=2"
    yield lambda: ctc_loss(lp, y[:, :2] % 3 + 1, [4, 3], [2, 1]), r"input_lengths must be <= T=3"
    yield lambda: ctc_loss(lp, torch.tensor([[1, 0], [2, 2]]), [3, 3], [2, 1]), "targets must not hold the blank"
    yield lambda: ctc_loss(lp, torch.tensor([[1], [2]]), [3, 3], [1, 1], blank=4), r"blank must be in \[0, K=4\)"
    yield lambda: ctc_loss(lp, torch.tensor([[1], [2]]), [3, 3], [1, 1], infeasible="skip"), "infeasible must be"


@pytest.mark.parametrize("call, message", list(bad_calls()))
def test_bad_arguments_raise_value_error_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()
