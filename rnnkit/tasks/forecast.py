"""Forecasting a series with recurrent networks: training on windows of the transformed
history, forecasting with prediction intervals, and the model directory.

A history y (T,) with exogenous columns u (T, C) is transformed (:mod:`rnnkit.tasks.forecast_data`)
into z. One-step models (``narx``, ``lstm``, ``gru``, ``elman``, ``tdnn``) train teacher-
forced on windows of ``window`` consecutive steps, scored by the Gaussian negative
log-likelihood; they forecast closed loop (their own values fed back), the point forecast
being the path of means and the interval the quantiles of ``paths`` sample paths (each value
drawn from its Gaussian and fed back). The direct strategy (``--strategy direct``) trains an
encoder over ``window`` steps to give all ``horizon`` values at once (means and Gaussian
intervals). The last ``horizon`` steps of the history are held out: training stops when
their closed-loop MAE has not improved for ``patience`` epochs, and the best epoch's
weights are kept. Forecasts are inverted back to y's scale.

The recursive models need future exogenous values for every forecast step (the known
covariates of the notes' solar and wind set-up; ``exog_only`` reads them alone, without the
target's past); the direct model reads the exogenous columns of its window only. The
network reads the exogenous columns transformed (:class:`ExogTransform`, fitted with the
target's transform) and, with ``harmonics`` K, the phase of each step in the season
(:func:`season_features`, from the step's clock: ``start`` is the history's first step).

Dimensions: T history, W window, C exogenous columns, h horizon, P paths, K harmonics.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnkit.batch import Batch
from rnnkit.checkpoint import Checkpoint, load_weights, read_config
from rnnkit.layers import CellKind
from rnnkit.optim import OptimizerConfig, build_optimizer
from rnnkit.runner import TrainingJob
from rnnkit.settings import COUNT, FRACTION, NATURAL, POSITIVE, SettingError, check, setting
from rnnkit.tasks.forecast_baselines import Forecast
from rnnkit.tasks.forecast_data import (
    ExogTransform,
    SeriesData,
    Transform,
    TransformConfig,
    describe,
    read_series,
    season_features,
)
from rnnkit.tasks.forecast_models import (
    DirectForecaster,
    Ensemble,
    NARXForecaster,
    RecurrentAR,
    TDNNForecaster,
    gaussian_nll,
    iterate,
)
from rnnkit.train import Callback, FitConfig, FitState, StepOutput, fit


class ModelKind(enum.Enum):
    NARX = "narx"
    LSTM = "lstm"
    GRU = "gru"
    ELMAN = "elman"
    TDNN = "tdnn"


class Strategy(enum.Enum):
    RECURSIVE = "recursive"  # one step at a time, each fed back
    DIRECT = "direct"  # all horizon values at once from an encoder


@dataclass(frozen=True)
class ForecastConfig:
    horizon: int = setting(1, COUNT)  # h, steps forecast
    model: ModelKind = ModelKind.LSTM
    strategy: Strategy = Strategy.RECURSIVE
    hidden: int = setting(32, COUNT)  # units of the recurrent (NARX, TDNN: hidden) layer
    layers: int = setting(1, COUNT)  # recurrent layers
    window: int = setting(0, NATURAL)  # steps a training window holds (0: 4 seasons, 3 horizons, at least 24)
    delays: int = setting(0, NATURAL)  # NARX's and TDNN's taps of the past (0: the season, at least 4)
    error_delays: int = setting(0, NATURAL)  # NARMAX: taps of past errors
    exog_only: bool = False  # NARX: the exogenous columns alone (no past of the target)
    harmonics: int = setting(0, NATURAL)  # K: sin and cos pairs of the season's phase given as inputs
    exog_transforms: bool = True  # exogenous columns' log and difference chosen as a target's (else standardised)
    dropout: float = setting(0.0, FRACTION)
    level: float = setting(0.8, FRACTION)  # the prediction interval's coverage
    paths: int = setting(200, COUNT)  # sample paths of a recursive model's interval
    ensemble: int = setting(5, COUNT)  # members from different initial weights, forecasts averaged
    epochs: int = setting(300, COUNT)  # the most passes over the windows
    patience: int = setting(30, COUNT)  # epochs without a better held-out MAE before stopping
    lr: float = setting(3e-3, POSITIVE)  # Adam's learning rate
    batch_size: int = setting(32, COUNT)  # windows per update
    seed: int = setting(0, NATURAL)  # weights, window order, sample paths
    transform: TransformConfig = field(default_factory=TransformConfig)

    def __post_init__(self) -> None:
        check(self)
        for name, kind in (("model", ModelKind), ("strategy", Strategy)):
            if not isinstance(getattr(self, name), kind):
                object.__setattr__(self, name, kind(getattr(self, name)))
        if isinstance(self.transform, dict):
            object.__setattr__(self, "transform", TransformConfig(**self.transform))
        if self.strategy is Strategy.DIRECT and self.model in (ModelKind.NARX, ModelKind.TDNN):
            raise SettingError("strategy", f"direct needs a recurrent encoder (lstm, gru, elman), not "
                                           f"{self.model.value}")
        if (self.exog_only or self.error_delays) and self.model is not ModelKind.NARX:
            raise SettingError("exog_only" if self.exog_only else "error_delays", "is NARX's (--model narx)")

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.value, "strategy": self.strategy.value}


def taps(config: ForecastConfig, season: int) -> int:
    return config.delays or max(season, 4)


def window_length(config: ForecastConfig, season: int, available: int) -> int:
    """W: the configured window, or 4 seasons and 3 horizons (at least 24), as long as the
    series allows; a series too short for any window is an error."""
    wanted = config.window or max(4 * season, 3 * config.horizon, 24)
    W = min(wanted, available)
    floor = max(taps(config, season) + 2, 4) if config.strategy is Strategy.RECURSIVE else 4
    if W < floor:
        raise ValueError(f"the series is too short: {available} steps left for training windows after the "
                         f"held-out horizon and the differences, fewer than the {floor} a window needs")
    return W


def auto_harmonics(season: int) -> int:
    """K a forecaster defaults to: 2 for a season of 24 steps or more (a day of hours, a
    year of 52 weeks), whose phase a recurrent state would have to count; none for shorter
    ones, which the delays and the seasonal difference span."""
    return 2 if season >= 24 else 0


def phase_harmonics(config: ForecastConfig, season: int) -> int:
    """K as the network gets it: none for a season of 1, which has no phase."""
    return config.harmonics if season > 1 else 0


def input_columns(config: ForecastConfig, exog: int, season: int) -> int:
    """The network's input columns besides the target: the exogenous ones and 2K phase features."""
    return exog + 2 * phase_harmonics(config, season)


def build_model(config: ForecastConfig, exog: int, season: int) -> Ensemble:
    """``config.ensemble`` members, each seeded from ``config.seed`` and its index, reading
    ``exog`` columns and the phase features."""
    members = []
    for k in range(config.ensemble):
        torch.manual_seed(config.seed * 1000 + k)
        members.append(build_member(config, input_columns(config, exog, season), season))
    return Ensemble(members)


def build_member(config: ForecastConfig, columns: int, season: int) -> nn.Module:
    """One member reading the target and ``columns`` input columns (exogenous and phase)."""
    cell = {ModelKind.LSTM: CellKind.LSTM, ModelKind.GRU: CellKind.GRU, ModelKind.ELMAN: CellKind.ELMAN}
    d = taps(config, season)
    if config.strategy is Strategy.DIRECT:
        return DirectForecaster(cell[config.model], columns, config.hidden, config.layers, config.horizon,
                                config.dropout)
    if config.model is ModelKind.NARX:
        return NARXForecaster(columns, config.hidden, d if columns else 0, 0 if config.exog_only else d,
                              config.error_delays)
    if config.model is ModelKind.TDNN:
        return TDNNForecaster(columns, config.hidden, d)
    return RecurrentAR(cell[config.model], columns, config.hidden, config.layers, config.dropout)


class Windows:
    """Training windows of z (T,) and u (T, C) as a loader of :func:`rnnkit.train.fit`.
    One-step: inputs z(t-1), targets z(t) over W steps. Direct: W steps of history, then h
    targets."""

    def __init__(self, z: np.ndarray, u: np.ndarray, W: int, horizon: int, direct: bool, batch_size: int,
                 seed: int):
        z, u = torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(u, dtype=torch.float32)
        span = W + (horizon if direct else 1)
        starts = range(len(z) - span + 1)
        if direct:
            self.inputs = torch.stack([z[s:s + W] for s in starts])  # (N, W)
            self.u = torch.stack([u[s:s + W] for s in starts])  # (N, W, C)
            self.targets = torch.stack([z[s + W:s + W + horizon] for s in starts])  # (N, h)
        else:
            self.inputs = torch.stack([z[s:s + W] for s in starts])  # z(t-1)
            self.u = torch.stack([u[s + 1:s + W + 1] for s in starts])  # u(t)
            self.targets = torch.stack([z[s + 1:s + W + 1] for s in starts])  # z(t)
        self.batch_size, self.seed = batch_size, seed

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)

    def epoch(self, epoch: int) -> list[list[int]]:
        order = torch.randperm(len(self.inputs), generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        return [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]

    def batch(self, key: list[int]) -> Batch:
        x = self.inputs[key]
        return Batch(x, torch.full((len(key),), x.shape[1]), self.targets[key], extra={"u": self.u[key]},
                     extra_rows=("u",))


def objective_for(burn: int):
    def objective(model: nn.Module, batch: Batch, state) -> StepOutput:
        """Gaussian NLL summed over the scored steps (a one-step model's first ``burn`` are
        its delay lines filling up) and over the ensemble's members; the count is the steps."""
        members = (model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model).members
        loss, count = 0.0, 0
        for member in members:
            mean, log_sigma = member(batch.inputs, batch.extra["u"])
            skip = 0 if mean.shape[1] != batch.inputs.shape[1] else burn  # direct: every horizon step
            loss = loss + gaussian_nll(mean[:, skip:], log_sigma[:, skip:], batch.targets[:, skip:])
            count = mean[:, skip:].numel()
        return StepOutput(loss, count, None)
    return objective


class KeepBest(Callback):
    """Keep the weights of the epoch with the lowest ``metric`` (in memory) and put them back at the end."""

    def __init__(self, model: nn.Module, metric: str):
        self.model, self.metric, self.best, self.weights = model, metric, float("inf"), None

    def on_epoch_end(self, fit_state: FitState) -> None:
        value = fit_state.metrics.get(self.metric, float("inf"))
        if value < self.best:
            self.best, self.weights = value, copy.deepcopy(self.model.state_dict())

    def on_end(self, fit_state: FitState) -> None:
        if self.weights is not None:
            self.model.load_state_dict(self.weights)


class NeuralForecaster:
    """A neural forecaster of one series: ``fit`` on a history, then ``forecast`` after it
    (or after a longer history of the same series, keeping the fitted scale)."""

    def __init__(self, config: ForecastConfig, season: int):
        if season > 1 and 2 * config.harmonics > season:
            raise SettingError("harmonics", f"{config.harmonics} pairs of a season of {season} steps repeat one "
                                            f"another: at most {season // 2}")
        self.config, self.season = config, season
        self.transform = Transform(config.transform, season)
        self.exog = ExogTransform()
        self.model: nn.Module | None = None
        self.window = 0  # W, as trained
        self.report: dict = {}

    def _inputs(self, u: np.ndarray, start: int) -> np.ndarray:
        """(N, C) consecutive rows from clock ``start`` -> (N, C + 2K) the network's inputs
        (K = 0 for a season of 1)."""
        x, K = self.exog.apply(u), phase_harmonics(self.config, self.season)
        return np.concatenate([x, season_features(start + np.arange(len(u)), self.season, K)], 1) if K else x

    def prepare(self, y: np.ndarray, u: np.ndarray | None, start: int = 0) -> tuple[Windows, Callable, Callable]:
        """For a history y (T,) with u (T, C), its first step at clock ``start``: the model
        (built, seeded), the training windows of all but the last horizon steps, the
        objective, and the held-out closed-loop MAE."""
        c, h = self.config, self.config.horizon
        u = np.zeros((len(y), 0)) if u is None else np.asarray(u, dtype=np.float64)
        if len(y) <= h + self.transform.lost + 2:
            raise ValueError(f"the series is too short: {len(y)} steps for a horizon of {h} held out and "
                             f"{self.transform.lost} taken by differencing")
        train_y = y[:-h]
        self.transform.fit(train_y)  # the training part's scale, kept for every later forecast
        self.exog.fit(u[:len(train_y)], c.exog_transforms)
        C, u = u.shape[1], self._inputs(u, start)
        z = self.transform.apply(train_y)
        direct = c.strategy is Strategy.DIRECT
        W = self.window = window_length(c, self.season, len(z) - (h if direct else 1))
        self.model = build_model(c, C, self.season)
        windows = Windows(z, u[self.transform.lost:len(train_y)], W, h, direct, c.batch_size, c.seed)
        burn = 0 if isinstance(self.model.members[0], RecurrentAR) else taps(c, self.season)

        def held_out(model: nn.Module) -> dict[str, float]:
            f = self._forecast(model, train_y, u[:len(train_y)], u[len(train_y):len(y)], paths=0)
            return {"mae": float(np.mean(np.abs(f.mean - y[-h:])))}

        return windows, objective_for(min(burn, W - 1)), held_out

    def fit(self, y: np.ndarray, u: np.ndarray | None, max_minutes: float | None = None,
            start: int = 0) -> NeuralForecaster:
        """Train on the history y (T,) with u (T, C), first step at clock ``start``, in memory:
        the last horizon steps held out, the best epoch's weights kept."""
        from rnnkit.callbacks import EarlyStopping, Evaluate
        c = self.config
        windows, objective, held_out = self.prepare(y, u, start)
        keep = KeepBest(self.model, "mae")
        state = fit(self.model, objective, windows, build_optimizer(self.model, OptimizerConfig(lr=c.lr)),
                    FitConfig(epochs=c.epochs, max_minutes=max_minutes, clip_norm=5.0),
                    [Evaluate(self.model, held_out), EarlyStopping("mae", c.patience), keep])
        self.report = {"epochs": state.epoch, "held_out_mae": keep.best, "window": self.window,
                       "windows": len(windows.inputs)}
        return self

    def header(self) -> dict:
        """What rebuilds the forecaster from a model directory (with its weights)."""
        return {"forecast": self.config.to_dict(), "season": self.season, "window": self.window,
                "scale": [self.transform.mean, self.transform.std], "exog_transforms": self.exog.state()}

    @classmethod
    def from_header(cls, header: dict, exog: int) -> NeuralForecaster:
        f = cls(ForecastConfig(**header["forecast"]), header["season"])
        f.window = header["window"]
        f.transform.mean, f.transform.std = header["scale"]
        if "exog_transforms" not in header and exog:
            raise ValueError("the model directory is from an older rnnkit, which read exogenous columns untransformed: "
                             "train it again")
        f.exog = ExogTransform.from_state(header.get("exog_transforms", []))
        f.model = build_model(f.config, exog, f.season)
        return f

    def forecast(self, y: np.ndarray, u_hist: np.ndarray | None, u_future: np.ndarray | None,
                 start: int = 0) -> Forecast:
        """The next horizon values after the history y (T,) (u_hist (T, C), u_future (h, C)),
        its first step at clock ``start``."""
        if self.model is None:
            raise ValueError("fit the forecaster first")
        y = np.asarray(y, dtype=np.float64)
        h, lost = self.config.horizon, self.transform.lost
        C = 0 if u_hist is None else u_hist.shape[1]
        u_hist = np.zeros((len(y), 0)) if u_hist is None else np.asarray(u_hist, dtype=np.float64)
        recursive = self.config.strategy is Strategy.RECURSIVE
        if u_future is None and C and recursive:
            raise ValueError(f"the model reads {C} exogenous columns at every step: give their next {h} values")
        u_future = np.zeros((h, C)) if u_future is None else np.asarray(u_future, dtype=np.float64)
        if len(y) < lost + 2:
            raise ValueError(f"a history of {len(y)} steps is too short to forecast from ({lost} go to differencing)")
        if self.config.transform.log and (y <= 0).any():
            raise ValueError("the model forecasts the log: the history must be positive")
        if len(u_hist) != len(y) or u_future.shape[0] < h:
            raise ValueError(f"the exogenous columns need a row per history step ({len(y)}) and per forecast step "
                             f"({h}); got {len(u_hist)} and {u_future.shape[0]}")
        if not recursive:  # the window's columns only
            u_hist, u_future = self._inputs(u_hist, start), np.zeros((h, input_columns(self.config, C, self.season)))
        else:
            rows = self._inputs(np.concatenate([u_hist, u_future[:h]]), start)
            u_hist, u_future = rows[:len(y)], rows[len(y):]
        return self._forecast(self.model, y, u_hist, u_future, self.config.paths)

    @torch.no_grad()
    def _forecast(self, model: nn.Module, y: np.ndarray, u_hist: np.ndarray, u_future: np.ndarray,
                  paths: int) -> Forecast:
        c, h = self.config, self.config.horizon
        model.eval()
        transform = copy.copy(self.transform)
        transform.tail = (np.log(y) if c.transform.log else np.asarray(y, dtype=np.float64)).copy()
        device = next(model.parameters()).device
        tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)[None]  # noqa: E731
        z = tensor(transform.apply(y))  # (1, T')
        uh = tensor(u_hist[transform.lost:])  # (1, T', C)
        uf = tensor(u_future[:h])  # (1, h, C)
        generator = torch.Generator(device=device).manual_seed(c.seed)
        share = -(-paths // len(model.members)) if paths else 0  # each member's paths
        means, draws = [], []
        for member in model.members:
            if c.strategy is Strategy.DIRECT:
                mean, log_sigma = member(z[:, -self.window:], uh[:, -self.window:])  # (1, h)
                means.append(mean[0])
                if share:
                    draws.append(mean + log_sigma.exp() * torch.randn((share, h), generator=generator, device=device))
                continue
            means.append(iterate(member, z[:, :-1], uh[:, 1:], uf, z[:, -1], h)[0])  # u(t) with the step to z(t)
            if share:
                draws.append(iterate(member, z[:, :-1], uh[:, 1:], uf, z[:, -1], h, paths=share,
                                     generator=generator)[0])  # (share, h)
        center = transform.invert(torch.stack(means).mean(0).cpu().numpy())
        if not paths:
            return Forecast(center, center, center)
        return self._interval(center, transform.invert(torch.cat(draws)[:paths].cpu().numpy()))

    def _interval(self, center: np.ndarray, draws: np.ndarray) -> Forecast:
        a = (1 - self.config.level) / 2
        return Forecast(center, np.quantile(draws, a, axis=0), np.quantile(draws, 1 - a, axis=0))



@dataclass(frozen=True)
class ForecastData:
    """The series a forecaster trains on."""

    train: Path
    column: str | None = None  # the target (default: the first column after the date)
    exog: tuple[str, ...] = ()  # exogenous columns
    season: int | None = None  # default: the frequency's
    date_column: str = "date"


def read(data: ForecastData) -> SeriesData:
    return read_series(data.train, data.column, list(data.exog), data.date_column, data.season)


def training_job(data: ForecastData, config: ForecastConfig, resumed: Checkpoint | None = None) -> TrainingJob:
    """A forecaster's job on the engine: the windows of the series but its last horizon
    steps, the Gaussian NLL, and the held-out closed-loop MAE as the dev metric."""
    series = read(data)
    forecaster = NeuralForecaster(config, series.season)
    windows, objective, held_out = forecaster.prepare(series.target, series.exog, int(series.clock[0]))
    target, exog = series.names
    header = {"task": "forecast", **forecaster.header(), "target": target, "exog": exog,
              "frequency": series.frequency, "date_column": data.date_column, "last_date": series.dates[-1]}
    notes = [*series.notes, f"{len(series.target)} {series.frequency} steps of {target} (season {series.season}); "
             f"{len(windows.inputs)} training windows of {forecaster.window}; the last {config.horizon} held out; "
             f"{config.model.value}, {sum(p.numel() for p in forecaster.model.parameters()):,} parameters",
             f"transforms: {describe(config.transform)}"]
    notes += [f"exogenous {name}: {c.describe()}" for name, c in zip(exog, forecaster.exog.columns)]
    if phase_harmonics(config, series.season):
        notes.append(f"the season's phase as inputs: {config.harmonics} sin and cos pairs")
    return TrainingJob(forecaster.model, objective, windows, len(windows), header, evaluate=held_out, metric="mae",
                       minimize=True, notes=notes)


def load_forecaster(directory: Path) -> tuple[NeuralForecaster, Checkpoint]:
    """A trained forecaster's model directory (or its run's --out)."""
    ck = read_config(directory)
    if ck.config.get("task") != "forecast":
        raise ValueError(f"{ck.path} is not a forecaster (task {ck.config.get('task')!r})")
    forecaster = NeuralForecaster.from_header(ck.config, len(ck.config["exog"]))
    load_weights(ck.path, forecaster.model)
    return forecaster, ck
