"""`rnnkit forecast`: train -> eval --json -> predict (CSV and plot) -> backtest on the real
airline series, the model beating the seasonal naive forecast; a long season's phase read
from the dates; bad series and impossible settings give one line naming the file, line and
column or the flag."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main

AIRLINE = Path(__file__).parent / "data" / "airline.csv"
FAST = ["--threads", "1", "--log-every", "1000", "--epochs", "60"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    history = root / "history.csv"
    history.write_text("".join(AIRLINE.read_text().splitlines(keepends=True)[:-12]))  # the last year unseen
    out = root / "run"
    assert main(["forecast", "train", "--train", str(history), "--horizon", "12", "--model", "tdnn", "--out",
                 str(out), *FAST]) == 0
    return root, out


def test_eval_forecasts_the_unseen_year_better_than_seasonal_naive(trained, capsys):
    root, out = trained
    capsys.readouterr()
    assert main(["forecast", "eval", "--model", str(out), "--data", str(AIRLINE), "--json", "--threads", "1"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"mase", "smape", "owa", "rmse", "coverage", "ets_mase", "arima_mase", "theta_mase",
            "seasonal_naive_mase", "naive2_mase", "count"} <= set(m)
    assert m["count"] == 12 and m["mase"] < m["seasonal_naive_mase"] and 0 <= m["coverage"] <= 1


def test_predict_writes_dates_forecasts_intervals_and_a_plot(trained, tmp_path, capsys):
    root, out = trained
    capsys.readouterr()
    assert main(["forecast", "predict", "--model", str(out), "--data", str(AIRLINE), "--horizon", "3", "--plot",
                 str(tmp_path / "f.png"), "--threads", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "date,forecast,lower,upper" and [line.split(",")[0] for line in lines[1:]] == \
        ["1961-01", "1961-02", "1961-03"]
    for line in lines[1:]:
        mean, lower, upper = map(float, line.split(",")[1:])
        assert lower <= mean <= upper
    assert (tmp_path / "f.png").stat().st_size > 5000


def test_eval_refuses_the_dates_that_chose_the_best_epoch(trained, capsys):
    root, out = trained
    capsys.readouterr()
    assert main(["forecast", "eval", "--model", str(out), "--data", str(root / "history.csv"), "--threads", "1"]) == 1
    assert "are not all after the training series' end (1959-12)" in capsys.readouterr().err


def test_predict_reads_future_covariates_by_date(tmp_path, capsys):
    rows = AIRLINE.read_text().splitlines()
    with_x = tmp_path / "x.csv"  # a covariate: the month's number
    with_x.write_text("\n".join([rows[0] + ",month"] + [f"{r},{r.split(',')[0][5:7]}" for r in rows[1:]]) + "\n")
    out = tmp_path / "run"
    assert main(["forecast", "train", "--train", str(with_x), "--exog", "month",
                 "--horizon", "12", "--model", "tdnn", "--out", str(out), *FAST[:-2], "--epochs", "3"]) == 0
    assert "exogenous month: asinh, standardised" in capsys.readouterr().err  # positive, 1 to 12: a log
    predict = ["forecast", "predict", "--model", str(out), "--data", str(with_x), "--horizon", "2", "--threads", "1"]
    assert main(predict) == 2
    assert "give their values at the next 2 dates, 1961-01 to 1961-02 (--future)" in capsys.readouterr().err
    future = tmp_path / "future.csv"
    future.write_text("date,month\n1961-02,2\n1961-01,1\n")  # any order: read by date
    assert main([*predict, "--future", str(future)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    future.write_text("date,month\n1961-01,1\n1961-03,3\n")
    assert main([*predict, "--future", str(future)]) == 1
    assert "future.csv: no row for 1961-02" in capsys.readouterr().err


def test_backtest_prints_every_model_and_baseline(capsys):
    capsys.readouterr()
    assert main(["forecast", "backtest", "--data", str(AIRLINE), "--horizon", "12", "--origins", "2", "--models",
                 "tdnn", "--epochs", "40", "--json", "--threads", "1"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == {"naive2", "tdnn", "seasonal-naive", "ets", "arima", "theta"}
    assert table["naive2"]["owa"] == pytest.approx(1.0)
    assert table["tdnn"]["mase"] < table["seasonal-naive"]["mase"]


def test_bad_series_and_settings_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    for text, message in (("date,y\n1990-01,1\n1990-02,x\n", "bad.csv:3: bad number 'x' in column y"),
                          ("date,y\n1990-01,1\n1990-02,2\n1990-04,3\n", "bad.csv:4: irregular dates")):
        bad.write_text(text)
        assert main(["forecast", "train", "--train", str(bad), "--horizon", "1", "--out", str(tmp_path / "r"),
                     *FAST]) == 1
        assert message in capsys.readouterr().err
    short = tmp_path / "short.csv"
    short.write_text("date,y\n" + "".join(f"{1990 + i},{i % 3}\n" for i in range(12)))
    assert main(["forecast", "train", "--train", str(short), "--horizon", "10", "--out", str(tmp_path / "s"),
                 *FAST]) == 2
    assert "--horizon: 10 steps leave no history to learn from in a series of 12" in capsys.readouterr().err
    assert main(["forecast", "train", "--train", str(short), "--horizon", "6", "--out", str(tmp_path / "s"),
                 *FAST]) == 1
    assert "too short" in capsys.readouterr().err
    assert main(["forecast", "train", "--train", str(AIRLINE), "--horizon", "6", "--model", "tdnn", "--strategy",
                 "direct", "--out", str(tmp_path / "d"), *FAST]) == 2
    assert "--strategy: direct needs a recurrent encoder" in capsys.readouterr().err


def test_the_phase_of_a_long_season_comes_from_the_dates(tmp_path, capsys):
    """Half-hours (a season of 48: the phase as inputs): a file that starts 5 steps later
    gives a finite-window model the same forecast; a file of another frequency is refused."""
    rng = np.random.default_rng(0)
    start = datetime(2021, 5, 1)
    rows = [f"{(start + timedelta(minutes=30 * k)).strftime('%Y-%m-%dT%H:%M')},"
            f"{5 + 3 * np.sin(2 * np.pi * k / 48) + 0.1 * rng.normal():.4f}" for k in range(192)]
    full, later = tmp_path / "full.csv", tmp_path / "later.csv"
    full.write_text("date,power\n" + "\n".join(rows) + "\n")
    later.write_text("date,power\n" + "\n".join(rows[5:]) + "\n")
    out = tmp_path / "run"
    assert main(["forecast", "train", "--train", str(full), "--horizon", "12", "--model", "tdnn", "--out", str(out),
                 *FAST[:-2], "--epochs", "2"]) == 0
    assert "the season's phase as inputs: 2 sin and cos pairs" in capsys.readouterr().err
    forecasts = []
    for data in (full, later):
        assert main(["forecast", "predict", "--model", str(out), "--data", str(data), "--threads", "1"]) == 0
        forecasts.append(capsys.readouterr().out)
    assert forecasts[0] == forecasts[1] and len(forecasts[0].splitlines()) == 13
    hourly = tmp_path / "hourly.csv"
    hourly.write_text("date,power\n" + "\n".join(f"2021-05-01T{k:02d}:00,{k}" for k in range(24)) + "\n")
    assert main(["forecast", "predict", "--model", str(out), "--data", str(hourly), "--threads", "1"]) == 1
    assert "hourly dates, where the model was trained on half-hourly ones" in capsys.readouterr().err
