"""Forecasting speed, side by side in one process: training rnnkit's recurrent forecaster
(:class:`rnnkit.tasks.forecast_models.RecurrentAR`, one member, with the task's optimizer)
against what a PyTorch user writes (``nn.LSTM`` or ``nn.GRU`` + ``nn.Linear`` giving the mean and log
standard deviation, ``torch.optim.Adam``), on the same windows of a real series, the same
Gaussian loss; windows (steps) per second; and the
time of a whole backtest table.

    python -m bench.forecast --series ~/.cache/rnnkit/series/airline.csv [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common import machine, race
from rnnkit.commands.process import keep_freed_memory
from rnnkit.layers import CellKind
from rnnkit.optim import OptimizerConfig, build_optimizer
from rnnkit.tasks.forecast import Windows
from rnnkit.tasks.forecast_data import Transform, auto_transform, read_series
from rnnkit.tasks.forecast_models import RecurrentAR, gaussian_nll

TORCH = {CellKind.LSTM: nn.LSTM, CellKind.GRU: nn.GRU}


class TorchAR(nn.Module):
    """Idiomatic PyTorch: nn.LSTM (or nn.GRU) over [z(t-1)], a linear head to the mean and log σ."""

    def __init__(self, kind: CellKind, hidden: int, layers: int):
        super().__init__()
        self.rnn = TORCH[kind](1, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, z_prev, u):
        y, _ = self.rnn(z_prev.unsqueeze(2))
        out = self.head(y)
        return out[..., 0], out[..., 1]


class Trainer:
    def __init__(self, model, batches, optimizer):
        self.model, self.batches, self.i, self.opt = model, batches, 0, optimizer

    def step(self):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        mean, log_sigma = self.model(b.inputs, b.extra["u"])
        loss = gaussian_nll(mean, log_sigma, b.targets)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return b.inputs.numel(), float(loss.detach())


def training(series: Path, kind: CellKind, hidden: int, layers: int, seconds: float, repeats: int,
             same_optimizer: bool = False) -> dict:
    """One forecaster's training steps per second against torch's; ``same_optimizer``: both
    with torch.optim.Adam, the model's share alone."""
    s = read_series(series)
    transform = Transform(auto_transform(s.target), s.season).fit(s.target)
    z = transform.apply(s.target)
    windows = Windows(z, np.zeros((len(z), 0)), min(48, len(z) - 2), 1, False, 32, 0)
    batches = [windows.batch(k) for k in windows.epoch(0)]

    def ours():
        torch.manual_seed(0)
        model = RecurrentAR(kind, 0, hidden, layers)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3) if same_optimizer else \
            build_optimizer(model, OptimizerConfig(lr=3e-3))  # as the task's fit
        return Trainer(model, batches, optimizer)

    def theirs():
        torch.manual_seed(0)
        model = TorchAR(kind, hidden, layers)
        return Trainer(model, batches, torch.optim.Adam(model.parameters(), lr=3e-3))

    results = race({"rnnkit": ours, "torch": theirs}, seconds, repeats)
    rates = {r.name: r.median for r in results}
    return {"steps_per_s": rates, "ratio": rates["rnnkit"] / rates["torch"], "cell": kind.value, "hidden": hidden,
            "layers": layers, "optimizer": "torch.optim.Adam" if same_optimizer else "rnnkit's",
            "windows_per_batch": 32, "window": windows.inputs.shape[1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--series", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as rnnkit's commands and bench.table2 do; the same for every column
    report = {"machine": machine(), "threads": args.threads, "series": str(args.series),
              "training": [training(args.series, kind, h, 1, args.seconds, args.repeats)
                           for kind, h in ((CellKind.LSTM, 32), (CellKind.LSTM, 64), (CellKind.GRU, 32))]
              + [training(args.series, CellKind.LSTM, h, 1, args.seconds, args.repeats, same_optimizer=True)
                 for h in (32, 64)]}
    from rnnkit.cli import main as cli
    start, table = time.perf_counter(), io.StringIO()
    with contextlib.redirect_stdout(table):  # the report is this script's one JSON object
        cli(["forecast", "backtest", "--data", str(args.series), "--horizon", "12", "--origins", "3", "--json",
             "--threads", str(args.threads)])
    report["backtest_seconds"] = time.perf_counter() - start
    report["backtest"] = json.loads(table.getvalue())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
