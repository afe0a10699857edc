"""Flags shared by every `TASK train` / `TASK eval` command, and --config FILE.toml."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path

import torch

from rnnkit.distributed import World, device_for, init_world, launch
from rnnkit.memory import keep_freed_memory
from rnnkit.optim import Method, OptimizerConfig, Schedule, ScheduleConfig
from rnnkit.runner import RunConfig, seed_everything
from rnnkit.threads import ThreadConfig
from rnnkit.train import FitConfig, Precision


def thread_count(text: str) -> int | None:
    """--threads: a count of at least 1, or "auto" (None): all the cores; in training each batch on
    1 thread or all of them, whichever trains faster at the moment (rnnkit.threads)."""
    if text == "auto":
        return None
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
    g.add_argument("--config", type=Path, help="TOML file of flag values")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--threads", type=thread_count, default=None,
                   help="torch intra-op threads, fixed (runs repeat bit for bit); default auto: each batch on "
                        "1 thread or all, whichever is faster at the moment")
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("--max-minutes", type=float, default=None, help="stop and checkpoint after this long")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    g.add_argument("--nproc", type=int, default=1, help="data-parallel processes on this machine")
    g.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N updates")
    g.add_argument("--log-every", type=int, default=100)
    g.add_argument("--tensorboard", action="store_true")
    g.add_argument("--patience", type=int, default=None, help="early stopping on the dev metric")
    g.add_argument("--optimizer", choices=[m.value for m in Method], default="adam")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--momentum", type=float, default=0.0)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--sparse-embeddings", action="store_true")
    g.add_argument("--schedule", choices=[s.value for s in Schedule], default="constant")
    g.add_argument("--decay-factor", type=float, default=0.5)
    g.add_argument("--decay-start", type=int, default=1, help="first epoch after which DECAY applies")
    g.add_argument("--clip-norm", type=float, default=None)
    g.add_argument("--clip-value", type=float, default=None)
    g.add_argument("--weight-noise", type=float, default=0.0, help="std of Gaussian weight noise")
    g.add_argument("--bptt", type=int, default=None, help="truncated BPTT chunk length")
    g.add_argument("--precision", choices=[p.value for p in Precision], default="float32",
                   help="bfloat16: matrix products in bfloat16 (autocast); weights and updates stay float32")
    return p


def eval_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", type=Path, required=True, help="a trained model directory (OUT/model)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=thread_count, default=None, help="torch intra-op threads (default: all)")
    return p


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Make the values of --config FILE.toml the parser's defaults."""
    if "--config" not in argv:
        return
    i = argv.index("--config")
    if i + 1 >= len(argv):
        parser.error("--config needs a file")
    path = Path(argv[i + 1])
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        parser.error(f"--config: no such file {path}")
    except tomllib.TOMLDecodeError as err:
        parser.error(f"--config {path}: {err}")
    known = {a.dest for a in parser._actions}
    defaults = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            parser.error(f"--config {path}: unknown setting {key!r}")
        defaults[dest] = Path(value) if dest == "out" else value
    parser.set_defaults(**defaults)
    for action in parser._actions:
        if action.dest in defaults:
            action.required = False


def setup(args: argparse.Namespace) -> World:
    """Threads, the allocator, the process group, the seed; returns this process's world."""
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    world = init_world(args.device)
    args.device = device_for(world, args.device)
    seed_everything(args.seed)
    return world


def maybe_launch(args: argparse.Namespace, argv: list[str]) -> bool:
    """With --nproc N > 1 outside torchrun, re-run under torchrun and return True."""
    if args.nproc <= 1 or "WORLD_SIZE" in os.environ:
        return False
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    launch(args.nproc, rest)
    return True


def run_config(args: argparse.Namespace) -> RunConfig:
    fit = FitConfig(epochs=args.epochs, max_minutes=args.max_minutes, bptt=args.bptt, clip_norm=args.clip_norm,
                    clip_value=args.clip_value, weight_noise=args.weight_noise, device=args.device,
                    precision=Precision(args.precision), threads=ThreadConfig(adaptive=args.threads is None))
    opt = OptimizerConfig(method=Method(args.optimizer), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay, sparse_embeddings=args.sparse_embeddings)
    schedule = ScheduleConfig(kind=Schedule(args.schedule), factor=args.decay_factor, start_epoch=args.decay_start)
    return RunConfig(out=args.out, seed=args.seed, resume=args.resume, checkpoint_every=args.checkpoint_every,
                     log_every=args.log_every, patience=args.patience, tensorboard=args.tensorboard,
                     fit=fit, optimizer=opt, schedule=schedule)


def print_metrics(metrics: dict[str, float], as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        for key, value in metrics.items():
            print(f"{key}: {value:.6g}")
    sys.stdout.flush()
