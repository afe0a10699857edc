"""Forecasting baselines: naive, seasonal naive and Naive2 by hand, M4's seasonality test on
a seasonal and a flat series, and ETS, ARIMA and theta giving finite forecasts inside their
intervals on a real series (statsmodels' Nile), their forms chosen once."""

import numpy as np
import pytest

from rnnkit.tasks.forecast_baselines import Baseline, BaselineKind, is_seasonal

pytest.importorskip("statsmodels")


def _seasonal(n=60, m=4):
    t = np.arange(n)
    return 10 + 0.1 * t + np.tile([1.0, 3.0, 2.0, 0.5], n // m)[:n] * (1 + 0.01 * t)


def test_naive_and_seasonal_naive_by_hand():
    x = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 4.0])
    f = Baseline(BaselineKind.NAIVE).forecast(x, 3)
    sigma = np.std(np.diff(x), ddof=1)
    assert f.mean.tolist() == [4.0, 4.0, 4.0]
    assert np.allclose(f.upper - f.mean, 1.2815515655 * sigma * np.sqrt([1, 2, 3]))  # 80%: z = 1.28
    f = Baseline(BaselineKind.SEASONAL_NAIVE, season=2).forecast(x, 5)
    assert f.mean.tolist() == [5.0, 4.0, 5.0, 4.0, 5.0]
    sigma = np.std(x[2:] - x[:-2], ddof=1)
    assert np.allclose(f.upper - f.mean, 1.2815515655 * sigma * np.sqrt([1, 1, 2, 2, 3]))


def test_the_seasonality_test_and_naive2():
    x = _seasonal()
    assert is_seasonal(x, 4) and not is_seasonal(np.random.default_rng(0).normal(size=60), 4)
    assert not is_seasonal(x[:10], 4)  # fewer than 3 seasons
    f = Baseline(BaselineKind.NAIVE2, season=4).forecast(x, 8)
    assert f.mean[:4].tolist() == pytest.approx((f.mean[4:]).tolist())  # the season continued, level flat
    assert np.ptp(f.mean[:4]) > 1.0  # reseasonalised
    flat = Baseline(BaselineKind.NAIVE2, season=4).forecast(np.arange(1.0, 30.0), 3)
    assert flat.mean.tolist() == [29.0, 29.0, 29.0]  # not seasonal: the naive forecast


@pytest.mark.parametrize("kind", [BaselineKind.ETS, BaselineKind.ARIMA, BaselineKind.THETA])
def test_model_based_baselines_on_the_nile(kind):
    from rnnkit.data.series_corpora import SOURCES
    _, columns = SOURCES["nile"].read()
    x = columns["volume"]
    baseline = Baseline(kind, season=1)
    f = baseline.forecast(x[:-10], 10)
    assert f.mean.shape == (10,) and np.isfinite(f.mean).all()
    assert (f.lower <= f.mean).all() and (f.mean <= f.upper).all()
    assert np.abs(f.mean - x[-10:]).mean() < 250  # the river's own scale: about 170
    chosen = dict(baseline.chosen)
    baseline.forecast(x[:-5], 5)
    assert baseline.chosen == chosen  # the form kept from the first origin


def test_a_long_season_is_taken_out_by_stl_before_arima():
    from statsmodels.tsa.forecasting.stl import STLForecast
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    t = np.arange(4 * 48)  # four days of half-hours
    x = 10 + 5 * np.sin(2 * np.pi * t / 48) + np.random.default_rng(0).normal(0, 0.3, len(t))
    arima = Baseline(BaselineKind.ARIMA, season=48)
    f = arima.forecast(x, 48)
    assert arima.chosen["stl_period"] == 48 and arima.chosen["seasonal_order"] == (0, 0, 0, 0)
    orders = {k: v for k, v in arima.chosen.items() if k != "stl_period"}
    reference = STLForecast(x, SARIMAX, model_kwargs=orders, period=48).fit(fit_kwargs={"disp": False})
    np.testing.assert_allclose(f.mean, reference.forecast(48), rtol=1e-6)
    truth = 10 + 5 * np.sin(2 * np.pi * np.arange(len(t), len(t) + 48) / 48)
    assert np.abs(f.mean - truth).mean() < 0.5 and np.all(f.lower < f.mean) and np.all(f.mean < f.upper)
