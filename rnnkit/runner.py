"""A training run, the same for every task: the optimizer and schedule, resumption, the
callbacks (evaluation, schedule, early stopping, checkpoints, logs) and the fit.

A task (:mod:`rnnkit.tasks`) turns its config and data into a :class:`TrainingJob`
(model, objective, this rank's loader, evaluation, what a model directory saves);
:func:`run_training` does the rest. It neither seeds nor prints: the command line
seeds the process before the task builds its model, and passes a stream for the
progress lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from torch import nn

from rnnkit.callbacks import Checkpointer, EarlyStopping, Evaluate, Log, ScheduleStep
from rnnkit.checkpoint import restore_training
from rnnkit.distributed import SINGLE, World, finish, unwrap, wrap
from rnnkit.optim import LRSchedule, OptimizerConfig, ScheduleConfig, build_optimizer
from rnnkit.settings import COUNT, NATURAL, check, setting
from rnnkit.train import Callback, FitConfig, FitState, Loader, Objective, fit
from rnnkit.vocab import Vocab


@dataclass(frozen=True)
class RunConfig:
    out: Path  # directory for checkpoints, logs and the trained model
    seed: int = setting(0, NATURAL)  # the weight noise's generator (the command line seeds everything else with it)
    resume: Path | None = None  # a checkpoint directory to continue from
    checkpoint_every: int = setting(0, NATURAL)  # also checkpoint every N updates (0: at epoch ends only)
    log_every: int = setting(100, COUNT)  # a log line every N updates
    patience: int | None = setting(None, NATURAL)  # early stopping: epochs without dev improvement
    tensorboard: bool = False  # also log to out/tensorboard
    fit: FitConfig = field(default_factory=FitConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        check(self)


@dataclass
class TrainingJob:
    model: nn.Module  # built after the process was seeded
    objective: Objective
    loader: Loader  # this rank's shard
    batches_per_epoch: int
    config: dict[str, Any]  # what rebuilds the model: saved as config.json
    vocabs: dict[str, Vocab] = field(default_factory=dict)
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None  # dev metrics
    metric: str | None = None  # the dev metric for early stopping, plateau schedule and best model
    minimize: bool = True
    carry_state: bool = False  # the loader's batches continue each other (a stream): carry the state across
    patience_updates: int | None = None  # the default patience covers this many updates (None: the command's)
    notes: list[str] = field(default_factory=list)  # what the command tells the user about the data
    files: dict[str, str | bytes] = field(default_factory=dict)  # other files of the model directory (name -> contents)


def run_training(run: RunConfig, job: TrainingJob, world: World = SINGLE, callbacks: Sequence[Callback] = (),
                 progress: TextIO | None = None) -> FitState:
    """Train ``job`` as ``run`` says; returns the final :class:`FitState`. ``callbacks`` run
    after the run's own; ``progress`` receives the log lines (None: none are printed)."""
    if world.is_main:
        run.out.mkdir(parents=True, exist_ok=True)
    model = wrap(job.model.to(run.fit.device), world)
    config = replace(run.fit, carry_state=run.fit.carry_state or job.carry_state)
    optimizer = build_optimizer(model, run.optimizer)
    schedule = LRSchedule(optimizer, run.schedule, minimize=job.minimize)
    state = FitState()
    state.noise.manual_seed(run.seed + 7919 * world.rank)
    if run.resume is not None:
        state = FitState.from_dict(restore_training(run.resume, unwrap(model), optimizer, schedule))
    main = world.is_main
    own: list[Callback] = []
    if job.evaluate is not None:
        own.append(Evaluate(unwrap(model), job.evaluate))
    own.append(ScheduleStep(schedule, job.metric))
    if run.patience is not None and job.metric:
        own.append(EarlyStopping(job.metric, run.patience, job.minimize))
    own.append(Checkpointer(run.out, unwrap(model), optimizer, schedule, job.config, job.vocabs,
                            run.checkpoint_every, job.metric, job.minimize, enabled=main, files=job.files))
    own.append(Log(job.batches_per_epoch, run.log_every, stream=progress, jsonl=run.out / "metrics.jsonl",
                   tensorboard=run.out / "tensorboard" if run.tensorboard else None, enabled=main))
    try:
        return fit(model, job.objective, job.loader, optimizer, config, [*own, *callbacks], state, world)
    finally:
        finish(world)
