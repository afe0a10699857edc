"""Conversion to and from torch.nn.RNN / LSTM / GRU: a round trip computes what torch
computes, time-first float64 modules convert, and what torch cannot represent is refused."""

import pytest
import torch
from torch import nn

from rnnkit import GRU, LSTM, RNN, Activation

from reference import TORCH_H, TORCH_I, TORCH_MODULES, run_torch

I, H = TORCH_I, TORCH_H
LENGTHS = [6, 2, 9, 1, 4]
T = max(LENGTHS)
CONVERT = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}


@pytest.mark.parametrize("kind", TORCH_MODULES)
def test_to_torch_round_trip(kind):
    layer = CONVERT[type(TORCH_MODULES[kind]())].from_torch(TORCH_MODULES[kind]())
    module = layer.to_torch()
    x = torch.randn(len(LENGTHS), T, I)
    y_ref, _ = run_torch(module, x, LENGTHS)
    torch.testing.assert_close(layer(x, torch.tensor(LENGTHS))[0], y_ref, rtol=1e-5, atol=1e-6)


def test_from_torch_time_first_float64():
    ref = nn.GRU(I, H, 2, bidirectional=True).double()  # batch_first=False
    layer = GRU.from_torch(ref)
    assert next(layer.parameters()).dtype == torch.float64
    x = torch.randn(T, 3, I, dtype=torch.float64)
    y_ref, h_ref = ref(x)
    y, h = layer(x.transpose(0, 1))
    torch.testing.assert_close(y, y_ref.transpose(0, 1))
    torch.testing.assert_close(h, h_ref)


def test_to_torch_refuses_what_torch_cannot_represent():
    with pytest.raises(ValueError, match="peephole"):
        LSTM(I, H, peephole=True).to_torch()
    with pytest.raises(ValueError, match="SIGMOID"):
        RNN(I, H, activation=Activation.SIGMOID).to_torch()
    with pytest.raises(ValueError, match="learn_initial_state"):
        GRU(I, H, learn_initial_state=True).to_torch()


def test_single_bias_is_the_sum_of_torchs_two():
    module = nn.LSTM(I, H, batch_first=True)
    layer = LSTM.from_torch(module)
    torch.testing.assert_close(layer.cells[0].bias, module.bias_ih_l0 + module.bias_hh_l0)
    back = layer.to_torch()
    torch.testing.assert_close(back.bias_ih_l0, layer.cells[0].bias)
    assert torch.equal(back.bias_hh_l0, torch.zeros(4 * H))
