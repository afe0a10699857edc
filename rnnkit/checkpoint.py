"""Checkpoints: written atomically, complete enough to resume bit for bit.

A checkpoint is a directory::

    model.safetensors   the weights
    config.json         what the model was built from (the task's config)
    vocab-NAME.json     each vocabulary
    trainer.pt          optimizer, schedule, RNG states, position in the data,
                        and any state carried between batches

It is written under a temporary name, every file flushed and fsynced, then
renamed into place; only then does the ``latest`` pointer file (itself
replaced atomically) name it. A crash at any moment leaves the previous
checkpoint and pointer intact. Weights that are not finite are never written.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from rnnkit.vocab import Vocab

POINTER = "latest"


class NonFiniteWeights(ValueError):
    """Raised instead of saving weights that hold NaN or infinity."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)


def rng_states() -> dict[str, Any]:
    """Every global random state the library's training touches."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]]}


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))


def check_finite(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteWeights(f"parameter {name} holds non-finite values; not saving")


def save_model_dir(directory: Path, model: nn.Module, config: dict, vocabs: dict[str, Vocab],
                   files: dict[str, str | bytes] | None = None) -> None:
    """Weights, config, vocabularies and any other ``files`` (name -> text or bytes, e.g. a
    language model): what eval and predict need (no fsync, no atomicity)."""
    check_finite(model)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    for name, vocab in vocabs.items():
        vocab.save(directory / f"vocab-{name}.json")
    for name, contents in (files or {}).items():
        if isinstance(contents, bytes):
            (directory / name).write_bytes(contents)
        else:
            (directory / name).write_text(contents, encoding="utf-8")


def save_checkpoint(root: Path, name: str, model: nn.Module, config: dict, vocabs: dict[str, Vocab],
                    trainer: dict[str, Any], keep: int = 2, files: dict[str, str | bytes] | None = None) -> Path:
    """Write checkpoint ``root/name`` atomically and point ``root/latest`` at it.

    ``trainer`` holds the optimizer and schedule state dicts, the position,
    and anything else the loop needs back; RNG states are added here. The
    oldest checkpoints beyond ``keep`` are removed afterwards.
    """
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / name, root / f".{name}.tmp-{os.getpid()}"
    for stale in root.glob(".*.tmp-*"):  # half-written by a run that was killed (one run writes here)
        shutil.rmtree(stale, ignore_errors=True)
    save_model_dir(tmp, model, config, vocabs, files)
    torch.save({**trainer, "rng": rng_states()}, tmp / "trainer.pt")
    for f in tmp.iterdir():
        _fsync(f)
    _fsync(tmp)
    if final.exists():  # the same step saved by a run that was killed after it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync(root)
    _write_atomic(root / POINTER, name)
    done = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime)
    for old in done[:-keep]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


class Vocabs(dict):
    """A directory's vocabularies by name; a missing one is an error naming its file."""

    def __init__(self, directory: Path, vocabs: dict[str, Vocab]):
        super().__init__(vocabs)
        self.directory = directory

    def __missing__(self, name: str) -> Vocab:
        raise FileNotFoundError(f"{self.directory / f'vocab-{name}.json'} is missing: the model directory is "
                                "incomplete")


@dataclass
class Checkpoint:
    path: Path
    config: dict
    vocabs: dict[str, Vocab]
    trainer: dict[str, Any]  # empty for a model directory


def _read(path: Path, load):
    """``load(path)``, with any failure to read or parse the file reported with its name."""
    try:
        return load(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: the directory is incomplete") from None
    except Exception as err:  # noqa: BLE001 - a damaged file, whatever the library says
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err})") from None


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / POINTER
    if not pointer.exists():
        return None
    path = root / pointer.read_text(encoding="utf-8").strip()
    return path if path.is_dir() else None


def model_directory(path: Path) -> Path:
    """A model or checkpoint directory, or a training run's --out directory (its model/)."""
    path = Path(path)
    if (path / "config.json").exists():
        return path
    if (path / "model" / "config.json").exists():
        return path / "model"
    raise FileNotFoundError(f"{path} is not a model directory (no config.json), nor a training run's "
                            f"--out (no model/)")


def read_config(directory: Path) -> Checkpoint:
    """Config, vocabularies and (if present) trainer state of a checkpoint or model directory
    (or of a training run's --out directory: its model/); ``path`` is the directory read."""
    directory = model_directory(directory)
    config = _read(directory / "config.json", lambda p: json.loads(p.read_text(encoding="utf-8")))
    vocabs = Vocabs(directory, {p.stem.removeprefix("vocab-"): _read(p, Vocab.load)
                                for p in sorted(directory.glob("vocab-*.json"))})
    trainer_file = directory / "trainer.pt"
    trainer = _read(trainer_file, lambda p: torch.load(p, weights_only=True)) if trainer_file.exists() else {}
    return Checkpoint(directory, config, vocabs, trainer)


def load_weights(directory: Path, model: nn.Module) -> None:
    """Load ``directory/model.safetensors`` into ``model`` (strict: every tensor must match)."""
    directory = model_directory(directory)
    try:  # safetensors' load_model restores tied weights (saved once) to every module sharing them
        missing, unexpected = _read(directory / "model.safetensors", lambda p: load_model(model, str(p), strict=False))
    except ValueError as err:
        lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        if not lines:
            raise
        raise ValueError(f"{directory}: the weights do not fit the model ({lines[0]})") from None
    if missing or unexpected:
        raise ValueError(f"{directory}: the weights do not fit the model "
                         f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})")


def restore_training(directory: Path, model: nn.Module, optimizer, schedule=None) -> dict[str, Any]:
    """Load a checkpoint's weights, optimizer and schedule state and the global RNG
    states; returns its saved ``fit`` record (for :meth:`rnnkit.train.FitState.from_dict`)."""
    ck = read_config(directory)
    if not ck.trainer:
        raise ValueError(f"{directory} holds a model but no training state to resume")
    load_weights(directory, model)
    optimizer.load_state_dict(ck.trainer["optimizer"])
    if schedule is not None and ck.trainer.get("schedule") is not None:
        schedule.load_state_dict(ck.trainer["schedule"])
    set_rng_states(ck.trainer["rng"])
    return ck.trainer["fit"]
