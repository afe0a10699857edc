"""Jordan, NARX and NARMAX: each step against the equations (the error terms too), open
loop feeds the truth, closed loop feeds predictions (and zero errors), forecast continues
the sequence, chunk = whole, batch invariance, float64 gradcheck, the inputs-only NARX."""

import pytest
import torch

from rnnkit import NARX, Activation, Jordan

from reference import gradcheck_module

B, T, I, H, O = 3, 8, 2, 6, 2
LENGTHS = torch.tensor([8, 3, 5])


def test_jordan_cell_equations():
    net = Jordan(I, H, O, output_activation=Activation.SIGMOID)
    c = net.cell
    x, y_prev = torch.randn(B, I), torch.randn(B, O)
    h = torch.tanh(x @ c.weight_ih.T + y_prev @ c.weight_yh.T + c.bias_h)
    expected = torch.sigmoid(h @ c.weight_hy.T + c.bias_y)
    y, (state,) = c(x, (y_prev,))
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(state, expected)


def test_narx_cell_equations():
    net = NARX(I, H, O, input_delays=2, output_delays=3)
    c = net.cell
    x = torch.randn(B, I)
    x_hist, y_hist = torch.randn(B, 2, I), torch.randn(B, 3, O)  # newest first
    pre = x @ c.weight_ih.T + c.bias_h
    for lag in range(2):
        pre = pre + x_hist[:, lag] @ c.weight_dh[:, lag * I:(lag + 1) * I].T
    for lag in range(3):
        pre = pre + y_hist[:, lag] @ c.weight_yh[:, lag * O:(lag + 1) * O].T
    expected = torch.tanh(pre) @ c.weight_hy.T + c.bias_y
    y, (xs, ys) = c(x, (x_hist.reshape(B, -1), y_hist.reshape(B, -1)))
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(xs.view(B, 2, I), torch.stack([x, x_hist[:, 0]], 1))
    torch.testing.assert_close(ys.view(B, 3, O), torch.stack([y, y_hist[:, 0], y_hist[:, 1]], 1))


def test_narmax_error_terms():
    net = NARX(I, H, O, input_delays=1, output_delays=2, error_delays=2)
    c = net.cell
    x, x_hist, y_hist, e_hist = torch.randn(B, I), torch.randn(B, I), torch.randn(B, 2 * O), torch.randn(B, 2 * O)
    pre = x @ c.weight_ih.T + c.bias_h + x_hist @ c.weight_dh.T + y_hist @ c.weight_yh.T + e_hist @ c.weight_eh.T
    expected = torch.tanh(pre) @ c.weight_hy.T + c.bias_y
    y, (xs, ys, es) = c(x, (x_hist, y_hist, e_hist))
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(es, torch.cat([torch.zeros(B, O), e_hist[:, :O]], 1))  # closed loop: e(t) = 0
    truth = torch.randn(B, O)
    _, ys, es = c.feed((xs, ys, es), truth)
    torch.testing.assert_close(es[:, :O], truth - y)  # open loop: e(t) = y_true(t) - ŷ(t)
    torch.testing.assert_close(ys[:, :O], truth)


def test_an_inputs_only_narx_is_a_window_over_the_inputs():
    net = NARX(I, H, O, input_delays=2, output_delays=0)
    x = torch.randn(B, T, I)
    y_open, _ = net(x, targets=torch.randn(B, T, O))
    torch.testing.assert_close(y_open, net(x)[0])  # nothing is fed back
    c = net.cell
    pre = x[:, 4] @ c.weight_ih.T + c.bias_h + torch.cat([x[:, 3], x[:, 2]], 1) @ c.weight_dh.T
    torch.testing.assert_close(y_open[:, 4], torch.tanh(pre) @ c.weight_hy.T + c.bias_y)


NETS = {
    "jordan": lambda: Jordan(I, H, O),
    "narx": lambda: NARX(I, H, O, input_delays=3, output_delays=2),
    "narx_no_exogenous": lambda: NARX(0, H, O, input_delays=0, output_delays=4),
    "narmax": lambda: NARX(I, H, O, input_delays=1, output_delays=2, error_delays=3),
    "narx_inputs_only": lambda: NARX(I, H, O, input_delays=2, output_delays=0),
}


def _loop(net, x, targets, n, teacher):
    """One sequence, one cell call per step, feeding back the truth or the prediction."""
    state = net.cell.zero_state(1, x)
    ys = []
    for t in range(n):
        y, state = net.cell(x[None, t], state)
        if teacher:
            state = net.cell.feed(state, targets[None, t])
        ys.append(y[0])
    return torch.stack(ys), state


@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("teacher", [True, False])
def test_layer_equals_loop_over_cell(kind, teacher):
    net = NETS[kind]()
    x, targets = torch.randn(B, T, net.cell.input_size), torch.randn(B, T, O)
    y, _ = net(x, LENGTHS, targets=targets if teacher else None)
    for b, n in enumerate(LENGTHS.tolist()):
        y_ref, _ = _loop(net, x[b], targets[b], n, teacher)
        torch.testing.assert_close(y[b, :n], y_ref)
        assert torch.all(y[b, n:] == 0)


def test_open_loop_feeds_truth_and_closed_loop_feeds_predictions():
    net = Jordan(I, H, O)
    x = torch.randn(B, T, I)
    y_closed, _ = net(x)
    y_open_on_own, _ = net(x, targets=y_closed.detach())  # the truth = its own predictions
    torch.testing.assert_close(y_open_on_own, y_closed)
    y_open, _ = net(x, targets=torch.randn(B, T, O))
    torch.testing.assert_close(y_open[:, 0], y_closed[:, 0])  # the first step sees no feedback yet
    assert not torch.allclose(y_open[:, 1:], y_closed[:, 1:])


def test_mixed_teacher_forcing_is_reproducible_and_between_the_two():
    net = NARX(I, H, O, input_delays=1, output_delays=1)
    x, targets = torch.randn(B, T, I), torch.randn(B, T, O)
    runs = [net(x, targets=targets, teacher_forcing=0.5, generator=torch.Generator().manual_seed(3))[0]
            for _ in range(2)]
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], net(x, targets=targets)[0])
    assert not torch.allclose(runs[0], net(x)[0])


@pytest.mark.parametrize("kind", NETS)
def test_forecast_continues_closed_loop(kind):
    net = NETS[kind]()
    x = torch.randn(B, T, net.cell.input_size)
    y_whole, s_whole = net(x)
    _, state = net(x[:, :5])
    future = x[:, 5:] if net.cell.input_size else None
    y_future, s = net.forecast(state, T - 5, x=future)
    torch.testing.assert_close(y_future, y_whole[:, 5:])
    for a, b in zip(s if isinstance(s, tuple) else (s,), s_whole if isinstance(s_whole, tuple) else (s_whole,)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", NETS)
def test_chunked_equals_whole_with_lengths(kind):
    net = NETS[kind]()
    x, targets = torch.randn(B, T, net.cell.input_size), torch.randn(B, T, O)
    y, s = net(x, LENGTHS, targets=targets)
    state, pieces = None, []
    for start in range(0, T, 3):
        stop = min(start + 3, T)
        out, state = net(x[:, start:stop], (LENGTHS - start).clamp(0, stop - start), state,
                         targets=targets[:, start:stop])
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), y)
    for a, b in zip(state if isinstance(state, tuple) else (state,), s if isinstance(s, tuple) else (s,)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", NETS)
def test_batch_invariance(kind):
    net = NETS[kind]()
    x = torch.randn(B, T, net.cell.input_size)
    y, _ = net(x, LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(y[b, :n], net(x[b:b + 1, :n])[0][0])


@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("teacher", [True, False])
def test_gradcheck_float64(kind, teacher):
    net = NETS[kind]().double()
    x = torch.randn(2, 4, net.cell.input_size, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(2, 4, O, dtype=torch.float64)
    lengths = torch.tensor([4, 2])
    assert gradcheck_module(net, lambda call, x: call(x, lengths, targets=targets if teacher else None), x)


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match="teacher_forcing"):
        Jordan(I, H, O)(torch.randn(B, T, I), teacher_forcing=0.5)
    with pytest.raises(ValueError, match="teacher_forcing"):
        Jordan(I, H, O)(torch.randn(B, T, I), targets=torch.randn(B, T, O), teacher_forcing=1.5)
    with pytest.raises(ValueError, match="targets"):
        Jordan(I, H, O)(torch.randn(B, T, I), targets=torch.randn(B, T + 1, O))
    with pytest.raises(ValueError, match="output_delays 0 reads the inputs only"):
        NARX(0, H, O, input_delays=1, output_delays=0)
    with pytest.raises(ValueError, match="output_delays 0 reads the inputs only"):
        NARX(I, H, O, input_delays=1, output_delays=0, error_delays=1)
    with pytest.raises(ValueError, match=r"x \(B=3"):
        NARX(I, H, O, input_delays=1, output_delays=1).forecast(
            (torch.zeros(B, 1, I), torch.zeros(B, 1, O)), 4)
    with pytest.raises(ValueError, match=r"state y_hist must have shape \(3, 2, 2\)"):
        NARX(I, H, O, input_delays=1, output_delays=2)(
            torch.randn(B, T, I), state=(torch.zeros(B, 1, I), torch.zeros(B, 1, O)))
