"""The run directory (``--out``) and what a command may do with it.

``OUT`` holds one training run: ``checkpoints/``, ``model/``, ``metrics.jsonl``,
``tensorboard/``. A new run goes only where none is (``--overwrite`` deletes the old
one's files first, and nothing else). ``--resume`` continues the run there from its newest
checkpoint that loads (a damaged one is skipped, with a warning), or from the checkpoint
named (``--resume PATH``). Each checkpoint records the command's settings: on resume they
are the defaults, so the model, its vocabularies and the data's batching are the
checkpoint's; a flag that contradicts them is an error naming it, except those that may
change from one run to the next (:data:`MAY_CHANGE`: the epochs, the time budget, logging,
threads, the device, the data files), which a flag given again overrides. The time budget
(``--max-minutes``) is each run's own: a resumed run has the one its command line gives.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from rnnkit.checkpoint import Checkpoint, latest_checkpoint, read_config
from rnnkit.settings import SettingError

LATEST = "latest"  # --resume without a path
RUN_ENTRIES = ("checkpoints", "model", "metrics.jsonl", "tensorboard", ".model.tmp", ".model.old")
MAY_CHANGE = {"out", "epochs", "max_minutes", "patience", "log_every", "checkpoint_every", "tensorboard",
              "threads", "device", "train", "dev"}
PER_RUN = {"max_minutes"}  # a run's own: not taken from the run it resumes
NOT_SETTINGS = {"help", "config", "resume", "overwrite", "debug", "version", "run", "command", "action"}


def jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def settings_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The values of the command's settings, as a checkpoint records them (a rank of a
    data-parallel run records the run's process count, which its command line no longer names)."""
    settings = {a.dest: jsonable(getattr(args, a.dest)) for a in parser._actions
                if a.dest not in NOT_SETTINGS and hasattr(args, a.dest)}
    if "nproc" in settings and "WORLD_SIZE" in os.environ:
        settings["nproc"] = int(os.environ["WORLD_SIZE"])
    return settings


def given_settings(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The settings ``argv`` names on the command line."""
    options = parser._option_string_actions
    return {options[word.split("=", 1)[0]].dest for word in argv if word.split("=", 1)[0] in options}


def claim(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready for a new run: refuse one that holds a run, unless ``overwrite``
    (then the run's files go; other files stay)."""
    held = [out / name for name in RUN_ENTRIES if (out / name).exists()]
    if not held:
        return
    if not overwrite:
        raise SettingError("out", f"{out} already holds a training run; add --resume to continue it, or "
                                  "--overwrite to delete it and start again")
    for path in held:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def problem(path: Path) -> str | None:
    """What keeps checkpoint ``path`` from loading (None: every file reads)."""
    try:
        ck = read_config(path)
        if not ck.trainer:
            return "no trainer.pt (a model directory, not a checkpoint)"
        load_file(str(path / "model.safetensors"))
        torch.load(path / "trainer.pt", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read means: damaged
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return None


def find_checkpoint(out: Path, named: str, say: bool = True) -> Path:
    """The checkpoint ``--resume`` continues from: ``named``, or with ``LATEST`` the one that
    ``OUT/checkpoints/latest`` names, else (with a warning) the newest other that loads."""
    if named != LATEST:
        path = Path(named)
        trouble = problem(path) if path.is_dir() else "no such directory"
        if trouble:
            raise SettingError("resume", f"{path} cannot be resumed from: {trouble}")
        return path
    root = out / "checkpoints"
    newest = latest_checkpoint(root)
    candidates = [newest] if newest else []
    if root.is_dir():
        others = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p != newest]
        candidates += sorted(others, key=lambda p: p.stat().st_mtime, reverse=True)
    if not candidates:
        raise SettingError("resume", f"no checkpoint in {root} to resume from")
    damaged = []
    for path in candidates:
        trouble = problem(path)
        if trouble is None:
            if damaged and say:
                print(f"rnnkit: warning: {'; '.join(damaged)}; resuming from {path} instead", file=sys.stderr)
            return path
        damaged.append(f"checkpoint {path} is damaged ({trouble})")
    raise SettingError("resume", f"no checkpoint in {root} loads: {'; '.join(damaged)}")


def apply_resume(parser: argparse.ArgumentParser, argv: list[str]) -> Checkpoint | None:
    """With ``--resume`` in ``argv``: find the checkpoint and make its recorded settings the
    parser's defaults (so a resumed command needs only ``--out`` and ``--resume``)."""
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--out", type=Path)
    early.add_argument("--resume", nargs="?", const=LATEST, default=None)
    early.add_argument("--nproc", default="1")
    known, _ = early.parse_known_args(argv)
    if known.resume is None or "resume" not in {a.dest for a in parser._actions}:
        return None
    if known.out is None:
        raise SettingError("out", "--resume needs the run's --out directory")
    launching = known.nproc != "1" and "WORLD_SIZE" not in os.environ  # the torchrun children speak
    say = os.environ.get("RANK", "0") == "0" and not launching
    ck = read_config(find_checkpoint(known.out, known.resume, say))
    saved = ck.config.get("settings", {})
    actions = {a.dest: a for a in parser._actions}
    defaults = {}
    for dest, value in saved.items():
        action = actions.get(dest)
        if action is None or dest in PER_RUN:
            continue
        if isinstance(value, str) and action.type is not None:
            value = action.type(value)
        defaults[dest] = value
    parser.set_defaults(**defaults)
    for action in parser._actions:
        if action.dest in defaults:
            action.required = False
    return ck


def check_resumed(ck: Checkpoint, args: argparse.Namespace, given: set[str]) -> None:
    """A setting given for a resumed run must agree with the checkpoint's, unless it may change."""
    if args.overwrite:
        raise SettingError("overwrite", "cannot go with --resume: one continues the run in --out, the other "
                                        "deletes it")
    saved = ck.config.get("settings", {})
    for dest in sorted(given - MAY_CHANGE - NOT_SETTINGS):
        if dest in saved and jsonable(getattr(args, dest)) != saved[dest]:
            flag = "--" + dest.replace("_", "-")
            raise SettingError(dest, f"{json.dumps(jsonable(getattr(args, dest)))} contradicts the run being "
                                     f"resumed ({flag} {json.dumps(saved[dest])} in {ck.path}); drop the flag to "
                                     "continue that run, or start a new one in another --out")
