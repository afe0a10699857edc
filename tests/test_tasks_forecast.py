"""NeuralForecaster: fitting on a history is seeded (two fits give identical forecasts), the
interval holds its mean, the held-out block never enters training, forecasts from bad
histories or exogenous columns of the wrong length are clear errors, and the season's phase
reaches the network from the history's first step on the clock."""

import numpy as np
import pytest

from rnnkit.settings import SettingError
from rnnkit.tasks.forecast import ForecastConfig, ModelKind, NeuralForecaster
from rnnkit.tasks.forecast_data import TransformConfig, season_features

SERIES = 60 + 10 * np.sin(np.arange(72) * 2 * np.pi / 12) + np.arange(72) * 0.5  # a trend and a season


def _fitted(**changes) -> NeuralForecaster:
    config = ForecastConfig(horizon=6, model=ModelKind.TDNN, hidden=8, ensemble=2, epochs=15, paths=20,
                            transform=TransformConfig(log=True), **changes)
    return NeuralForecaster(config, season=12).fit(SERIES, None)


@pytest.fixture(scope="module")
def fitted():
    return _fitted()


def test_two_fits_with_one_seed_forecast_alike(fitted):
    again = _fitted().forecast(SERIES, None, None)
    first = fitted.forecast(SERIES, None, None)
    np.testing.assert_array_equal(first.mean, again.mean)
    np.testing.assert_array_equal(first.lower, again.lower)
    assert np.all(first.lower <= first.mean) and np.all(first.mean <= first.upper)


def test_the_held_out_block_is_not_trained_on(fitted):
    changed = SERIES.copy()
    changed[-fitted.config.horizon:] *= 10  # only the held-out block differs
    a, _, _ = NeuralForecaster(fitted.config, 12).prepare(SERIES, None)
    b, _, _ = NeuralForecaster(fitted.config, 12).prepare(changed, None)
    assert len(a.inputs) > 0
    assert a.inputs.equal(b.inputs) and a.targets.equal(b.targets)


def test_bad_histories_are_refused(fitted):
    with pytest.raises(ValueError, match="too short to forecast from"):
        fitted.forecast(SERIES[:1], None, None)
    with pytest.raises(ValueError, match="the history must be positive"):
        fitted.forecast(SERIES - 100, None, None)
    with pytest.raises(ValueError, match="a row per history step"):
        fitted.forecast(SERIES, np.zeros((5, 1)), np.zeros((6, 1)))
    with pytest.raises(ValueError, match="fit the forecaster first"):
        NeuralForecaster(fitted.config, 12).forecast(SERIES, None, None)


def test_the_phase_of_the_season_reaches_the_network_from_the_clock():
    f = _fitted(harmonics=2)
    assert f.model.members[0].tdnn.input_size == 1 + 4  # the value, sin and cos of two harmonics
    at = {start: f.forecast(SERIES, None, None, start).mean for start in (0, 3, 12)}
    np.testing.assert_array_equal(at[0], at[12])  # a season later: the same phase
    assert not np.allclose(at[0], at[3])
    windows, _, _ = NeuralForecaster(f.config, 12).prepare(SERIES, None, start=5)
    W = windows.inputs.shape[1]  # window 0 predicts z(1..W), the steps at clock 6..W + 5
    np.testing.assert_allclose(windows.u[0].numpy(), season_features(np.arange(6, W + 6), 12, 2), atol=1e-6)


def test_a_model_directory_from_before_the_exogenous_transforms_is_refused(fitted):
    header = fitted.header()
    del header["exog_transforms"]
    assert NeuralForecaster.from_header(header, 0).exog.state() == []  # no columns: nothing changed
    with pytest.raises(ValueError, match="older rnnkit"):
        NeuralForecaster.from_header(header, 1)


def test_a_header_rebuilds_the_exogenous_transforms_and_the_phase():
    u = np.stack([np.arange(72.0) ** 1.5, np.cos(np.arange(72.0))], 1)  # a trend (differenced); a cycle
    f = NeuralForecaster(
        ForecastConfig(horizon=6, model=ModelKind.GRU, hidden=8, ensemble=2, epochs=5, paths=20, harmonics=2,
                       transform=TransformConfig(log=True)), season=12).fit(SERIES, u, start=5)
    assert [c["difference"] for c in f.exog.state()] == [True, False]
    again = NeuralForecaster.from_header(f.header(), 2)
    again.model.load_state_dict(f.model.state_dict())
    future = np.stack([np.arange(72.0, 78.0) ** 1.5, np.cos(np.arange(72.0, 78.0))], 1)
    np.testing.assert_array_equal(again.forecast(SERIES, u, future, 5).mean, f.forecast(SERIES, u, future, 5).mean)
    with pytest.raises(ValueError, match="reads 2 exogenous columns at every step: give their next 6"):
        f.forecast(SERIES, u, None, 5)
    with pytest.raises(SettingError, match="harmonics"):
        NeuralForecaster(ForecastConfig(horizon=6, harmonics=7), season=12)
