"""`rnnkit forecast train|eval|predict|backtest`: recurrent forecasters of a CSV series
(``date,column[,exogenous...]``) against the classical baselines. The pipeline is
:mod:`rnnkit.tasks.forecast`; this module turns flags into its configs."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from rnnkit.commands.common import (
    common_parent,
    maybe_launch,
    print_metrics,
    run_job,
    setup,
    setup_inference,
    start_run,
    thread_count,
)
from rnnkit.data.errors import DataError
from rnnkit.data.series import read_csv_series
from rnnkit.metrics import coverage, forecast_errors, owa
from rnnkit.plots import forecast_plot
from rnnkit.settings import COUNT, NATURAL, SettingError, rule
from rnnkit.tasks.backtest import backtest
from rnnkit.tasks.forecast import (
    ForecastConfig,
    ForecastData,
    ModelKind,
    NeuralForecaster,
    Strategy,
    auto_harmonics,
    load_forecaster,
    read,
    training_job,
)
from rnnkit.tasks.forecast_baselines import Baseline, BaselineKind
from rnnkit.tasks.forecast_data import TransformConfig, auto_transform, future_dates, read_series

COMPARED = (BaselineKind.NAIVE2, BaselineKind.SEASONAL_NAIVE, BaselineKind.ETS, BaselineKind.ARIMA,
            BaselineKind.THETA)


def _columns(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip()) if text else ()


def _data(args: argparse.Namespace, path: Path) -> ForecastData:
    return ForecastData(path, args.column, _columns(args.exog), args.season, args.date_column)


def _config(args: argparse.Namespace, y: np.ndarray, season: int) -> ForecastConfig:
    """The flags' config; transforms not given are chosen by the series' training part."""
    if len(y) <= args.horizon + 2:
        raise SettingError("horizon", f"{args.horizon} steps leave no history to learn from in a series of {len(y)}")
    auto = auto_transform(y[:-args.horizon], season, args.seasonal_difference)
    transform = TransformConfig(log=auto.log if args.log is None else args.log,
                                difference=auto.difference if args.difference is None else args.difference,
                                seasonal_difference=auto.seasonal_difference)
    return ForecastConfig(horizon=args.horizon, model=ModelKind(args.model), strategy=Strategy(args.strategy),
                          hidden=args.hidden, layers=args.layers, window=args.window, delays=args.delays,
                          error_delays=args.error_delays, exog_only=args.exog_only, dropout=args.dropout,
                          harmonics=auto_harmonics(season) if args.harmonics is None else args.harmonics,
                          exog_transforms=args.exog_transforms,
                          level=args.level, paths=args.paths, epochs=args.epochs, patience=args.patience,
                          lr=args.lr, batch_size=args.batch_size, seed=args.seed, transform=transform)


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    if args.bptt is not None:
        raise SettingError("bptt", "does not apply to forecast: every window is read whole")
    data = _data(args, args.train)
    resumed = getattr(args, "resumed", None)
    if args.patience is None:
        args.patience = ForecastConfig.patience  # the engine's early stopping and the config agree
    if resumed:
        config = ForecastConfig(**resumed.config["forecast"])
    else:
        series = read(data)
        config = _config(args, series.target, series.season)
    run = start_run(args)
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    return run_job(args, training_job(data, config, resumed), world, run)


def _baselines(y: np.ndarray, season: int, horizon: int, level: float) -> dict[str, object]:
    return {kind.value: Baseline(kind, season, level).forecast(y, horizon) for kind in COMPARED}


def _model_series(path: Path, header: dict, season: int):
    """The series a trained model reads from ``path``: its columns, at its frequency."""
    series = read_series(path, header["target"], header["exog"], header["date_column"], season)
    if series.frequency != header["frequency"]:
        raise DataError(path, None, f"{series.frequency} dates, where the model was trained on {header['frequency']} "
                                    "ones")
    return series


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    """The last horizon of the data forecast from the rest, against the baselines."""
    setup_inference(args)
    forecaster, ck = load_forecaster(args.model)
    h = forecaster.config.horizon
    series = _model_series(args.data, ck.config, forecaster.season)
    y, u = series.target, series.exog
    if len(y) <= h + 2:
        raise DataError(args.data, None, f"{len(y)} steps: too few to hold out the horizon of {h}")
    last = ck.config.get("last_date")  # the training series' end: its last h steps chose the best epoch
    if last in series.dates and series.dates.index(last) >= len(y) - h:
        raise DataError(args.data, None, f"its last {h} dates ({series.dates[-h]} to {series.dates[-1]}) are not all "
                                         f"after the training series' end ({last}), whose last {h} steps chose the "
                                         "best epoch: score later data, or compare on held-out origins with "
                                         "rnnkit forecast backtest")
    history, actual = y[:-h], y[-h:]
    f = forecaster.forecast(history, u[:-h], u[-h:], int(series.clock[0]))
    metrics = {**forecast_errors(history, actual, f.mean, forecaster.season),
               "coverage": coverage(actual, f.lower, f.upper), "count": float(h)}
    base = _baselines(history, forecaster.season, h, forecaster.config.level)
    naive2 = forecast_errors(history, actual, base["naive2"].mean, forecaster.season)
    metrics["owa"] = owa(metrics["smape"], metrics["mase"], naive2["smape"], naive2["mase"])
    for name, b in base.items():
        metrics[f"{name.replace('-', '_')}_mase"] = forecast_errors(history, actual, b.mean, forecaster.season)["mase"]
    print_metrics(metrics, args.json)
    return 0


def _predict(args: argparse.Namespace, argv: list[str]) -> int:
    """The next horizon after the data: date,forecast,lower,upper lines."""
    setup_inference(args)
    forecaster, ck = load_forecaster(args.model)
    h = args.horizon or forecaster.config.horizon
    if forecaster.config.strategy is Strategy.DIRECT and h != forecaster.config.horizon:
        raise SettingError("horizon", f"a direct model forecasts its own horizon ({forecaster.config.horizon})")
    forecaster.config = replace(forecaster.config, horizon=h)
    exog = ck.config["exog"]
    series = _model_series(args.data, ck.config, forecaster.season)
    dates = future_dates(series.dates, h)
    future = None
    if exog and forecaster.config.strategy is Strategy.RECURSIVE:  # direct: the window's exogenous values only
        if args.future is None:
            raise SettingError("future", f"the model reads {', '.join(exog)}: give their values at the next {h} "
                                         f"dates, {dates[0]} to {dates[-1]} (--future)")
        rows = read_csv_series(args.future, exog, ck.config["date_column"])
        at = {d: i for i, d in enumerate(rows.dates)}
        missing = [d for d in dates if d not in at]
        if missing:
            raise DataError(args.future, None, f"no row for {missing[0]} (--future needs {dates[0]} to {dates[-1]})")
        future = rows.values[[at[d] for d in dates]]
    f = forecaster.forecast(series.target, series.exog, future, int(series.clock[0]))
    print("date,forecast,lower,upper")
    for row in zip(dates, f.mean, f.lower, f.upper):
        print(f"{row[0]},{row[1]:.6g},{row[2]:.6g},{row[3]:.6g}")
    sys.stdout.flush()
    if args.plot is not None:
        keep = min(len(series.target), max(4 * h, 3 * forecaster.season))
        forecast_plot(series.dates[-keep:], series.target[-keep:], dates, f.mean, f.lower, f.upper, args.plot,
                      f"{ck.config['target']}: {forecaster.config.model.value} forecast", forecaster.config.level)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def _backtest(args: argparse.Namespace, argv: list[str]) -> int:
    """Every model and baseline over the last --origins origins: the table."""
    setup_inference(args)
    data = _data(args, args.data)
    series = read(data)
    models = [ModelKind(m) for m in _columns(args.models)]
    h, start = args.horizon, int(series.clock[0])
    chosen: dict[int, ForecastConfig] = {}  # per origin (its history's length), for every model

    def neural(kind: ModelKind, strategy: Strategy = Strategy.RECURSIVE):
        def forecast(hist, u_hist, u_future):
            if len(hist) not in chosen:
                chosen[len(hist)] = _config(args, hist, series.season)
            config = replace(chosen[len(hist)], model=kind, strategy=strategy)
            forecaster = NeuralForecaster(config, series.season).fit(hist, u_hist, start=start)
            return forecaster.forecast(hist, u_hist, u_future, start)
        return forecast

    def baseline(kind: BaselineKind):
        b = Baseline(kind, series.season, args.level)  # its form chosen at the first origin
        return lambda hist, u_hist, u_future: b.forecast(hist, h)

    forecasters = {m.value: neural(m) for m in models}
    if args.direct:
        forecasters[f"{models[0].value}-direct"] = neural(models[0], Strategy.DIRECT)
    forecasters.update({k.value: baseline(k) for k in COMPARED if k is not BaselineKind.NAIVE2})
    table = backtest(series.target, series.exog, series.season, h, forecasters, args.origins, args.step)
    if args.json:
        print(json.dumps(table, sort_keys=True))
    else:
        keys = ("mase", "smape", "owa", "rmse", "coverage", "seconds")
        print(f"{'model':16s}" + "".join(f"{k:>10s}" for k in keys))
        for name, row in table.items():
            print(f"{name:16s}" + "".join(f"{row[k]:10.3f}" for k in keys))
    sys.stdout.flush()
    return 0


def _series_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--column", default=None, help="the target column (default: the first after the date)")
    p.add_argument("--exog", default=None, help="exogenous columns, comma-separated")
    p.add_argument("--date-column", default="date", help="the dates' column")
    p.add_argument("--season", type=COUNT, default=None,
                   help="the seasonal period (default: the frequency's: 12 monthly, 4 quarterly, 1 yearly, ...)")


def _model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--horizon", type=rule(ForecastConfig, "horizon"), required=True, help="steps forecast")
    g.add_argument("--model", choices=[m.value for m in ModelKind], default="lstm",
                   help="narx, lstm, gru, elman, or tdnn (the finite-window baseline)")
    g.add_argument("--strategy", choices=[s.value for s in Strategy], default="recursive",
                   help="recursive: one step at a time, fed back; direct: the horizon at once (lstm, gru, elman)")
    g.add_argument("--hidden", type=rule(ForecastConfig, "hidden"), default=32, help="hidden units")
    g.add_argument("--layers", type=rule(ForecastConfig, "layers"), default=1, help="recurrent layers")
    g.add_argument("--window", type=rule(ForecastConfig, "window"), default=0,
                   help="steps per training window (0: 4 seasons, 3 horizons, at least 24)")
    g.add_argument("--delays", type=rule(ForecastConfig, "delays"), default=0,
                   help="narx and tdnn: taps of the past (0: the season, at least 4)")
    g.add_argument("--error-delays", type=rule(ForecastConfig, "error_delays"), default=0,
                   help="narx: taps of past prediction errors (NARMAX)")
    g.add_argument("--exog-only", action="store_true", help="narx: predict from the exogenous columns alone")
    g.add_argument("--dropout", type=rule(ForecastConfig, "dropout"), default=0.0, help="between layers")
    g.add_argument("--log", action=argparse.BooleanOptionalAction, default=None,
                   help="forecast the log (default: for a positive series whose level doubles)")
    g.add_argument("--difference", action=argparse.BooleanOptionalAction, default=None,
                   help="forecast the first difference (default: while a KPSS test rejects stationarity)")
    g.add_argument("--seasonal-difference", action=argparse.BooleanOptionalAction, default=None,
                   help="forecast y(t) - y(t - season) (default: where the season explains more than 64%% of "
                        "the variance)")
    g.add_argument("--harmonics", type=rule(ForecastConfig, "harmonics"), default=None,
                   help="sin and cos pairs of the season's phase as inputs (default: 2 for a season of 24 "
                        "steps or more, else 0)")
    g.add_argument("--exog-transforms", action=argparse.BooleanOptionalAction, default=True,
                   help="transform each exogenous column as a target: asinh for a log, a difference for a trend "
                        "(default; --no-exog-transforms: only standardised)")
    g.add_argument("--level", type=rule(ForecastConfig, "level"), default=0.8, help="the interval's coverage")
    g.add_argument("--paths", type=rule(ForecastConfig, "paths"), default=200,
                   help="sample paths for a recursive model's interval")
    g.add_argument("--batch-size", type=rule(ForecastConfig, "batch_size"), default=32, help="windows per update")


def register(sub: argparse._SubParsersAction) -> None:
    fc = sub.add_parser("forecast", help="recurrent forecasters (NARX, LSTM, ...) against ETS, ARIMA and theta")
    actions = fc.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", parents=[common_parent()], help="train a forecaster on a CSV series")
    train.add_argument("--train", type=Path, required=True, help="CSV: a date column, the target, exogenous columns")
    _series_flags(train)
    _model_flags(train)
    train.set_defaults(run=_train, lr=3e-3, holdout=0.0)
    ev = actions.add_parser("eval", help="the data's last horizon forecast from the rest, against the baselines")
    ev.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    ev.add_argument("--data", type=Path, required=True, help="the series (CSV)")
    ev.add_argument("--json", action="store_true", help="one JSON object")
    ev.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    ev.set_defaults(run=_eval)
    pr = actions.add_parser("predict", help="the next horizon after the data: date,forecast,lower,upper")
    pr.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    pr.add_argument("--data", type=Path, required=True, help="the series (CSV)")
    pr.add_argument("--horizon", type=rule(ForecastConfig, "horizon"), default=None,
                    help="steps (default: the model's; a recursive model forecasts any)")
    pr.add_argument("--future", type=Path, default=None, help="CSV of the exogenous columns' next values")
    pr.add_argument("--plot", type=Path, default=None, help="also draw history, forecast and interval (PNG)")
    pr.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    pr.set_defaults(run=_predict)
    bt = actions.add_parser("backtest", help="every model and baseline over the last origins: the table")
    bt.add_argument("--data", type=Path, required=True, help="the series (CSV)")
    _series_flags(bt)
    _model_flags(bt)
    bt.add_argument("--models", default="narx,lstm,gru,tdnn", help="the neural models, comma-separated")
    bt.add_argument("--direct", action="store_true", help="also the first model with the direct strategy")
    bt.add_argument("--origins", type=COUNT, default=3, help="forecast origins, the last ones")
    bt.add_argument("--step", type=NATURAL, default=0, help="steps between origins (0: the horizon)")
    bt.add_argument("--epochs", type=rule(ForecastConfig, "epochs"), default=ForecastConfig.epochs,
                    help="the most epochs per fit")
    bt.add_argument("--patience", type=rule(ForecastConfig, "patience"), default=ForecastConfig.patience,
                    help="epochs without gain")
    bt.add_argument("--lr", type=rule(ForecastConfig, "lr"), default=ForecastConfig.lr, help="Adam's learning rate")
    bt.add_argument("--seed", type=rule(ForecastConfig, "seed"), default=ForecastConfig.seed,
                    help="weights, windows, paths")
    bt.add_argument("--json", action="store_true", help="one JSON object")
    bt.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    bt.set_defaults(run=_backtest)
