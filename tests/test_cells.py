"""Cells: one step equals torch.nn's cells with copied weights, or an independent
transcription of the paper's equations; float64 gradcheck; LSTMP parameter count."""

import pytest
import torch
from torch import nn

from rnnkit.cells import Activation, ElmanCell, GRUCell, LSTMCell

from reference import gradcheck_module

B, I, H = 3, 4, 6


@pytest.mark.parametrize("activation", [Activation.TANH, Activation.RELU])
def test_elman_matches_torch_rnncell(activation):
    ref = nn.RNNCell(I, H, nonlinearity=activation.value)
    cell = ElmanCell(I, H, activation=activation)
    with torch.no_grad():
        cell.weight_ih.copy_(ref.weight_ih)
        cell.weight_hh.copy_(ref.weight_hh)
        cell.bias.copy_(ref.bias_ih + ref.bias_hh)
    x, h = torch.randn(B, I), torch.randn(B, H)
    y, (h1,) = cell(x, (h,))
    torch.testing.assert_close(y, ref(x, h), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h1, y)


def test_elman_sigmoid():
    cell = ElmanCell(I, H, activation=Activation.SIGMOID)
    x, h = torch.randn(B, I), torch.randn(B, H)
    expected = torch.sigmoid(x @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias)
    torch.testing.assert_close(cell(x, (h,))[0], expected)


def test_lstm_matches_torch_lstmcell():
    ref = nn.LSTMCell(I, H)
    cell = LSTMCell(I, H)
    with torch.no_grad():
        cell.weight_ih.copy_(ref.weight_ih)
        cell.weight_hh.copy_(ref.weight_hh)
        cell.bias.copy_(ref.bias_ih + ref.bias_hh)
    x, h, c = torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)
    y, (h1, c1) = cell(x, (h, c))
    h_ref, c_ref = ref(x, (h, c))
    torch.testing.assert_close(y, h_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h1, h_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c1, c_ref, rtol=1e-6, atol=1e-6)


def test_lstm_forget_bias_starts_at_one():
    cell = LSTMCell(I, H)
    assert torch.equal(cell.bias[H:2 * H], torch.ones(H))


def test_peephole_lstmp_matches_sak_2014_equations():
    """Sak et al. 2014 eqs. 1-6, transcribed gate by gate with separate matrices."""
    P = 3
    cell = LSTMCell(I, H, peephole=True, proj_size=P).double()
    x, r, c = torch.randn(B, I).double(), torch.randn(B, P).double(), torch.randn(B, H).double()
    W, U, b = cell.weight_ih, cell.weight_hh, cell.bias
    Wx = {g: W[k * H:(k + 1) * H] for k, g in enumerate("ifco")}
    Wr = {g: U[k * H:(k + 1) * H] for k, g in enumerate("ifco")}
    bb = {g: b[k * H:(k + 1) * H] for k, g in enumerate("ifco")}
    w_ic, w_fc, w_oc = cell.weight_ch
    i = torch.sigmoid(x @ Wx["i"].T + r @ Wr["i"].T + w_ic * c + bb["i"])
    f = torch.sigmoid(x @ Wx["f"].T + r @ Wr["f"].T + w_fc * c + bb["f"])
    c_new = f * c + i * torch.tanh(x @ Wx["c"].T + r @ Wr["c"].T + bb["c"])
    o = torch.sigmoid(x @ Wx["o"].T + r @ Wr["o"].T + w_oc * c_new + bb["o"])
    m = o * torch.tanh(c_new)
    r_new = m @ cell.weight_hr.T
    y, (r1, c1) = cell(x, (r, c))
    torch.testing.assert_close(c1, c_new)
    torch.testing.assert_close(r1, r_new)
    torch.testing.assert_close(y, r_new)


def test_lstmp_parameter_count_of_seed_001():
    n_i, n_c, n_r, n_o = 5, 16, 7, 11
    cell = LSTMCell(n_i, n_c, proj_size=n_r, peephole=True, bias=False)
    output_layer = nn.Linear(n_r, n_o, bias=False)
    count = sum(p.numel() for p in cell.parameters()) + output_layer.weight.numel()
    assert count == n_c * n_r * 4 + n_i * n_c * 4 + n_r * n_o + n_c * n_r + n_c * 3


def test_gru_matches_torch_grucell():
    ref = nn.GRUCell(I, H)
    cell = GRUCell(I, H)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(ref, name))
    x, h = torch.randn(B, I), torch.randn(B, H)
    torch.testing.assert_close(cell(x, (h,))[0], ref(x, h), rtol=1e-6, atol=1e-6)


def test_zero_state_default():
    cell = LSTMCell(I, H, proj_size=2)
    x = torch.randn(B, I)
    y, _ = cell(x)
    torch.testing.assert_close(y, cell(x, (torch.zeros(B, 2), torch.zeros(B, H)))[0])


def test_projection_size_must_be_smaller_than_hidden():
    with pytest.raises(ValueError, match="proj_size"):
        LSTMCell(I, H, proj_size=H)


CELLS = [
    lambda: ElmanCell(I, H),
    lambda: ElmanCell(I, H, activation=Activation.SIGMOID),
    lambda: LSTMCell(I, H),
    lambda: LSTMCell(I, H, peephole=True),
    lambda: LSTMCell(I, H, proj_size=3, peephole=True),
    lambda: GRUCell(I, H),
]


@pytest.mark.parametrize("make", CELLS)
def test_cell_gradcheck_float64(make):
    cell = make().double()
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    state = [torch.randn(B, n, dtype=torch.float64, requires_grad=True) for n in cell.state_sizes]
    assert gradcheck_module(cell, lambda call, x, *st: call(x, st), x, *state)
