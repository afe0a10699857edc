"""The classical forecasting baselines a recurrent forecaster is measured against, each a
:class:`Baseline` that forecasts ``horizon`` steps after a history with a central
prediction interval:

- ``naive``: the last value; ``seasonal-naive``: the value one season before;
- ``naive2`` (M4): the naive forecast of the seasonally adjusted series, reseasonalised
  (classical multiplicative decomposition, when the series passes M4's 90% autocorrelation
  test at the seasonal lag);
- ``ets``: exponential smoothing (statsmodels' ETSModel), the configuration of least AICc
  among additive errors with no, additive and damped trends and no, additive and (for
  positive series) multiplicative seasonality;
- ``arima``: (seasonal) ARIMA (statsmodels' SARIMAX), differences by KPSS tests
  (seasonal: by the seasonal strength), orders of least AICc over p, q ≤ 2 and P, Q ≤ 1.
  A season longer than ``LONG_SEASON`` (half-hourly days, hourly weeks) would make the
  state space huge: there ARIMA forecasts the STL-adjusted series and the season is
  added back (statsmodels' STLForecast; fpp3 §12.1);
- ``theta``: the theta method (Assimakopoulos & Nikolopoulos 2000; statsmodels'
  ThetaModel, deseasonalised by the same test).

ETS's and ARIMA's choice is made at their first forecast and kept for later ones (a rolling
backtest re-estimates the coefficients at every origin, not the form); the intervals of
the naive methods are the Gaussian ones of Hyndman & Athanasopoulos (fpp3, 5.5).

Dimensions: T history, h horizon.
"""

from __future__ import annotations

import enum
import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from rnnkit.tasks.forecast_data import SEASONAL_STRENGTH, seasonal_strength

LONG_SEASON = 24  # longer seasons: STL takes the season out before ARIMA


@dataclass(frozen=True)
class Forecast:
    mean: np.ndarray  # (h,)
    lower: np.ndarray  # (h,) the interval's bounds
    upper: np.ndarray  # (h,)


class BaselineKind(enum.Enum):
    NAIVE = "naive"
    SEASONAL_NAIVE = "seasonal-naive"
    NAIVE2 = "naive2"
    ETS = "ets"
    ARIMA = "arima"
    THETA = "theta"


def is_seasonal(x: np.ndarray, season: int) -> bool:
    """M4's test: the autocorrelation at lag ``season`` outside its 90% limit (needs 3 seasons)."""
    if season <= 1 or len(x) < 3 * season:
        return False
    from statsmodels.tsa.stattools import acf
    r = acf(x, nlags=season, fft=False)[1:]  # (season,)
    limit = 1.645 / math.sqrt(len(x)) * math.sqrt(1 + 2 * float(np.sum(r[:-1] ** 2)))
    return bool(abs(r[season - 1]) > limit)


def seasonal_indices(x: np.ndarray, season: int) -> np.ndarray | None:
    """(T,) the multiplicative seasonal index of each of ``x``'s values (classical
    decomposition); None when ``x`` is not seasonal or not positive."""
    if not is_seasonal(x, season) or (x <= 0).any():
        return None
    from statsmodels.tsa.seasonal import seasonal_decompose
    return np.asarray(seasonal_decompose(x, model="multiplicative", period=season).seasonal)


def _gaussian(mean: np.ndarray, sigma: np.ndarray, level: float) -> Forecast:
    z = norm.ppf(0.5 + level / 2)
    return Forecast(mean, mean - z * sigma, mean + z * sigma)


def _repeat(indices: np.ndarray, horizon: int) -> np.ndarray:
    return np.resize(indices, horizon)  # the season continued


@dataclass
class Baseline:
    """A baseline forecaster; ``forecast`` may be called at many origins."""

    kind: BaselineKind
    season: int = 1
    level: float = 0.8  # the prediction interval's coverage
    chosen: dict = field(default_factory=dict)  # ETS's or ARIMA's form, picked at the first forecast

    def forecast(self, history: np.ndarray, horizon: int) -> Forecast:
        x = np.asarray(history, dtype=np.float64)
        if len(x) < 2:
            raise ValueError(f"a history of {len(x)} values is too short to forecast from")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' convergence chatter
            method = {BaselineKind.NAIVE: self._naive, BaselineKind.SEASONAL_NAIVE: self._seasonal_naive,
                      BaselineKind.NAIVE2: self._naive2, BaselineKind.ETS: self._ets,
                      BaselineKind.ARIMA: self._arima, BaselineKind.THETA: self._theta}[self.kind]
            return method(x, horizon)

    def _naive(self, x: np.ndarray, h: int) -> Forecast:
        sigma = np.std(np.diff(x), ddof=1) if len(x) > 2 else 0.0
        return _gaussian(np.full(h, x[-1]), sigma * np.sqrt(np.arange(1, h + 1)), self.level)

    def _seasonal_naive(self, x: np.ndarray, h: int) -> Forecast:
        m = self.season
        if len(x) <= m:
            return self._naive(x, h)
        mean = _repeat(x[-m:], h)
        sigma = np.std(x[m:] - x[:-m], ddof=1) if len(x) > m + 1 else 0.0
        return _gaussian(mean, sigma * np.sqrt(np.arange(h) // m + 1), self.level)

    def _naive2(self, x: np.ndarray, h: int) -> Forecast:
        indices = seasonal_indices(x, self.season)
        if indices is None:
            return self._naive(x, h)
        ahead = _repeat(indices[-self.season:], h)  # the season continued
        plain = self._naive(x / indices, h)  # the naive forecast of the adjusted series
        return Forecast(plain.mean * ahead, plain.lower * ahead, plain.upper * ahead)

    def _ets(self, x: np.ndarray, h: int) -> Forecast:
        import pandas as pd
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel
        x = pd.Series(x)  # statsmodels' ETS predicts with an index
        if not self.chosen:
            positive, seasonal = bool((x > 0).all()), is_seasonal(x.to_numpy(), self.season)
            seasonal = [None] + (["add"] + (["mul"] if positive else []) if seasonal else [])
            forms = [dict(trend=t, damped_trend=d, seasonal=s) for t, d in ((None, False), ("add", False),
                                                                             ("add", True)) for s in seasonal]
            self.chosen = min(forms, key=lambda f: _aicc(lambda: ETSModel(x, error="add", **f, **self._period(f))))
        fit = ETSModel(x, error="add", **self.chosen, **self._period(self.chosen)).fit(disp=False)
        frame = fit.get_prediction(start=len(x), end=len(x) + h - 1).summary_frame(alpha=1 - self.level)
        return Forecast(frame["mean"].to_numpy(), frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy())

    def _period(self, form: dict) -> dict:
        return {"seasonal_periods": self.season} if form["seasonal"] else {}

    def _arima(self, x: np.ndarray, h: int) -> Forecast:
        from statsmodels.tsa.statespace.sarimax import SARIMAX
        if not self.chosen:
            self.chosen = _choose_arima(x, self.season)
        orders = {k: v for k, v in self.chosen.items() if k != "stl_period"}
        if "stl_period" in self.chosen:
            from statsmodels.tsa.forecasting.stl import STLForecast
            fit = STLForecast(x, SARIMAX, model_kwargs=orders, period=self.chosen["stl_period"]).fit(
                fit_kwargs={"disp": False})
            prediction = fit.get_prediction(start=len(x), end=len(x) + h - 1)
        else:
            prediction = SARIMAX(x, **orders).fit(disp=False).get_forecast(h)
        bounds = np.asarray(prediction.conf_int(alpha=1 - self.level))
        return Forecast(np.asarray(prediction.predicted_mean), bounds[:, 0], bounds[:, 1])

    def _theta(self, x: np.ndarray, h: int) -> Forecast:
        from statsmodels.tsa.forecasting.theta import ThetaModel
        m = self.season if self.season > 1 and len(x) >= 2 * self.season else None
        fit = ThetaModel(x, period=m, deseasonalize=m is not None).fit()
        mean = np.asarray(fit.forecast(h))
        bounds = np.asarray(fit.prediction_intervals(h, alpha=1 - self.level))
        return Forecast(mean, bounds[:, 0], bounds[:, 1])


def _aicc(build) -> float:
    try:
        return float(build().fit(disp=False).aicc)
    except (ValueError, np.linalg.LinAlgError):
        return math.inf


def _choose_arima(x: np.ndarray, season: int) -> dict:
    """Orders of least AICc, the differences fixed first: seasonal if the season explains
    more than 64% of a season-differenced series' variance (Wang et al. 2006's strength,
    as auto.arima), then regular ones while a KPSS test rejects level stationarity."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    from statsmodels.tsa.stattools import kpss
    m = season if season > 1 and len(x) >= 3 * season else 0
    if m > LONG_SEASON:  # the orders of the STL-adjusted series; STLForecast adds the season back
        from statsmodels.tsa.seasonal import STL
        return {**_choose_arima(x - np.asarray(STL(x, period=m).fit().seasonal), 1), "stl_period": m}
    D = int(m > 0 and seasonal_strength(x, m) > SEASONAL_STRENGTH)
    y = x[m:] - x[:-m] if D else x
    d = 0
    while d < 2 and len(y) > 10 and kpss(y, nlags="auto")[1] < 0.05:
        y, d = np.diff(y), d + 1
    best, best_aicc = None, math.inf
    for p, q, P, Q in itertools.product(range(3), range(3), range(2 if m else 1), range(2 if m else 1)):
        order = {"order": (p, d, q), "seasonal_order": (P, D, Q, m) if m else (0, 0, 0, 0),
                 "trend": "c" if d + D == 0 else "n"}
        score = _aicc(lambda o=order: SARIMAX(x, **o))
        if score < best_aicc:
            best, best_aicc = order, score
    return best
