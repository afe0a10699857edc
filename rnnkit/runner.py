"""Everything a `TASK train` command shares: seeding, threads, the process
group, the optimizer and schedule, resumption, the callbacks, and the fit.

A task supplies a model, an objective, a loader (for this rank), an
evaluation function, its config and vocabularies; :func:`run_training` does
the rest, identically for every task.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.callbacks import Checkpointer, EarlyStopping, Evaluate, Log, ScheduleStep
from rnnkit.checkpoint import latest_checkpoint, restore_training
from rnnkit.distributed import SINGLE, World, finish, unwrap, wrap
from rnnkit.optim import LRSchedule, OptimizerConfig, ScheduleConfig, build_optimizer
from rnnkit.train import FitConfig, FitState, Loader, Objective, fit
from rnnkit.vocab import Vocab


@dataclass(frozen=True)
class RunConfig:
    out: Path  # directory for checkpoints, logs and the trained model
    seed: int = 0  # seeds every random choice: initialisation, data order, dropout, noise
    resume: bool = False  # continue from out/checkpoints/latest
    checkpoint_every: int = 0  # also checkpoint every N updates (0: at epoch ends only)
    log_every: int = 100  # a log line every N updates
    patience: int | None = None  # early stopping: epochs without dev improvement
    tensorboard: bool = False  # also log to out/tensorboard
    fit: FitConfig = field(default_factory=FitConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


def seed_everything(seed: int) -> None:
    """The global generators the library's training draws from (called by the command line)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainingJob:
    model: nn.Module  # built after seed_everything
    objective: Objective
    loader: Loader  # this rank's shard
    batches_per_epoch: int
    config: dict[str, Any]  # what rebuilds the model: saved as config.json
    vocabs: dict[str, Vocab] = field(default_factory=dict)
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None  # dev metrics
    metric: str | None = None  # the dev metric for early stopping, plateau schedule and best model
    minimize: bool = True


def run_training(run: RunConfig, job: TrainingJob, world: World = SINGLE) -> FitState:
    """Train ``job`` as ``run`` says; returns the final :class:`FitState`."""
    if world.is_main:
        run.out.mkdir(parents=True, exist_ok=True)
    model = wrap(job.model.to(run.fit.device), world)
    optimizer = build_optimizer(model, run.optimizer)
    schedule = LRSchedule(optimizer, run.schedule, minimize=job.minimize)
    state = FitState()
    state.noise.manual_seed(run.seed + 7919 * world.rank)
    if run.resume:
        path = latest_checkpoint(run.out / "checkpoints")
        if path is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {run.out / 'checkpoints'}")
        state = FitState.from_dict(restore_training(path, unwrap(model), optimizer, schedule))
        if world.is_main:
            print(f"resuming from {path} (epoch {state.epoch + 1}, batch {state.batch}, step {state.step})",
                  file=sys.stderr)
    main = world.is_main
    callbacks = []
    if job.evaluate is not None:
        callbacks.append(Evaluate(unwrap(model), job.evaluate))
    callbacks.append(ScheduleStep(schedule, job.metric))
    if run.patience is not None and job.metric:
        callbacks.append(EarlyStopping(job.metric, run.patience, job.minimize))
    callbacks.append(Checkpointer(run.out, unwrap(model), optimizer, schedule, job.config, job.vocabs,
                                  run.checkpoint_every, job.metric, job.minimize, enabled=main))
    callbacks.append(Log(job.batches_per_epoch, run.log_every, jsonl=run.out / "metrics.jsonl",
                         tensorboard=run.out / "tensorboard" if run.tensorboard else None, enabled=main))
    try:
        return fit(model, job.objective, job.loader, optimizer, run.fit, callbacks, state, world)
    finally:
        finish(world)
