"""Neural forecasters of a (transformed) series z with exogenous columns u, each giving a
Gaussian over the next value:

- :class:`RecurrentAR`: an rnnkit layer (Elman, LSTM, GRU) reading [z(t-1), u(t)]; a head
  gives the mean and log standard deviation of z(t) (DeepAR's set-up, Salinas et al. 2020).
- :class:`NARXForecaster`: rnnkit's NARX layer, tapped delays of u and of the fed-back z
  (and, NARMAX, of its past errors); ``output_delays`` 0 predicts z from u alone. One
  learned standard deviation.
- :class:`TDNNForecaster`: the finite-window baseline, a TDNN over [z(t-1), u(t)].
- :class:`DirectForecaster`: an encoder over the history [z, u] whose last state gives the
  H next values' means and standard deviations at once (multi-horizon, no feedback).
- :class:`Ensemble`: several members of one kind, trained together, forecasts averaged.

The one-step models share ``forward(z_prev, u, lengths) -> (mean, log_sigma)`` over a
window (teacher forcing: the true z fed back) and ``start(z_prev, u) -> state`` and
``step(state, z_prev, u_t) -> (mean, log_sigma, state)`` for running on (closed loop: the
model's own value fed back). Forecasting is closed loop over ``step``
(:func:`iterate`), which the tests prove equal to ``forward`` on the series extended with
its own forecasts.

Dimensions: B windows or paths, T steps, C exogenous columns, H hidden, h horizon.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.feedback import NARX
from rnnkit.layers import LAYERS, CellKind
from rnnkit.tdnn import TDNN


class RecurrentAR(nn.Module):
    def __init__(self, cell: CellKind, exog: int, hidden: int, layers: int, dropout: float = 0.0):
        super().__init__()
        self.rnn = LAYERS[cell](1 + exog, hidden, layers, dropout=dropout)
        self.head = nn.Linear(hidden, 2)  # mean, log σ

    def forward(self, z_prev: Tensor, u: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """z_prev (B, T) the values before each step, u (B, T, C) -> mean, log σ (B, T)."""
        y, _ = self.rnn(_features(z_prev.unsqueeze(2), u), lengths)  # (B, T, H)
        mean, log_sigma = self.head(y).unbind(2)  # one node each way, where two indexings would be two
        return mean, log_sigma

    def start(self, z_prev: Tensor, u: Tensor) -> list[tuple[Tensor, ...]]:
        """The state after a history (B, T) (each layer's cell state)."""
        _, state = self.rnn(_features(z_prev.unsqueeze(2), u))
        parts = state if isinstance(state, tuple) else (state,)
        return [tuple(p[layer] for p in parts) for layer in range(len(self.rnn.cells))]

    def step(self, state, z_prev: Tensor, u_t: Tensor) -> tuple[Tensor, Tensor, list]:
        x = _features(z_prev.unsqueeze(1), u_t)  # (B, 1 + C)
        new = []
        for cell, s in zip(self.rnn.cells, state):
            x, s = cell(x, s)
            new.append(s)
        out = self.head(x)
        return out[:, 0], out[:, 1], new


class NARXForecaster(nn.Module):
    def __init__(self, exog: int, hidden: int, input_delays: int, output_delays: int, error_delays: int = 0):
        super().__init__()
        self.narx = NARX(exog, hidden, 1, input_delays=input_delays, output_delays=output_delays,
                         error_delays=error_delays)
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def forward(self, z_prev: Tensor, u: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Open loop: the truth fed back (z_prev shifted: the truth at t is z_prev at t + 1)."""
        truth = torch.cat([z_prev[:, 1:], z_prev[:, -1:]], 1).unsqueeze(2)  # (B, T, 1); the last is never read
        y, _ = self.narx(u, lengths, self._initial(z_prev), targets=truth)
        mean = y[..., 0]
        return mean, self.log_sigma.expand_as(mean)

    def _initial(self, z_prev: Tensor):
        """The state before step 0: the first fed-back value is z_prev[:, 0], older ones zero."""
        B = z_prev.shape[0]
        c = self.narx.cell
        state = [z_prev.new_zeros(B, c.input_delays, c.input_size), z_prev.new_zeros(B, c.output_delays, 1)]
        if c.output_delays:
            state[1][:, 0, 0] = z_prev[:, 0]
        if c.error_delays:
            state.append(z_prev.new_zeros(B, c.error_delays, 1))
        return tuple(state)

    def start(self, z_prev: Tensor, u: Tensor):
        """The flat cell state after a history (B, T): open loop over its first T - 1 steps,
        the last step's prediction made but not yet replaced by the truth (:meth:`feed`)."""
        B, T = z_prev.shape
        state = self._initial(z_prev)
        if T > 1:
            _, state = self.narx(u[:, :T - 1], None, state, targets=z_prev[:, 1:].unsqueeze(2))
        _, flat = self.narx.cell(u[:, T - 1], tuple(p.reshape(B, -1) for p in state))
        return flat

    def step(self, state, z_prev: Tensor, u_t: Tensor) -> tuple[Tensor, Tensor, tuple]:
        """``state`` already holds z_prev (fed back by the step before); one more step."""
        cell = self.narx.cell
        y, state = cell(u_t, state)
        return y[:, 0], self.log_sigma.expand(y.shape[0]), state

    def feed(self, state, value: Tensor):
        return self.narx.cell.feed(state, value.unsqueeze(1))


class TDNNForecaster(nn.Module):
    def __init__(self, exog: int, hidden: int, window: int):
        super().__init__()
        self.tdnn = TDNN(1 + exog, hidden, window)
        self.head = nn.Linear(hidden, 1)
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def forward(self, z_prev: Tensor, u: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, _ = self.tdnn(_features(z_prev.unsqueeze(2), u), lengths)
        mean = self.head(y)[..., 0]
        return mean, self.log_sigma.expand_as(mean)

    def start(self, z_prev: Tensor, u: Tensor) -> Tensor:
        _, state = self.tdnn(_features(z_prev.unsqueeze(2), u))
        return state

    def step(self, state: Tensor, z_prev: Tensor, u_t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, state = self.tdnn(_features(z_prev.unsqueeze(1), u_t).unsqueeze(1), state=state)
        mean = self.head(y[:, 0])[:, 0]
        return mean, self.log_sigma.expand_as(mean), state


class DirectForecaster(nn.Module):
    """history [z, u] (B, T, 1 + C) -> the next h values' means and log σ (B, h)."""

    def __init__(self, cell: CellKind, exog: int, hidden: int, layers: int, horizon: int, dropout: float = 0.0):
        super().__init__()
        self.horizon = horizon
        self.rnn = LAYERS[cell](1 + exog, hidden, layers, dropout=dropout)
        self.head = nn.Linear(hidden, 2 * horizon)

    def forward(self, z: Tensor, u: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, _ = self.rnn(_features(z.unsqueeze(2), u), lengths)  # (B, T, H)
        last = y[torch.arange(len(y)), (lengths - 1) if lengths is not None else -1]  # (B, H)
        out = self.head(last).view(-1, 2, self.horizon)
        return out[:, 0], out[:, 1]


class Ensemble(nn.Module):
    """Members of one kind trained side by side from different initial weights: their
    losses summed, their forecasts averaged (their sample paths pooled)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)


def _features(z: Tensor, u: Tensor) -> Tensor:
    """[z, u] along the last dimension; z itself when there are no exogenous columns."""
    return z if u.shape[-1] == 0 else torch.cat([z, u], -1)


def gaussian_nll(mean: Tensor, log_sigma: Tensor, target: Tensor) -> Tensor:
    """Σ of −log N(target; mean, σ²), elementwise over the given entries."""
    return (log_sigma + 0.5 * ((target - mean) / log_sigma.exp()) ** 2 + 0.5 * math.log(2 * math.pi)).sum()


@torch.no_grad()
def iterate(model: nn.Module, z_prev: Tensor, u_hist: Tensor, u_future: Tensor, last: Tensor, steps: int,
            paths: int = 0, generator: torch.Generator | None = None) -> Tensor:
    """Closed loop: ``steps`` values after a history, each fed back (paths 0: the means;
    else ``paths`` sample paths per series, each value drawn from its Gaussian).

    z_prev (B, T): the history's values before each step (z shifted right); u_hist (B, T, C);
    last (B,): the history's last value, fed at the first future step; u_future (B, steps, C).
    Returns (B, steps), or (B, paths, steps).
    """
    B = z_prev.shape[0]
    n = max(paths, 1)
    state = model.start(z_prev, u_hist)
    state = _repeat(state, n)
    value = last.repeat_interleave(n)  # (B·n,)
    u = u_future.repeat_interleave(n, 0)  # (B·n, steps, C)
    out = []
    for k in range(steps):
        if isinstance(model, NARXForecaster):
            state = model.feed(state, value)
        mean, log_sigma, state = model.step(state, value, u[:, k])
        noise = torch.randn(mean.shape, generator=generator, device=mean.device) if paths else None
        value = mean if not paths else mean + log_sigma.exp() * noise
        out.append(value)
    y = torch.stack(out, 1)  # (B·n, steps)
    return y.view(B, paths, steps) if paths else y


def _repeat(state, n: int):
    if isinstance(state, Tensor):
        return state.repeat_interleave(n, 0)
    if isinstance(state, list):
        return [_repeat(s, n) for s in state]
    return tuple(_repeat(s, n) for s in state)
