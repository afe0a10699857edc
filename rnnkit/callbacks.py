"""Callbacks of the training loop: evaluation, schedule, early stopping,
checkpoints, and logging (progress bar, plain lines, JSONL, TensorBoard).

Pass them to :func:`rnnkit.train.fit` in the order they should run at the end
of an epoch: evaluate first, then what reads the metric.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from torch import nn

from rnnkit.checkpoint import save_checkpoint, save_model_dir
from rnnkit.optim import LRSchedule
from rnnkit.train import Callback, FitState, StepRecord, Stop
from rnnkit.vocab import Vocab


class Evaluate(Callback):
    """Run ``evaluate(model) -> {metric: value}`` at each epoch's end; the results go
    to ``fit.metrics`` and, with the epoch number, to ``fit.history``."""

    def __init__(self, model: nn.Module, evaluate: Callable[[nn.Module], dict[str, float]]):
        self.model, self.evaluate = model, evaluate

    def on_epoch_end(self, fit: FitState) -> None:
        fit.metrics = dict(self.evaluate(self.model))
        fit.history.append({"epoch": fit.epoch, **fit.metrics})


class ScheduleStep(Callback):
    """Step the learning-rate schedule at each epoch's end, with the dev ``metric`` if any."""

    def __init__(self, schedule: LRSchedule, metric: str | None = None):
        self.schedule, self.metric = schedule, metric

    def on_epoch_end(self, fit: FitState) -> None:
        self.schedule.step(fit.metrics.get(self.metric) if self.metric else None)


def best_epoch(history: list[dict[str, float]], metric: str, minimize: bool) -> int | None:
    """Index in ``history`` of the best value of ``metric``. Ties (an accuracy on a small dev
    set often repeats) go to the lower dev ``loss`` where the records have one, then to the
    earlier epoch."""
    def key(i: int) -> tuple[float, float, int]:
        value, loss = history[i][metric], history[i].get("loss", 0.0)
        return (value if minimize else -value, loss if math.isfinite(loss) else math.inf, i)

    finite = [i for i, h in enumerate(history) if metric in h and math.isfinite(h[metric])]
    return min(finite, key=key) if finite else None


class EarlyStopping(Callback):
    """Stop when the dev ``metric`` has not improved for ``patience`` epochs (by
    :func:`best_epoch`'s order: a tie with a lower dev loss is an improvement).

    Its state is derived from ``fit.history``, so it resumes with the checkpoint.
    """

    def __init__(self, metric: str, patience: int, minimize: bool = True):
        self.metric, self.patience, self.minimize = metric, patience, minimize

    def on_epoch_end(self, fit: FitState) -> None:
        best = best_epoch(fit.history, self.metric, self.minimize)
        if best is not None and len(fit.history) - 1 - best >= self.patience:
            fit.stop, fit.stopped = True, Stop.EARLY


class Checkpointer(Callback):
    """Save a resumable checkpoint every ``every_steps`` updates, at each epoch's
    end and at the end; keep the best model by the dev ``metric`` (or the last
    one, without a metric) in ``out/model``, ready for eval and predict."""

    def __init__(self, out: Path, model: nn.Module, optimizer, schedule: LRSchedule | None, config: dict,
                 vocabs: dict[str, Vocab], every_steps: int = 0, metric: str | None = None,
                 minimize: bool = True, enabled: bool = True, files: dict[str, str | bytes] | None = None):
        self.out, self.model, self.optimizer, self.schedule = Path(out), model, optimizer, schedule
        self.files = files or {}  # other files of the model directory (name -> text or bytes)
        self.config, self.vocabs, self.every = config, vocabs, every_steps
        self.metric, self.minimize, self.enabled = metric, minimize, enabled
        self.last_saved: tuple[int, int, int] | None = None  # (step, epoch, batch)

    def save(self, fit: FitState) -> None:
        position = (fit.step, fit.epoch, fit.batch)
        if not self.enabled or position == self.last_saved:
            return
        trainer = {"optimizer": self.optimizer.state_dict(), "fit": fit.to_dict(),
                   "schedule": self.schedule.state_dict() if self.schedule else None}
        save_checkpoint(self.out / "checkpoints", f"step-{fit.step:09d}-e{fit.epoch}b{fit.batch}", self.model,
                        self.config, self.vocabs, trainer, files=self.files)
        self.last_saved = position

    def publish(self) -> None:
        """Replace ``out/model`` with the current weights (a new directory renamed into place)."""
        tmp, final, old = self.out / ".model.tmp", self.out / "model", self.out / ".model.old"
        shutil.rmtree(tmp, ignore_errors=True)
        save_model_dir(tmp, self.model, self.config, self.vocabs, self.files)
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def on_step(self, fit: FitState, record: StepRecord) -> None:
        if self.every and fit.step - (self.last_saved[0] if self.last_saved else 0) >= self.every:
            self.save(fit)

    def on_epoch_end(self, fit: FitState) -> None:
        self.save(fit)
        if not self.enabled:
            return
        best = best_epoch(fit.history, self.metric, self.minimize) if self.metric else None
        if self.metric is None or best == len(fit.history) - 1:
            self.publish()

    def on_end(self, fit: FitState) -> None:
        self.save(fit)
        if self.enabled and (self.metric is None or not (self.out / "model").exists()):
            self.publish()


class Log(Callback):
    """Progress on ``stream`` (None: nothing printed): a tqdm bar (tokens/s, loss, ETA) on a
    terminal, else a plain line every ``every`` updates, and a summary line per epoch;
    records to a JSONL file and to TensorBoard when asked."""

    def __init__(self, batches_per_epoch: int, every: int = 100, stream: TextIO | None = None,
                 jsonl: Path | None = None, tensorboard: Path | None = None, enabled: bool = True):
        self.stream = stream
        self.per_epoch, self.every, self.enabled = batches_per_epoch, every, enabled
        self.bar = None
        self.jsonl = open(jsonl, "a", encoding="utf-8") if jsonl and enabled else None
        self.writer = None
        if tensorboard and enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional dependency
            except ImportError:
                raise ValueError("--tensorboard needs the tensorboard package: pip install 'rnnkit[tensorboard]'") \
                    from None
            self.writer = SummaryWriter(str(tensorboard))
        self._reset()

    def _reset(self) -> None:
        self.loss_sum = self.count = self.tokens = 0
        self.t0 = time.monotonic()

    def _write(self, record: dict[str, float | int]) -> None:
        if self.jsonl:
            self.jsonl.write(json.dumps(record) + "\n")
            self.jsonl.flush()
        if self.writer:
            for k, v in record.items():
                if isinstance(v, int | float) and k not in ("step", "epoch"):
                    self.writer.add_scalar(k, v, record.get("step", 0))

    def _say(self, text: str) -> None:
        if self.stream is not None:
            print(text, file=self.stream, flush=True)

    def on_step(self, fit: FitState, record: StepRecord) -> None:
        if not self.enabled:
            return
        if record.finite:
            self.loss_sum += record.loss * record.count
            self.count += record.count
        else:
            self._say(f"skipped a non-finite update: epoch {fit.epoch + 1}, batch {fit.batch}, "
                      f"sequences {record.indices}")
        self.tokens += record.tokens
        if self.bar is None and self.stream is not None and self.stream.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=self.per_epoch, initial=fit.batch, unit="batch", file=self.stream, leave=False)
        rate = self.tokens / max(time.monotonic() - self.t0, 1e-9)
        loss = self.loss_sum / max(self.count, 1)
        if self.bar is not None:
            self.bar.n = fit.batch
            self.bar.set_postfix_str(f"loss {loss:.4f}, {rate:,.0f} tok/s", refresh=False)
            self.bar.update(0)
        if fit.step % self.every == 0 and self.count:
            if self.bar is None:
                self._say(f"epoch {fit.epoch + 1} batch {fit.batch}/{self.per_epoch} step {fit.step}: "
                          f"loss {loss:.4f}, {rate:,.0f} tokens/s")
            self._write({"step": fit.step, "epoch": fit.epoch, "loss": loss, "tokens_per_sec": rate,
                         "grad_norm": record.grad_norm})
            self._reset()

    def on_epoch_end(self, fit: FitState) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in fit.metrics.items())
        self._say(f"epoch {fit.epoch} done, step {fit.step}" + (f": {metrics}" if metrics else ""))
        self._write({"step": fit.step, "epoch": fit.epoch, **{f"dev_{k}": v for k, v in fit.metrics.items()}})

    def on_end(self, fit: FitState) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.jsonl:
            self.jsonl.close()
        if self.writer:
            self.writer.close()
