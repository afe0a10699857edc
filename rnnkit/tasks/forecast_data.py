"""A series to forecast, from a CSV file: a date column, the target column and exogenous
columns; its frequency and season read from the dates; and the transforms a forecaster
applies and inverts (log, differences, seasonal differences, standardisation).

Dates: ``YYYY`` (yearly), ``YYYYQn`` (quarterly), ``YYYY-MM`` (monthly), ``YYYY-MM-DD``
(daily, weekly) and ``YYYY-MM-DDTHH:MM`` (hourly, half-hourly, ...), the ISO forms
:mod:`rnnkit.data.series_corpora` writes. Every step between rows must be the same (a
calendar month, a quarter, a year, or a fixed time): a missing date, a repeated one or an
irregular step is an error naming the line. A missing value (an empty field) is a gap,
filled by linear interpolation between its neighbours, and counted in the notes; a series
that starts or ends with one is an error. The season is the calendar cycle of the
frequency, as M4 counts it (1 yearly, 4 quarterly, 12 monthly, 52 weekly, 7 daily, 24
hourly, 48 half-hourly), unless given. Each step's place on the calendar is its ``clock``:
years, quarters or months since year 0, or steps of time since 1970 (a date between two
steps counts as the earlier), so that its phase in the season is the same in every file of
the series, whatever its first date.

Exogenous columns are transformed as a target would be, each on its own training history
(:class:`ExogTransform`), and a long season's phase can be given to a network as known
inputs (:func:`season_features`).

Dimensions: T steps, C exogenous columns, K harmonics.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from rnnkit.data.errors import DataError
from rnnkit.data.series import read_csv_series

SEASONS = {"yearly": 1, "quarterly": 4, "monthly": 12, "weekly": 52, "daily": 7, "hourly": 24, "half-hourly": 48}
_FORMS = [(re.compile(r"^\d{4}$"), "Y"), (re.compile(r"^\d{4}Q[1-4]$"), "Q"), (re.compile(r"^\d{4}-\d{2}$"), "M"),
          (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "D"), (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$"), "T")]


def _ordinal(date: str, form: str) -> float:
    """A position on the form's own scale: years, quarters or months counted, or seconds."""
    if form == "Y":
        return int(date)
    if form == "Q":
        return int(date[:4]) * 4 + int(date[5]) - 1
    if form == "M":
        return int(date[:4]) * 12 + int(date[5:7]) - 1
    return (datetime.fromisoformat(date) - datetime(1970, 1, 1)).total_seconds()  # no time zone: no DST


def frequency(dates: list[str], path: Path | str, first_line: int = 2) -> tuple[str, float]:
    """The dates' frequency name and step; an irregular, repeated or unreadable date names its line."""
    forms = [f for pattern, f in _FORMS if pattern.match(dates[0])]
    if not forms:
        raise DataError(path, first_line, f"date {dates[0]!r} is not YYYY, YYYYQn, YYYY-MM, YYYY-MM-DD or "
                                          "YYYY-MM-DDTHH:MM")
    form = forms[0]
    positions = []
    for n, d in enumerate(dates):
        try:
            if not next(p for p, f in _FORMS if f == form).match(d):
                raise ValueError
            positions.append(_ordinal(d, form))
        except ValueError:
            raise DataError(path, first_line + n, f"date {d!r} is not in the first row's form") from None
    if len(positions) < 2:
        raise DataError(path, None, "a series needs at least two dates")
    steps = np.diff(positions)
    step = steps[0]
    for n, s in enumerate(steps):
        if s <= 0:
            raise DataError(path, first_line + n + 1, f"date {dates[n + 1]} does not come after {dates[n]}")
        if s != step:
            raise DataError(path, first_line + n + 1, f"irregular dates: {dates[n]} to {dates[n + 1]}, where the "
                                                      f"series steps by {dates[1]} - {dates[0]} (a missing date?)")
    if form in "YQM":
        return {"Y": "yearly", "Q": "quarterly", "M": "monthly"}[form], step
    names = {timedelta(weeks=1): "weekly", timedelta(days=1): "daily", timedelta(hours=1): "hourly",
             timedelta(minutes=30): "half-hourly"}
    return names.get(timedelta(seconds=float(step)), f"every {timedelta(seconds=float(step))}"), step


def future_dates(dates: list[str], steps: int) -> list[str]:
    """The ``steps`` dates after the series' last, in its form."""
    form = next(f for pattern, f in _FORMS if pattern.match(dates[0]))
    last = dates[-1]
    if form == "Y":
        return [str(int(last) + k) for k in range(1, steps + 1)]
    if form in "QM":
        per = 4 if form == "Q" else 12
        n = _ordinal(last, form)
        out = [(int(n + k) // per, int(n + k) % per + 1) for k in range(1, steps + 1)]
        return [f"{y}Q{p}" if form == "Q" else f"{y}-{p:02d}" for y, p in out]
    step = datetime.fromisoformat(dates[-1]) - datetime.fromisoformat(dates[-2])
    fmt = "%Y-%m-%d" if form == "D" else "%Y-%m-%dT%H:%M"
    return [(datetime.fromisoformat(last) + k * step).strftime(fmt) for k in range(1, steps + 1)]


@dataclass
class SeriesData:
    """A target series with its exogenous columns, read and checked."""

    target: np.ndarray  # (T,) float64
    exog: np.ndarray  # (T, C) float64; C may be 0
    dates: list[str]
    frequency: str
    season: int
    names: tuple[str, list[str]]  # the target's column and the exogenous ones
    clock: np.ndarray  # (T,) int64, steps of the frequency since year 0 (Y, Q, M) or 1970
    notes: list[str] = field(default_factory=list)


def read_series(path: Path, column: str | None = None, exog: list[str] | None = None, date_column: str = "date",
                season: int | None = None) -> SeriesData:
    """``column`` (default: the first after the date) and ``exog`` of a CSV series."""
    header = [h.strip() for h in Path(path).read_text(encoding="utf-8").split("\n", 1)[0].split(",")]
    if date_column not in header:
        raise DataError(path, 1, f"no date column {date_column!r} (--date-column); the columns are {', '.join(header)}")
    column = column or next((h for h in header if h != date_column), None)
    exog = list(exog or [])
    if column in exog:
        raise DataError(path, 1, f"{column!r} is the target; it cannot be an exogenous column too")
    series = read_csv_series(path, [column, *exog], date_column, missing=True)
    freq, step = frequency(series.dates, path)
    values, notes = series.values.copy(), []
    for j, name in enumerate(series.columns):
        gaps = np.isnan(values[:, j])
        if gaps[0] or gaps[-1]:
            raise DataError(path, 2 if gaps[0] else len(gaps) + 1, f"column {name} starts or ends with a missing "
                                                                  f"value: nothing to interpolate from")
        if gaps.any():
            values[gaps, j] = np.interp(np.flatnonzero(gaps), np.flatnonzero(~gaps), values[~gaps, j])
            notes.append(f"{path}: {int(gaps.sum())} missing values of {name} interpolated linearly")
    season = season or SEASONS.get(freq, 1)
    form = next(f for pattern, f in _FORMS if pattern.match(series.dates[0]))
    clock = np.array([math.floor(_ordinal(d, form) / step + 1e-9) for d in series.dates], dtype=np.int64)
    return SeriesData(values[:, 0], values[:, 1:], series.dates, freq, season, (column, exog), clock, notes)


def season_features(clock: np.ndarray, season: int, harmonics: int) -> np.ndarray:
    """(T,) steps -> (T, 2K): sin and cos of 2πk·t/season for k = 1..K, the phase in the
    season that a recurrent state could not count over a long one (DeepAR's time features)."""
    k = np.arange(1, harmonics + 1)[None]
    angle = 2 * np.pi * k * (np.asarray(clock, dtype=np.int64) % season)[:, None] / season
    return np.concatenate([np.sin(angle), np.cos(angle)], 1)


@dataclass(frozen=True)
class TransformConfig:
    log: bool = False  # forecast log(y) (a positive series whose variance grows with its level)
    difference: bool = False  # the first difference taken
    seasonal_difference: bool = False  # y(t) - y(t - season) taken first
    standardise: bool = True  # to zero mean and unit variance over the training history



def describe(config: TransformConfig) -> str:
    """The transforms in the order they are taken, e.g. "log, seasonal difference"."""
    names = [name for name, on in (("log", config.log), ("seasonal difference", config.seasonal_difference),
                                   ("difference", config.difference), ("standardised", config.standardise)) if on]
    return ", ".join(names) or "none"


class Transform:
    """y -> z and back: log, then the seasonal difference, then the first difference, then
    standardisation; fitted on a history and inverted on forecasts that follow it."""

    def __init__(self, config: TransformConfig, season: int):
        self.config, self.season = config, season
        self.mean, self.std = 0.0, 1.0
        self.tail: np.ndarray | None = None  # the last values the differences need, in the log domain

    def fit(self, history: np.ndarray) -> Transform:
        c = self.config
        if c.log and (history <= 0).any():
            raise ValueError("log needs a positive series (--log)")
        x = np.log(history) if c.log else np.asarray(history, dtype=np.float64)
        self.tail = x.copy()
        z = self._differences(x)
        if c.standardise:
            self.mean, self.std = float(z.mean()), float(z.std()) or 1.0
        return self

    def _differences(self, x: np.ndarray) -> np.ndarray:
        if self.config.seasonal_difference:
            x = x[self.season:] - x[:-self.season]
        if self.config.difference:
            x = np.diff(x)
        return x

    def apply(self, history: np.ndarray) -> np.ndarray:
        """(T',) the model's inputs for a history (T' = T minus the values the differences take)."""
        x = np.log(history) if self.config.log else np.asarray(history, dtype=np.float64)
        return (self._differences(x) - self.mean) / self.std

    @property
    def lost(self) -> int:
        """Values of a history the differences use up."""
        return self.season * self.config.seasonal_difference + self.config.difference

    def invert(self, z: np.ndarray) -> np.ndarray:
        """(..., h) forecasts of z after the fitted history -> forecasts of y."""
        d = np.asarray(z, dtype=np.float64) * self.std + self.mean
        tail, m = self.tail, self.season
        if self.config.difference:  # s(T+k) = s(T-1) + the differences summed
            last = tail[-1] - tail[-1 - m] if self.config.seasonal_difference else tail[-1]
            d = last + np.cumsum(d, axis=-1)
        if self.config.seasonal_difference:
            h = d.shape[-1]
            out = np.empty_like(d)
            for k in range(h):  # y(T+k) = d(T+k) + y(T+k-m)
                prev = tail[len(tail) - m + k] if k < m else out[..., k - m]
                out[..., k] = d[..., k] + prev
            d = out
        return np.exp(d) if self.config.log else d


@dataclass
class ExogColumn:
    """One exogenous column's transform: asinh(u / scale) when ``scale`` > 0 (a log, up to a
    constant, for values ten times the scale and more, and defined at zero and below), then
    the first difference if ``difference``, then standardised by ``mean`` and ``std``."""

    scale: float = 0.0
    difference: bool = False
    mean: float = 0.0
    std: float = 1.0

    def describe(self) -> str:
        return ", ".join([*(["asinh"] if self.scale else []), *(["difference"] if self.difference else []),
                          "standardised"])

    def raw(self, u: np.ndarray) -> np.ndarray:
        """(T,) -> (T,) before standardising; a differenced column's first row is NaN."""
        x = np.arcsinh(u / self.scale) if self.scale else np.asarray(u, dtype=np.float64)
        return np.diff(x, prepend=np.nan) if self.difference else x


class ExogTransform:
    """Each exogenous column made a network's input as a target would be, chosen and fitted
    on the training history alone: where :func:`auto_transform` would take the log (positive,
    its level doubling), asinh(u / scale) with a tenth of the history's least value as the
    scale, which a later zero or negative value (a temperature, a count) cannot break; the
    first difference where it would take it (a trend); then standardised. An indicator (two
    values) is only standardised, as is every column when ``choose`` is False. Rows keep
    their steps: a differenced column's first row, which has no step before it, is its mean
    (0)."""

    def __init__(self):
        self.columns: list[ExogColumn] = []

    def fit(self, u: np.ndarray, choose: bool = True) -> ExogTransform:
        """u (T, C), the history's columns."""
        self.columns = []
        for c in np.asarray(u, dtype=np.float64).T:
            chosen = auto_transform(c, 1, False) if choose and len(np.unique(c)) > 2 else TransformConfig()
            column = ExogColumn(c.min() / 10 if chosen.log else 0.0, chosen.difference)
            x = column.raw(c)[int(chosen.difference):]
            column.mean, column.std = float(x.mean()), float(x.std()) or 1.0
            self.columns.append(column)
        return self

    def apply(self, u: np.ndarray) -> np.ndarray:
        """(T, C) consecutive rows -> (T, C), the network's inputs."""
        u = np.asarray(u, dtype=np.float64)
        if u.shape[1] != len(self.columns):
            raise ValueError(f"{u.shape[1]} exogenous columns where the transform was fitted on {len(self.columns)}")
        out = np.zeros_like(u)
        for j, c in enumerate(self.columns):
            out[:, j] = (c.raw(u[:, j]) - c.mean) / c.std
            out[:int(c.difference), j] = 0.0  # no step before the first row
        return out

    def state(self) -> list[dict]:
        return [asdict(c) for c in self.columns]

    @classmethod
    def from_state(cls, state: list[dict]) -> ExogTransform:
        e = cls()
        e.columns = [ExogColumn(**c) for c in state]
        return e


def auto_transform(y: np.ndarray, season: int = 1, seasonal_difference: bool | None = None) -> TransformConfig:
    """The transforms a forecaster of ``y`` defaults to: log for a positive series whose
    level changes by a factor of 2 or more (so its variations scale with it); the seasonal
    difference where the season explains more than 64% of the variance left after the
    trend (``seasonal_strength``, the rule auto.arima and the ARIMA baseline use for D), so
    that the network forecasts the change from a season before; then the first difference
    for a trend a network would not extrapolate: a KPSS test rejecting level stationarity
    at 5% and a straight line explaining at least half of the variance (a level shift, a
    cycle, is left to the network). A ``seasonal_difference`` given is taken as it is, and
    the first difference is decided after it."""
    import warnings

    from statsmodels.tsa.stattools import kpss
    y = np.asarray(y, dtype=np.float64)
    log = bool((y > 0).all() and y.max() >= 2 * y.min())
    x = np.log(y) if log else y
    seasonal = seasonal_difference if seasonal_difference is not None else \
        season > 1 and len(x) >= 3 * season and seasonal_strength(x, season) > SEASONAL_STRENGTH
    if seasonal:
        x = x[season:] - x[:-season]
    t = np.arange(len(x), dtype=np.float64)
    slope, intercept = np.polyfit(t, x, 1)
    explained = 1 - np.var(x - (slope * t + intercept)) / max(np.var(x), 1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KPSS's p-value table bounds
        difference = len(x) > 10 and np.ptp(x) > 0 and explained >= 0.5 and kpss(x, nlags="auto")[1] < 0.05
    return TransformConfig(log=log, difference=bool(difference), seasonal_difference=bool(seasonal))


SEASONAL_STRENGTH = 0.64  # Wang, Smith & Hyndman (2006)'s threshold for a seasonal difference


def seasonal_strength(x: np.ndarray, season: int) -> float:
    """1 - var(remainder) / var(seasonal + remainder) of an STL decomposition, in [0, 1]."""
    from statsmodels.tsa.seasonal import STL
    parts = STL(x, period=season).fit()
    remainder, seasonal = np.asarray(parts.resid), np.asarray(parts.seasonal)
    return max(0.0, 1 - float(np.var(remainder) / np.var(remainder + seasonal)))
