"""rnnkit's layers (standard, peephole and projected LSTM, GRU) against torch's nn.LSTM /
nn.GRU of equal size and a plain Python loop over nn.LSTMCell: training throughput
(forward, backward, Adam step on a random batch) and streaming latency per step at B=1."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import rnnkit
from rnnkit.kernels import Kernel

PROJ = 128  # LSTMP projection width


def layers(inp: int, hidden: int) -> dict[str, Callable[[], nn.Module]]:
    """Each implementation's layer, built fresh; all batch-first."""
    return {
        "rnnkit-lstm": lambda: rnnkit.LSTM(inp, hidden),
        "rnnkit-lstm-torch-kernel": lambda: with_kernel(rnnkit.LSTM(inp, hidden), Kernel.TORCH),
        "rnnkit-peephole": lambda: rnnkit.LSTM(inp, hidden, peephole=True),
        "rnnkit-lstmp": lambda: rnnkit.LSTM(inp, hidden, proj_size=PROJ),
        "rnnkit-gru": lambda: rnnkit.GRU(inp, hidden),
        "torch-lstm": lambda: nn.LSTM(inp, hidden, batch_first=True),
        "torch-lstmp": lambda: nn.LSTM(inp, hidden, batch_first=True, proj_size=PROJ),
        "torch-gru": lambda: nn.GRU(inp, hidden, batch_first=True),
        "torch-lstmcell-loop": lambda: CellLoop(inp, hidden),
    }


def with_kernel(layer: rnnkit.Recurrent, kernel: Kernel) -> rnnkit.Recurrent:
    layer.kernel = kernel
    return layer


def train_flop_per_token(name: str, inp: int, hidden: int) -> float:
    """Multiply-adds ×2 of the recurrence per token, ×3 for forward plus backward."""
    if name.endswith("gru"):
        fwd = 2 * 3 * hidden * (inp + hidden)
    elif "lstmp" in name:
        fwd = 2 * 4 * hidden * (inp + PROJ) + 2 * PROJ * hidden
    else:
        fwd = 2 * 4 * hidden * (inp + hidden)
    return 3 * fwd


class CellLoop(nn.Module):
    """What a PyTorch user writes for a custom cell: a Python loop over nn.LSTMCell."""

    def __init__(self, inp: int, hidden: int):
        super().__init__()
        self.cell = nn.LSTMCell(inp, hidden)

    def forward(self, x: torch.Tensor, state=None):
        outs = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)  # each (B, H)
            outs.append(state[0])
        return torch.stack(outs, dim=1), state  # (B, T, H)


class LayerTrainer:
    """One forward, backward and Adam step of a layer on a fixed random batch (B, T, I)."""

    def __init__(self, layer: nn.Module, batch: int, steps: int, inp: int):
        self.layer = layer
        self.x = torch.randn(batch, steps, inp)
        self.opt = torch.optim.Adam(layer.parameters(), fused=True)

    def step(self) -> tuple[int, float]:
        y = self.layer(self.x)[0]  # (B, T, H_out)
        loss = y.pow(2).mean()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return self.x.shape[0] * self.x.shape[1], float(loss.detach()) * self.x.shape[0] * self.x.shape[1]


def stream_step(layer: nn.Module, x: torch.Tensor, state):
    """One step of streaming inference: x (1, 1, I) and the carried state."""
    if isinstance(layer, CellLoop):
        return layer.cell(x[:, 0], state)
    if isinstance(layer, rnnkit.GRU | rnnkit.LSTM):
        return layer(x, state=state)[1]
    return layer(x, state)[1]


@torch.no_grad()
def stream_latency(make: Callable[[], nn.Module], inp: int, steps: int, repeats: int) -> list[float]:
    """Microseconds per step of streaming inference at B=1, one figure per repeat."""
    layer, x, out = make().eval(), torch.randn(1, 1, inp), []
    state = None
    for _ in range(10):
        state = stream_step(layer, x, state)
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            state = stream_step(layer, x, state)
        out.append((time.perf_counter() - start) / steps * 1e6)
    return out


def latency_table(inp: int, hidden: int, steps: int, repeats: int) -> dict[str, float]:
    """Median µs per step of each implementation, repeats interleaved."""
    makers = layers(inp, hidden)
    runs: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(repeats):
        for name, make in makers.items():
            runs[name] += stream_latency(make, inp, steps, 1)
    return {name: statistics.median(v) for name, v in runs.items()}
