"""A series to forecast: each date form's frequency and season, irregular, repeated and
missing dates named by line, gaps interpolated and counted, bad values named by file, line
and column, every transform inverted exactly on the values that follow its history, each
step's clock (its phase in the season whatever the file's first date), the phase features,
and the exogenous columns' transforms fitted on the history alone."""

import itertools

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.tasks.forecast_data import (
    ExogTransform,
    Transform,
    TransformConfig,
    auto_transform,
    describe,
    read_series,
    season_features,
)


def _csv(tmp_path, text):
    path = tmp_path / "s.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("dates,freq,season", [
    (["1990", "1991", "1992"], "yearly", 1), (["1990Q4", "1991Q1", "1991Q2"], "quarterly", 4),
    (["1990-11", "1990-12", "1991-01"], "monthly", 12), (["2020-01-06", "2020-01-13", "2020-01-20"], "weekly", 52),
    (["2020-03-30", "2020-03-31", "2020-04-01"], "daily", 7),
    (["2021-05-01T23:00", "2021-05-01T23:30", "2021-05-02T00:00"], "half-hourly", 48)])
def test_frequency_and_season_from_the_dates(tmp_path, dates, freq, season):
    s = read_series(_csv(tmp_path, "date,y\n" + "".join(f"{d},{i}\n" for i, d in enumerate(dates))))
    assert (s.frequency, s.season, s.target.tolist()) == (freq, season, [0.0, 1.0, 2.0])


def test_bad_dates_and_values_are_named(tmp_path):
    for text, message in (("date,y\n1990-01,1\n1990-02,2\n1990-04,3\n", "s.csv:4: irregular dates: 1990-02 to 1990-04"),
                          ("date,y\n1990,1\n1990,2\n", "s.csv:3: date 1990 does not come after 1990"),
                          ("date,y\n1990,1\n1991-01,2\n", "s.csv:3: date '1991-01' is not in the first row's form"),
                          ("date,y\nsoon,1\nlater,2\n", "s.csv:2: date 'soon' is not YYYY"),
                          ("date,y\n1990,1\n1991,x\n", "s.csv:3: bad number 'x' in column y"),
                          ("date,y\n1990,\n1991,2\n1992,3\n", "s.csv:2: column y starts or ends with a missing value"),
                          ("when,y\n1990,1\n", "no date column 'date' (--date-column)")):
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_series(_csv(tmp_path, text))


def test_gaps_are_interpolated_and_counted(tmp_path):
    s = read_series(_csv(tmp_path, "date,y,x\n1990,1,5\n1991,,6\n1992,,7\n1993,4,8\n"), "y", ["x"])
    assert s.target.tolist() == [1.0, 2.0, 3.0, 4.0] and s.exog[:, 0].tolist() == [5.0, 6.0, 7.0, 8.0]
    assert s.notes == [f"{tmp_path / 's.csv'}: 2 missing values of y interpolated linearly"]


@pytest.mark.parametrize("log,difference,seasonal", list(itertools.product([False, True], repeat=3)))
def test_every_transform_inverts_exactly(log, difference, seasonal):
    t = np.arange(48)
    y = np.exp(0.03 * t) * (10 + 3 * np.sin(t * 2 * np.pi / 12)) + 0.1 * np.cos(t)
    config = TransformConfig(log=log, difference=difference, seasonal_difference=seasonal)
    transform = Transform(config, 12).fit(y[:36])
    z = transform.apply(y)  # the whole series with the history's statistics
    assert len(z) == 48 - transform.lost
    np.testing.assert_allclose(transform.invert(z[-12:]), y[36:], rtol=1e-10)
    np.testing.assert_allclose(transform.invert(np.stack([z[-12:], z[-12:]])), np.stack([y[36:], y[36:]]),
                               rtol=1e-10)  # a batch of forecasts too


def test_default_transforms_follow_the_series():
    t = np.arange(120.0)
    growth = np.exp(0.02 * t) * (10 + np.sin(t))  # positive, trending, its level grows fourfold
    assert auto_transform(growth) == TransformConfig(log=True, difference=True)
    shift = np.r_[np.full(30, 10.0), np.full(90, 7.0)] + np.random.default_rng(0).normal(0, 1.0, 120)
    assert auto_transform(shift).difference is False  # an early level shift (the Nile's dam): no trend
    cycle = 5 + np.sin(t / 3)
    assert auto_transform(cycle).difference is False


def test_a_strong_season_is_differenced_and_a_weak_one_is_not():
    t, noise = np.arange(120.0), np.random.default_rng(0).normal(0, 1.0, 120)
    monthly = 20 + 4 * np.sin(2 * np.pi * t / 12) + 0.3 * noise
    assert auto_transform(monthly, 12) == TransformConfig(seasonal_difference=True)
    assert auto_transform(monthly).seasonal_difference is False  # no season given
    assert auto_transform(20 + 0.2 * np.sin(2 * np.pi * t / 12) + noise, 12).seasonal_difference is False
    assert auto_transform(monthly[:30], 12).seasonal_difference is False  # under three seasons
    trend = 100 + 0.5 * t + monthly  # its level under doubled: no log
    assert auto_transform(trend, 12).difference is False  # the seasonal difference took the trend
    assert auto_transform(trend, 12, seasonal_difference=False) == TransformConfig(difference=True)


def test_the_transforms_are_named_in_their_order():
    assert describe(TransformConfig(log=True, difference=True, seasonal_difference=True)) == \
        "log, seasonal difference, difference, standardised"
    assert describe(TransformConfig(standardise=False)) == "none"


@pytest.mark.parametrize("dates,phase", [
    (["1990-11", "1990-12", "1991-01"], [10, 11, 0]), (["1990Q4", "1991Q1"], [3, 0]),
    (["2021-05-01T23:00", "2021-05-01T23:30", "2021-05-02T00:00"], [46, 47, 0]),
    (["1970-01-01", "1970-01-02"], [0, 1]),
    (["1990-01-01T00:30", "1990-01-01T01:30", "1990-01-01T02:30"], [0, 1, 2]),  # between steps: the earlier
    (["2020-01-01T12:00", "2020-01-02T12:00", "2020-01-03T12:00"], [6, 0, 1])])  # days since 1970 at noon
def test_the_clock_counts_steps_on_the_calendar(tmp_path, dates, phase):
    s = read_series(_csv(tmp_path, "date,y\n" + "".join(f"{d},{k}\n" for k, d in enumerate(dates))))
    assert (s.clock % s.season).tolist() == phase
    assert np.diff(s.clock).tolist() == [1] * (len(dates) - 1)


def test_season_features_follow_the_phase():
    f = season_features(np.arange(100, 148), 24, 3)  # (48, 6): sin of k = 1..3, then cos
    assert f.shape == (48, 6)
    np.testing.assert_allclose(f[:24], f[24:])
    np.testing.assert_allclose(f[:, 0] ** 2 + f[:, 3] ** 2, 1.0)
    phase = (100 + np.arange(48)) % 24
    np.testing.assert_allclose(f[:, 1], np.sin(4 * np.pi * phase / 24), atol=1e-12)


def test_exogenous_columns_are_transformed_on_their_history_alone():
    t = np.arange(80.0)
    rng = np.random.default_rng(0)
    u = np.stack([np.exp(0.03 * t) * 100 + rng.normal(0, 1, 80), rng.normal(0, 1, 80)], 1)  # growth; noise
    e = ExogTransform().fit(u[:60])
    assert [(c["scale"] > 0, c["difference"]) for c in e.state()] == [(True, True), (False, False)]
    assert [c.describe() for c in e.columns] == ["asinh, difference, standardised", "standardised"]
    x = e.apply(u)
    assert x[0, 0] == 0.0  # no step before the first: the mean
    np.testing.assert_allclose(x[1:60, 0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose([x[1:60, 0].std(), x[:60, 1].std()], 1.0)
    growth = np.diff(np.arcsinh(u[:, 0] / e.columns[0].scale))  # the log's growth, where u is 10 scales up
    np.testing.assert_allclose(growth, np.diff(np.log(u[:, 0])), atol=1e-3)
    np.testing.assert_allclose(x[1:, 0], (growth - e.columns[0].mean) / e.columns[0].std)
    np.testing.assert_array_equal(e.apply(u[:60]), x[:60])  # later rows change no earlier one
    np.testing.assert_array_equal(ExogTransform.from_state(e.state()).apply(u), x)
    assert np.isfinite(e.apply(np.r_[u, [[0.0, 0.0], [-5.0, 1.0]]])).all()  # a later zero or negative value
    with pytest.raises(ValueError, match="3 exogenous columns"):
        e.apply(np.zeros((5, 3)))


def test_constant_and_indicator_columns_are_only_standardised():
    step = np.r_[np.zeros(25), np.ones(25)]  # a level shift's indicator: no difference taken
    e = ExogTransform().fit(np.stack([np.full(50, 3.0), step, 1 + step], 1))
    assert [(c["scale"], c["difference"]) for c in e.state()] == [(0.0, False)] * 3
    growth = np.exp(0.03 * np.arange(50.0))
    assert ExogTransform().fit(growth[:, None], choose=False).state()[0]["difference"] is False  # asked: standardised
    assert auto_transform(np.full(50, 3.0)) == TransformConfig()  # a constant has no trend to difference
