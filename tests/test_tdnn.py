"""TDNN: equal to an explicit sliding window, causal, chunk = whole, lengths, gradcheck."""

import pytest
import torch

from rnnkit import TDNN

from reference import gradcheck_module

B, T, I, H, N = 3, 9, 2, 4, 4
LENGTHS = torch.tensor([9, 2, 6])


def _window_reference(layer, x):
    """y(t) = tanh(W · [x(t-N+1) .. x(t)] + b), zeros before the start."""
    padded = torch.cat([x.new_zeros(N - 1, I), x])  # (N-1+T, I)
    W = layer.weight  # (H, I, N)
    out = [torch.tanh(torch.einsum("hin,ni->h", W, padded[t:t + N]) + layer.bias) for t in range(len(x))]
    return torch.stack(out)


def test_equals_explicit_sliding_window():
    layer = TDNN(I, H, window=N)
    x = torch.randn(B, T, I)
    y, _ = layer(x, LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(y[b, :n], _window_reference(layer, x[b, :n]))
        assert torch.all(y[b, n:] == 0)


def test_causal_and_finite_memory():
    layer = TDNN(I, H, window=N)
    x = torch.randn(1, T, I)
    x2 = x.clone()
    x2[0, 5] += 1.0
    y, y2 = layer(x)[0], layer(x2)[0]
    torch.testing.assert_close(y[0, :5], y2[0, :5])  # the past does not see the future
    assert not torch.allclose(y[0, 5:5 + N], y2[0, 5:5 + N])
    torch.testing.assert_close(y[0, 5 + N:], y2[0, 5 + N:])  # memory ends after N steps


def test_chunked_equals_whole():
    layer = TDNN(I, H, window=N)
    x = torch.randn(B, T, I)
    y, s = layer(x, LENGTHS)
    state, pieces = None, []
    for start in range(0, T, 2):
        stop = min(start + 2, T)
        out, state = layer(x[:, start:stop], (LENGTHS - start).clamp(0, stop - start), state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), y)
    torch.testing.assert_close(state, s)
    torch.testing.assert_close(s[0], x[0, T - N + 1:])


def test_gradcheck_float64():
    layer = TDNN(I, 2, window=3).double()
    x = torch.randn(2, 4, I, dtype=torch.float64, requires_grad=True)
    state = torch.randn(2, 2, I, dtype=torch.float64, requires_grad=True)
    assert gradcheck_module(layer, lambda call, x, s: call(x, torch.tensor([4, 1]), s), x, state)


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="window"):
        TDNN(I, H, window=0)
