"""Forecasting's series: statsmodels' CO2 as monthly means of its weekly readings (the empty
months interpolated), the other files' dates written in ISO form with every column kept,
and the CSV each writes reading back row for row."""

import numpy as np
import pytest

from rnnkit.data import series_corpora
from rnnkit.data.series import read_csv_series

pytest.importorskip("statsmodels")


def test_co2_is_monthly_means_with_the_empty_months_interpolated():
    dates, columns = series_corpora.read_co2()
    values = columns["co2"]
    assert len(dates) == 526 and dates[0] == "1958-03" and dates[-1] == "2001-12"
    assert values[0] == 316.1 and values[1] == pytest.approx(np.mean([317.3, 317.6, 317.5, 316.4]))  # April: 4 weeks
    assert np.isfinite(values).all() and (np.abs(np.diff(values)) < 5).all()


def test_dates_become_iso_and_every_column_is_kept(tmp_path):
    dates, columns = series_corpora.read_macrodata()
    assert dates[:2] == ["1959Q1", "1959Q2"] and len(columns) == 12 and next(iter(columns)) == "realgdp"
    dates, _ = series_corpora.read_elec_equip()
    assert dates[:2] == ["1995-01", "1995-02"] and dates[-1] == "2016-05"
    path = series_corpora.prepare("nile", tmp_path)
    series = read_csv_series(path, date_column="date")
    assert series.dates[0] == "1871" and series.values.shape == (100, 1) and series.values[0, 0] == 1120.0


def test_sktime_files_are_read_from_their_rows(monkeypatch):
    rows = [["", "Quarter", "Consumption", "Income"], ["0", "1970 Q1", "0.61", "0.97"], ["1", "1970 Q2", "0.46", "1.1"]]
    monkeypatch.setattr(series_corpora, "_sktime_csv", lambda member: rows)
    dates, columns = series_corpora.read_uschange()
    assert dates == ["1970Q1", "1970Q2"] and list(columns) == ["consumption", "income"]
    assert columns["income"].tolist() == [0.97, 1.1]
