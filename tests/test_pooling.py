"""Pooling: last, mean, max and additive attention against hand computations on a padded
batch with NaN in its padding; the last step is each direction's final state."""

import math

import pytest
import torch

from rnnkit.layers import GRU, LSTM
from rnnkit.pooling import AttentionPool, last_pool, max_pool, mean_pool

NAN = math.nan


def _padded():
    """y (B=2, T=3, 4) with NaN in the padding of the second sequence (length 1)."""
    y = torch.tensor([[[1., 2., 3., 4.], [5., -6., 7., 8.], [-9., 10., 11., -12.]],
                      [[0.5, -1., 2., -3.], [NAN, NAN, NAN, NAN], [NAN, NAN, NAN, NAN]]])
    return y, torch.tensor([3, 1])


def test_last_mean_max_by_hand():
    y, lengths = _padded()
    assert last_pool(y, lengths).tolist() == [[-9., 10., 11., -12.], [0.5, -1., 2., -3.]]
    # bidirectional, H = 2: forward half at the last step, backward half at step 0
    assert last_pool(y, lengths, directions=2).tolist() == [[-9., 10., 3., 4.], [0.5, -1., 2., -3.]]
    assert torch.allclose(mean_pool(y, lengths), torch.tensor([[-1., 2., 7., 0.], [0.5, -1., 2., -3.]]))
    assert max_pool(y, lengths).tolist() == [[5., 10., 11., 8.], [0.5, -1., 2., -3.]]


def test_attention_by_hand():
    y, lengths = _padded()
    pool = AttentionPool(4, 2)
    with torch.no_grad():
        pool.proj.weight.copy_(torch.tensor([[0.1, 0., -0.2, 0.], [0., 0.3, 0., 0.1]]))
        pool.proj.bias.copy_(torch.tensor([0.05, -0.1]))
        pool.score.weight.copy_(torch.tensor([[1.5, -2.]]))
    expected = []
    for b in range(2):
        steps = [y[b, t].tolist() for t in range(int(lengths[b]))]
        e = [1.5 * math.tanh(0.1 * s[0] - 0.2 * s[2] + 0.05) - 2 * math.tanh(0.3 * s[1] + 0.1 * s[3] - 0.1)
             for s in steps]
        z = sum(math.exp(v) for v in e)
        expected.append([sum(math.exp(e[t]) / z * steps[t][f] for t in range(len(steps))) for f in range(4)])
    assert torch.allclose(pool(y, lengths), torch.tensor(expected), atol=1e-6)
    alpha = pool.weights(y, lengths)
    assert alpha[1].tolist() == [1., 0., 0.] and torch.allclose(alpha.sum(1), torch.ones(2))


@pytest.mark.parametrize("layer", [GRU(3, 4, 2, bidirectional=True), LSTM(3, 4, bidirectional=True)])
def test_last_pool_is_the_final_state_of_each_direction(layer):
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    y, state = layer(x, lengths)
    h = state[0] if isinstance(state, tuple) else state  # (L·D, B, H)
    assert torch.allclose(last_pool(y, lengths, directions=2), torch.cat([h[-2], h[-1]], dim=1), atol=1e-6)
