"""What every command shares: the common flags and --config FILE.toml, the process set-up
(threads, allocator, process group, seed), the torchrun re-launch, the start of a run
(settings checked, ``--out`` claimed), Ctrl-C, the report at the end, and printing
metrics. A `TASK train` command is: flags -> configs (checked) -> :func:`start_run` ->
the task's job -> :func:`run_job`."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rnnkit.callbacks import best_epoch
from rnnkit.checkpoint import latest_checkpoint
from rnnkit.commands.process import keep_freed_memory, set_threads
from rnnkit.commands.rundir import LATEST, claim
from rnnkit.commands.threads import AdaptiveThreads
from rnnkit.distributed import World, device_for, init_world
from rnnkit.optim import Method, OptimizerConfig, Schedule, ScheduleConfig
from rnnkit.runner import RunConfig, TrainingJob, run_training
from rnnkit.settings import COUNT, FRACTION, SettingError, rule
from rnnkit.train import Callback, FitConfig, FitState, NoiseDraw, Precision, StepRecord, Stop

AUTO = "auto"  # --threads auto: each training batch on 1 thread or all, whichever is faster now
DEFAULT_LR = 1e-3  # --lr when neither the flag nor the task sets one
PATIENCE_UPDATES = 250  # the default patience covers this many updates...
MIN_PATIENCE = 3  # ...and at least this many epochs


def thread_count(text: str) -> int | str:
    """--threads: a count of at least 1, or "auto"."""
    if text == AUTO:
        return AUTO
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a count >= 1 or 'auto', not {text!r}")
    return n


def common_parent() -> argparse.ArgumentParser:
    """Flags every train command takes. A --config TOML file may set any of them
    (same names, dashes or underscores); flags given on the command line win."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common")
    g.add_argument("--out", type=Path, required=True, help="directory for checkpoints, logs and the model")
    g.add_argument("--config", type=Path, help="TOML file of flag values (same names; flags given here win)")
    g.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start again")
    g.add_argument("--seed", type=rule(RunConfig, "seed"), default=0, help="seeds weights, dropout, data order")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--threads", type=thread_count, default=None,
                   help="torch threads: a count (default: every core), or auto: each batch on 1 thread or all, "
                        "whichever is faster at the moment (runs then no longer repeat bit for bit)")
    g.add_argument("--epochs", type=rule(FitConfig, "epochs"), default=200,
                   help="the most epochs; training stops earlier when the dev metric stops improving (--patience)")
    g.add_argument("--max-minutes", type=rule(FitConfig, "max_minutes"), default=None,
                   help="stop after training this long in this run, with a checkpoint to --resume from (each "
                        "resumed run has the budget anew)")
    g.add_argument("--resume", nargs="?", const=LATEST, default=None, metavar="CHECKPOINT",
                   help="continue the run in --out from its newest intact checkpoint, or from CHECKPOINT; the "
                        "model's settings and vocabularies come from the checkpoint")
    g.add_argument("--nproc", type=COUNT, default=1, help="data-parallel processes on this machine")
    g.add_argument("--checkpoint-every", type=rule(RunConfig, "checkpoint_every"), default=0,
                   help="also checkpoint every N updates (0: at epoch ends only)")
    g.add_argument("--log-every", type=rule(RunConfig, "log_every"), default=100,
                   help="a progress line every N updates")
    g.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    g.add_argument("--patience", type=rule(RunConfig, "patience"), default=None,
                   help="epochs without dev improvement before stopping (default: enough epochs for "
                        f"{PATIENCE_UPDATES} updates, or the task's own count (seq2seq's is larger), at least "
                        f"{MIN_PATIENCE}); 0: never stop early")
    g.add_argument("--holdout", type=FRACTION, default=0.1,
                   help="without --dev, this fraction of the training data is held out as dev data (0: none)")
    g.add_argument("--optimizer", choices=[m.value for m in Method], default="adam", help="the update rule")
    g.add_argument("--lr", type=rule(OptimizerConfig, "lr"), default=None,
                   help=f"learning rate (default: the task's, else {DEFAULT_LR})")
    g.add_argument("--momentum", type=rule(OptimizerConfig, "momentum"), default=0.0, help="sgd and rmsprop only")
    g.add_argument("--weight-decay", type=rule(OptimizerConfig, "weight_decay"), default=0.0,
                   help="L2 penalty (adamw: decoupled)")
    g.add_argument("--sparse-embeddings", action="store_true", help="update only the rows a batch used")
    g.add_argument("--schedule", choices=[s.value for s in Schedule], default="constant",
                   help="plateau: times DECAY-FACTOR when dev stops improving; decay: every epoch")
    g.add_argument("--decay-factor", type=rule(ScheduleConfig, "factor"), default=0.5,
                   help="the learning rate's multiplier")
    g.add_argument("--decay-start", type=rule(ScheduleConfig, "start_epoch"), default=1,
                   help="first epoch after which decay applies")
    g.add_argument("--clip-norm", type=rule(FitConfig, "clip_norm"), default=None,
                   help="rescale gradients whose global L2 norm exceeds this")
    g.add_argument("--clip-value", type=rule(FitConfig, "clip_value"), default=None,
                   help="clamp every gradient element to [-V, V]")
    g.add_argument("--weight-noise", type=rule(FitConfig, "weight_noise"), default=0.0,
                   help="std of Gaussian weight noise added to the weight matrices")
    g.add_argument("--weight-noise-per", choices=[n.value for n in NoiseDraw], default="update",
                   help="a noise draw per update, or per training sequence as Graves 2013 (a sequence at a time)")
    g.add_argument("--bptt", type=rule(FitConfig, "bptt"), default=None,
                   help="truncated BPTT: an update every N steps, the state carried detached")
    g.add_argument("--precision", choices=[p.value for p in Precision], default="float32",
                   help="bfloat16: matrix products in bfloat16 (autocast); weights and updates stay float32")
    return p


def default_patience(batches_per_epoch: int, updates: int | None = None) -> int:
    """Epochs without dev improvement before stopping: enough for ``updates`` updates (None:
    PATIENCE_UPDATES), so that a small data set (few updates per epoch) is not stopped on
    the noise of a few."""
    return max(MIN_PATIENCE, -(-(updates or PATIENCE_UPDATES) // max(batches_per_epoch, 1)))


def eval_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    return p


def config_path(argv: list[str]) -> Path | None:
    """The file named by ``--config FILE`` or ``--config=FILE``."""
    for i, a in enumerate(argv):
        if a == "--config":
            return Path(argv[i + 1]) if i + 1 < len(argv) else Path("")
        if a.startswith("--config="):
            return Path(a.split("=", 1)[1])
    return None


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Make the values of --config FILE.toml the parser's defaults, checked as the flags' values
    are; returns the settings the file gives."""
    path = config_path(argv)
    if path is None:
        return set()
    if not str(path):
        parser.error("--config needs a file")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        parser.error(f"--config: no such file {path}")
    except tomllib.TOMLDecodeError as err:
        parser.error(f"--config {path}: {err}")
    actions = {a.dest: a for a in parser._actions}
    defaults = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in actions or dest in ("config", "help"):
            parser.error(f"--config {path}: unknown setting {key!r}")
        action = actions[dest]
        switch = action.nargs == 0  # a flag without a value: true or false
        if switch != isinstance(value, bool) or isinstance(value, list | dict):
            parser.error(f"--config {path}: {key} must be {'true or false' if switch else 'a single value'}, "
                         f"not {value!r}")
        if action.type is not None:
            try:
                value = action.type(str(value))
            except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
                parser.error(f"--config {path}: {key}: {err}")
        if action.choices is not None and value not in action.choices:
            parser.error(f"--config {path}: {key} must be one of {', '.join(map(str, action.choices))}; "
                         f"got {value!r}")
        defaults[dest] = value
    parser.set_defaults(**defaults)
    for action in parser._actions:
        if action.dest in defaults:
            action.required = False
    return set(defaults)


def seed_everything(seed: int) -> None:
    """The global generators that model building, dropout and data order draw from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(args: argparse.Namespace) -> World:
    """The process's threads and allocator, the process group, the seed; returns this process's world."""
    set_threads(args.threads if isinstance(args.threads, int) else None)
    keep_freed_memory()
    world = init_world(args.device)
    args.device = device_for(world, args.device)
    seed_everything(args.seed)
    return world


def setup_inference(args: argparse.Namespace) -> None:
    """eval, predict and generate: the thread count only (auto is every core)."""
    set_threads(args.threads if isinstance(args.threads, int) else None)


def maybe_launch(args: argparse.Namespace, argv: list[str]) -> bool:
    """With --nproc N > 1 outside torchrun, re-run this command line under torchrun in N
    local processes and return True."""
    if args.nproc <= 1 or "WORLD_SIZE" in os.environ:
        return False
    rest, skip = [], False
    for a in argv:  # torchrun's own parser would take --nproc for an abbreviation of --nproc-per-node
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    from torch.distributed.run import main as torchrun
    torchrun(["--standalone", f"--nproc-per-node={args.nproc}", "-m", "rnnkit.cli", *rest])
    return True


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run's configs from the common flags (each checks its settings)."""
    fit = FitConfig(epochs=args.epochs, max_minutes=args.max_minutes, bptt=args.bptt, clip_norm=args.clip_norm,
                    clip_value=args.clip_value, weight_noise=args.weight_noise,
                    weight_noise_per=NoiseDraw(args.weight_noise_per), device=args.device,
                    precision=Precision(args.precision))
    opt = OptimizerConfig(method=Method(args.optimizer), lr=DEFAULT_LR if args.lr is None else args.lr,
                          momentum=args.momentum,
                          weight_decay=args.weight_decay, sparse_embeddings=args.sparse_embeddings)
    schedule = ScheduleConfig(kind=Schedule(args.schedule), factor=args.decay_factor, start_epoch=args.decay_start)
    resumed = getattr(args, "resumed", None)
    return RunConfig(out=args.out, seed=args.seed, resume=resumed.path if resumed else None,
                     checkpoint_every=args.checkpoint_every, log_every=args.log_every, patience=args.patience,
                     tensorboard=args.tensorboard, fit=fit, optimizer=opt, schedule=schedule)


def start_run(args: argparse.Namespace) -> RunConfig:
    """Before any work: the common settings checked, and ``--out`` ready for a new run
    (:func:`rnnkit.commands.rundir.claim`; rank 0 only) unless the run is resumed."""
    run = run_config(args)
    if getattr(args, "resumed", None) is None and os.environ.get("RANK", "0") == "0":
        claim(args.out, args.overwrite)
    return run


def run_job(args: argparse.Namespace, job: TrainingJob, world: World, run: RunConfig | None = None) -> int:
    """Run ``job`` with the common flags: the notes of the job and the progress on stderr
    (rank 0), early stopping on the dev metric with the default patience, --threads auto,
    Ctrl-C (or SIGTERM) saving a checkpoint; then what was saved, and how the run ended.
    Returns the exit status: 130 after an interrupt, else 0."""
    run = run or run_config(args)
    job.config["settings"] = getattr(args, "settings", {})  # what --resume rebuilds the command from
    if job.metric is None and run.schedule.kind is Schedule.PLATEAU:
        raise SettingError("schedule", "plateau needs dev data: give --dev, or a --holdout above 0")
    if job.metric is None and (run.patience or 0) > 0:
        raise SettingError("patience", "needs dev data: give --dev, or a --holdout above 0")
    if run.patience is None and job.metric is not None:
        run = replace(run, patience=default_patience(job.batches_per_epoch, job.patience_updates))
    elif run.patience == 0:
        run = replace(run, patience=None)
    say = world.is_main
    if say:
        for note in job.notes:
            print(note, file=sys.stderr)
        if run.resume is not None:
            print(f"resuming from {run.resume}", file=sys.stderr)
        elif job.metric is not None and run.patience is not None:
            print(f"training until the dev {job.metric} has not improved for {run.patience} epochs "
                  f"(at most {run.fit.epochs})", file=sys.stderr)
    threads = [AdaptiveThreads()] if args.threads == AUTO and world.size == 1 and args.device == "cpu" else []
    with Interrupt() as interrupt:
        fit = run_training(run, job, world, [interrupt, *threads], progress=sys.stderr if say else None)
    if say:
        report(run, job, fit)
    return 130 if fit.stopped is Stop.REQUEST else 0


def report(run: RunConfig, job: TrainingJob, fit: FitState) -> None:
    """Where the model is and its dev scores; after an early end, how to go on."""
    best = best_epoch(fit.history, job.metric, job.minimize) if job.metric else None
    scores = fit.history[best] if best is not None else {}
    epoch = f"; its dev scores (epoch {scores['epoch']}):" if scores else ""
    print(f"model saved to {run.out / 'model'}{epoch}", file=sys.stderr)
    if scores:
        print_metrics(scores, as_json=False)
    where = f"epoch {fit.epoch + 1}, batch {fit.batch + 1}"
    checkpoint = latest_checkpoint(run.out / "checkpoints")
    if fit.stopped is Stop.REQUEST:
        print(f"rnnkit: interrupted in {where}; checkpoint {checkpoint}; continue with the same command "
              "and --resume", file=sys.stderr)
    elif fit.stopped is Stop.BUDGET:
        print(f"rnnkit: stopped after --max-minutes {run.fit.max_minutes:g} of training in this run ({where}, "
              f"{fit.step} updates in all); checkpoint {checkpoint}; continue with --resume (and a "
              "--max-minutes for that run, if it should have one)", file=sys.stderr)


class Interrupt(Callback):
    """The first Ctrl-C (SIGINT) or SIGTERM asks the run to stop after the current update, so
    that the last checkpoint is taken there; a second Ctrl-C quits at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.asked, self.previous = False, {}

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        print("\nrnnkit: stopping after this update to save a checkpoint (Ctrl-C again: quit at once)",
              file=sys.stderr, flush=True)

    def on_step(self, fit: FitState, record: StepRecord) -> None:
        if self.asked:
            fit.stop, fit.stopped = True, Stop.REQUEST


def print_metrics(metrics: dict[str, float], as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        for key, value in metrics.items():
            print(f"{key}: {value:.6g}")
    sys.stdout.flush()
