"""Binary addition: the data is exact arithmetic; an Elman RNN trained on 8-bit
sums adds 16-bit numbers; a TDNN with a short window cannot."""

import torch

from rnnkit import RNN, TDNN
from rnnkit.tasks.binary_addition import Adder, AdderConfig, addition_batch, sum_accuracy, train_adder


def _value(bits):
    return int(sum(int(b) << i for i, b in enumerate(bits.tolist())))


def test_batches_are_exact_sums():
    x, y = addition_batch(50, 12, torch.Generator().manual_seed(0))
    assert x.shape == (50, 13, 2) and y.shape == (50, 13)
    for b in range(50):
        assert _value(x[b, :, 0]) + _value(x[b, :, 1]) == _value(y[b])


def test_elman_generalises_to_longer_numbers_and_tdnn_does_not():
    config = AdderConfig(steps=600)
    torch.manual_seed(0)
    rnn = train_adder(Adder(RNN(2, 16)), config, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    tdnn = train_adder(Adder(TDNN(2, 16, window=3)), config, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    assert sum_accuracy(rnn, 16, 500, g) > 0.99
    assert sum_accuracy(tdnn, 16, 500, g) < 0.8
