"""Neural forecasters: for every one-step model, the closed-loop forecast equals the model
run teacher-forced over the series extended with its own forecasts (closed loop = iterated
one-step); sample paths spread around the mean path and repeat with the seed; the direct
model gives a horizon at once; the Gaussian NLL by hand."""

import math

import pytest
import torch

from rnnkit.layers import CellKind
from rnnkit.tasks.forecast_models import (
    DirectForecaster,
    NARXForecaster,
    RecurrentAR,
    TDNNForecaster,
    gaussian_nll,
    iterate,
)

B, T, C = 3, 12, 2
MODELS = {
    "lstm": lambda c: RecurrentAR(CellKind.LSTM, c, 8, 2),
    "gru": lambda c: RecurrentAR(CellKind.GRU, c, 8, 1),
    "elman": lambda c: RecurrentAR(CellKind.ELMAN, c, 8, 1),
    "narx": lambda c: NARXForecaster(c, 8, 2, 3),
    "narmax": lambda c: NARXForecaster(c, 8, 2, 3, 2),
    "tdnn": lambda c: TDNNForecaster(c, 8, 4),
}


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("exog", [0, C])
def test_closed_loop_is_the_one_step_model_iterated(kind, exog):
    torch.manual_seed(0)
    model = MODELS[kind](exog).double().eval()
    z, u = torch.randn(B, T, dtype=torch.float64), torch.randn(B, T + 5, exog, dtype=torch.float64)
    forecast = iterate(model, z[:, :-1], u[:, :T - 1], u[:, T - 1:T + 4], z[:, -1], 5)
    extended = torch.cat([z, forecast], 1)  # the history, then its own forecasts as if true
    with torch.no_grad():
        mean, _ = model(extended[:, :-1], u[:, :T + 4])
    torch.testing.assert_close(mean[:, T - 1:], forecast)


def test_an_inputs_only_narx_forecasts_from_the_inputs():
    torch.manual_seed(1)
    model = NARXForecaster(C, 8, 3, 0).eval()
    z, u = torch.randn(B, T), torch.randn(B, T + 4, C)
    a = iterate(model, z[:, :-1], u[:, :T - 1], u[:, T - 1:T + 3], z[:, -1], 4)
    b = iterate(model, torch.randn(B, T - 1), u[:, :T - 1], u[:, T - 1:T + 3], torch.randn(B), 4)
    torch.testing.assert_close(a, b)  # the target's own past is never read


def test_sample_paths_spread_around_the_means_and_repeat_with_the_seed():
    torch.manual_seed(2)
    model = RecurrentAR(CellKind.GRU, 0, 8, 1).eval()
    with torch.no_grad():
        model.head.bias[1] = math.log(0.05)  # small noise
    z, u = torch.randn(B, T), torch.zeros(B, T + 6, 0)
    means = iterate(model, z[:, :-1], u[:, :T - 1], u[:, T - 1:T + 5], z[:, -1], 6)
    draw = lambda: iterate(model, z[:, :-1], u[:, :T - 1], u[:, T - 1:T + 5], z[:, -1], 6, paths=400,  # noqa: E731
                           generator=torch.Generator().manual_seed(5))
    paths = draw()
    assert paths.shape == (B, 400, 6) and torch.equal(paths, draw())
    assert (paths.mean(1) - means).abs().max() < 0.1 and (paths.std(1) > 0.01).all()


def test_direct_forecaster_and_the_nll():
    model = DirectForecaster(CellKind.LSTM, C, 8, 1, horizon=5)
    mean, log_sigma = model(torch.randn(B, T), torch.randn(B, T, C), torch.tensor([12, 7, 9]))
    assert mean.shape == log_sigma.shape == (B, 5)
    m, s, y = torch.tensor([1.0, 2.0]), torch.tensor([0.0, math.log(2.0)]), torch.tensor([2.0, 2.0])
    expected = (0.5 + 0.5 * math.log(2 * math.pi)) + (math.log(2.0) + 0.5 * math.log(2 * math.pi))
    assert float(gaussian_nll(m, s, y)) == pytest.approx(expected)
