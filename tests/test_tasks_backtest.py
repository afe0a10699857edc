"""Rolling-origin backtests: the origins, no value at or after an origin reaching that
origin's forecast (a recording forecaster, and forecasts unchanged when every later value
is poisoned), the scores by hand for a naive forecast, OWA relative to Naive2."""

import numpy as np
import pytest

from rnnkit.tasks.backtest import backtest, origins
from rnnkit.tasks.forecast_baselines import Baseline, BaselineKind, Forecast


def test_origins():
    assert origins(100, 10, 3) == [70, 80, 90]
    assert origins(100, 10, 3, step=1) == [88, 89, 90]
    with pytest.raises(ValueError, match="need a series longer than"):
        origins(20, 10, 3)


def test_no_value_at_or_after_an_origin_reaches_its_forecast():
    y = np.arange(40, dtype=float)
    u = np.stack([np.arange(40.0) * 10], 1)
    seen = []

    def recording(hist, u_hist, u_future):
        seen.append((hist.copy(), u_hist.copy(), u_future.copy()))
        return Forecast(np.full(4, hist[-1]), np.full(4, hist[-1]), np.full(4, hist[-1]))

    backtest(y, u, 1, 4, {"spy": recording}, count=3)
    for o, (hist, u_hist, u_future) in zip(origins(40, 4, 3), seen):
        assert hist.tolist() == y[:o].tolist() and u_hist.tolist() == u[:o].tolist()
        assert u_future.tolist() == u[o:o + 4].tolist()  # the known covariates of the horizon only


@pytest.mark.parametrize("kind", [BaselineKind.NAIVE, BaselineKind.SEASONAL_NAIVE, BaselineKind.THETA])
def test_forecasts_are_unchanged_when_every_later_value_is_poisoned(kind):
    rng = np.random.default_rng(0)
    y = 50 + np.cumsum(rng.normal(size=60))
    runs = []
    for poison in (False, True):
        calls = []

        def forecast(hist, u_hist, u_future, calls=calls):
            f = Baseline(kind, 4).forecast(hist, 6)
            calls.append(f.mean)
            return f

        data = y.copy()
        backtest(data, None, 4, 6, {"model": forecast}, count=2)
        if poison:  # run again with NaN after each origin: every forecast the same
            for o, first in zip(origins(60, 6, 2), runs[0]):
                poisoned = y.copy()
                poisoned[o:] = np.nan
                np.testing.assert_array_equal(Baseline(kind, 4).forecast(poisoned[:o], 6).mean, first)
        runs.append(calls)


def test_scores_by_hand_and_owa():
    y = np.array([1.0, 3.0, 2.0, 4.0, 3.0, 5.0, 4.0, 6.0])
    table = backtest(y, None, 1, 2, {"naive": lambda h, uh, uf: Baseline(BaselineKind.NAIVE).forecast(h, 2)},
                     count=2)
    # origins 4 and 6: naive forecasts 4, 4 against 3, 5 (MAE 1) and 4, 4 against 4, 6 (MAE 1)
    assert table["naive"]["mae"] == pytest.approx(1.0)
    scale4, scale6 = np.mean(np.abs(np.diff(y[:4]))), np.mean(np.abs(np.diff(y[:6])))
    assert table["naive"]["mase"] == pytest.approx((1 / scale4 + 1 / scale6) / 2)
    assert table["naive"]["owa"] == pytest.approx(1.0)  # not seasonal: Naive2 is the naive forecast
