"""The reference scan: against a hand-written loop per sequence (forward and reversed, ragged
lengths, zero lengths), the state stops at each sequence's own last step, outputs are zero
past it; reverse_padded and zero_padding by hand; Steps normalises lengths once."""

import torch

from rnnkit.checks import Steps
from rnnkit.scan import reverse_padded, scan, zero_padding


def _step(xt, state):
    """A cumulative sum with a decay: y_t = h_t = 0.5 h_{t-1} + x_t."""
    (h,) = state
    h = 0.5 * h + xt[0]
    return h, (h,)


def _loop(x, length, reverse):
    h = torch.zeros(x.shape[1])
    ys = torch.zeros_like(x)
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        h = 0.5 * h + x[t]
        ys[t] = h
    return ys, h


def test_scan_equals_a_loop_over_each_sequence():
    x = torch.randn(4, 6, 3)
    lengths = torch.tensor([6, 2, 0, 4])
    for reverse in (False, True):
        y, (h,) = scan(_step, (x,), (torch.zeros(4, 3),), Steps.of(lengths, x), 3, reverse=reverse)
        for b, n in enumerate(lengths.tolist()):
            ys, hb = _loop(x[b], n, reverse)
            torch.testing.assert_close(y[b], ys)
            torch.testing.assert_close(h[b], hb)
        assert torch.all(y[1, 2:] == 0) and torch.all(y[2] == 0)


def test_a_zero_length_sequence_keeps_its_initial_state():
    x = torch.randn(2, 3, 1)
    start = torch.tensor([[7.0], [9.0]])
    _, (h,) = scan(_step, (x,), (start,), Steps.of(torch.tensor([0, 0]), x), 1)
    assert torch.equal(h, start)


def test_full_batches_and_equal_lengths():
    x = torch.randn(3, 5, 2)
    steps = Steps.of(torch.tensor([5, 5, 5]), x)
    assert steps.lengths is None and not steps.ragged and steps.longest == 5
    short = Steps.of(torch.tensor([3, 3, 3]), x)  # all equal but shorter than T: masked, not ragged
    assert short.lengths is not None and not short.ragged and (short.shortest, short.longest) == (3, 3)
    y, _ = scan(_step, (x,), (torch.zeros(3, 2),), short, 2)
    assert torch.all(y[:, 3:] == 0)
    assert Steps.of(torch.tensor([4, 1, 5]), x).select(torch.tensor([0, 1])).longest == 4


def test_reverse_padded_and_zero_padding_by_hand():
    x = torch.arange(8.0).view(2, 4, 1)
    lengths = torch.tensor([3, 1])
    assert reverse_padded(x, lengths).squeeze(2).tolist() == [[2, 1, 0, 3], [4, 5, 6, 7]]
    assert zero_padding(x, lengths).squeeze(2).tolist() == [[0, 1, 2, 0], [4, 0, 0, 0]]
    assert zero_padding(x, None) is x
