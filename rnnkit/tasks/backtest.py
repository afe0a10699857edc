"""Rolling-origin backtests (Tashman 2000): every forecaster forecasts ``horizon`` steps
from each of the last ``origins`` origins of a series, with an expanding window: at origin o
it sees y[:o] (and the exogenous columns' past, u[:o]) and nothing at or after o but the
exogenous columns' future values u[o:o + h] (known covariates). The origins are o = T − h,
T − h − step, ...; a neural forecaster is trained anew at each one.

The scores are M4's (:func:`rnnkit.metrics.forecast_errors`) averaged over the origins, the
interval's coverage, and OWA relative to Naive2 over the same origins.

Dimensions: T steps, C exogenous columns, h horizon.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rnnkit.metrics import coverage, forecast_errors, owa
from rnnkit.tasks.forecast_baselines import Baseline, BaselineKind, Forecast

# history y[:o], its exogenous past u[:o] (T, C) and future u[o:o+h] (h, C) -> the forecast
ForecastFn = Callable[[np.ndarray, np.ndarray, np.ndarray], Forecast]


def origins(length: int, horizon: int, count: int, step: int = 0) -> list[int]:
    """The last ``count`` origins, oldest first: T − h − k·step for k < count (step 0: h)."""
    step = step or horizon
    points = [length - horizon - k * step for k in range(count)]
    if points[-1] < 2:
        raise ValueError(f"{count} origins {step} steps apart with a horizon of {horizon} need a series longer "
                         f"than {horizon + (count - 1) * step + 1} steps; this one has {length}")
    return sorted(points)


@dataclass
class Scores:
    """A forecaster's errors at each origin, and their means."""

    per_origin: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def mean(self, key: str) -> float:
        return float(np.mean([s[key] for s in self.per_origin]))


def backtest(y: np.ndarray, u: np.ndarray | None, season: int, horizon: int, forecasters: dict[str, ForecastFn],
             count: int = 3, step: int = 0) -> dict[str, dict[str, float]]:
    """Each forecaster's mean scores over the origins (``mae``, ``rmse``, ``smape``, ``mase``,
    ``coverage``, ``owa``, ``seconds``), the Naive2 baseline included for OWA."""
    y = np.asarray(y, dtype=np.float64)
    u = np.zeros((len(y), 0)) if u is None else np.asarray(u, dtype=np.float64)
    naive2 = Baseline(BaselineKind.NAIVE2, season)
    forecasters = {"naive2": lambda hist, uh, uf: naive2.forecast(hist, horizon), **forecasters}
    results: dict[str, Scores] = {}
    for name, forecast in forecasters.items():
        scores = results[name] = Scores()
        start = time.perf_counter()
        for o in origins(len(y), horizon, count, step):
            f = forecast(y[:o].copy(), u[:o].copy(), u[o:o + horizon].copy())
            actual = y[o:o + horizon]
            errors = forecast_errors(y[:o], actual, f.mean, season)
            errors["coverage"] = coverage(actual, f.lower, f.upper)
            scores.per_origin.append(errors)
        scores.seconds = time.perf_counter() - start
    table = {}
    base = results["naive2"]
    for name, scores in results.items():
        row = {k: scores.mean(k) for k in ("mae", "rmse", "smape", "mase", "coverage")}
        row["owa"] = owa(row["smape"], row["mase"], base.mean("smape"), base.mean("mase"))
        row["seconds"] = scores.seconds
        table[name] = row
    return table
