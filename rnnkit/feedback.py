"""Output-feedback networks: Jordan (Jordan 1986) and NARX (Lin et al. 1996).

Their recurrence is fed by past *outputs*. While training, the fed-back value
at each step is either the true target (open loop, "series-parallel", teacher
forcing), the network's own prediction (closed loop, "parallel"), or a random
mix of the two (``teacher_forcing`` = probability of the true value, drawn per
sequence and step). :meth:`forecast` runs closed loop into the future.

Call: ``layer(x, lengths=None, state=None, targets=None, teacher_forcing=None)``
with x (B, T, I) (I may be 0 for a purely autoregressive model), targets
(B, T, O); returns y (B, T, O), zero past each length, and the state after
each sequence's last step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells import Activation, Cell, State, init_uniform
from rnnkit.checks import Steps, check_input, check_sizes, check_state
from rnnkit.scan import scan, zero_padding


class JordanCell(Cell):
    """Jordan network step: the hidden layer reads the previous output.

        h(t) = act(W_ih x(t) + W_yh y(t-1) + b_h)
        y(t) = out(W_hy h(t) + b_y)

    State: (y(t-1),) of shape (B, O). ``output_activation`` None is the identity.

    Example:
        >>> y, (y_prev,) = JordanCell(3, 16, 2)(torch.randn(4, 3))     # y: (4, 2)
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *,
                 activation: Activation = Activation.TANH,
                 output_activation: Activation | None = None):
        super().__init__()
        check_sizes(self, input_size=input_size, hidden_size=hidden_size, output_size=output_size)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.state_sizes = (output_size,)
        self.activation, self.output_activation = activation, output_activation
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))  # (H, I)
        self.weight_yh = nn.Parameter(torch.empty(hidden_size, output_size))  # (H, O)
        self.bias_h = nn.Parameter(torch.empty(hidden_size))  # (H,)
        self.weight_hy = nn.Parameter(torch.empty(output_size, hidden_size))  # (O, H)
        self.bias_y = nn.Parameter(torch.empty(output_size))  # (O,)
        init_uniform(self, hidden_size)

    def project(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight_ih, self.bias_h)  # (..., H)

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        (y_prev,) = state  # (B, O)
        h = self.activation(torch.addmm(xp, y_prev, self.weight_yh.t()))  # (B, H)
        y = nn.functional.linear(h, self.weight_hy, self.bias_y)  # (B, O)
        if self.output_activation is not None:
            y = self.output_activation(y)
        return y, (y,)

    def feed(self, state: State, value: Tensor) -> State:
        """The state ``recur`` returned, with ``value`` (B, O) fed back instead of y(t)."""
        return (value,)


class NARXCell(Cell):
    """NARX step: tapped delay lines of past inputs and past outputs, and (NARMAX) of past
    prediction errors.

        h(t) = act(W_x x(t) + Σ_{l=1..L} W_l x(t-l) + Σ_{k=1..K} V_k y(t-k) + Σ_{q=1..Q} U_q e(t-q) + b_h)
        y(t) = out(W_hy h(t) + b_y)

    where y(t-k) is the fed-back value (the truth in open loop, the prediction in closed
    loop) and e(t-q) = y_true(t-q) − ŷ(t-q) the error of the prediction made then: known
    when the truth is fed back (:meth:`feed`), 0 in closed loop (a future error's
    expectation). K = 0 with Q = 0 reads the inputs only (one series from others).

    State: (x_hist (B, L·I), y_hist (B, K·O)), and e_hist (B, Q·O) when Q > 0, newest
    first; the layer shows them as (B, L, I), (B, K, O) and (B, Q, O).

    Example:
        >>> cell = NARXCell(1, 16, 1, input_delays=3, output_delays=2)
        >>> y, (xs, ys) = cell(torch.randn(4, 1))       # y: (4, 1); xs: (4, 3); ys: (4, 2)
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *,
                 input_delays: int, output_delays: int, error_delays: int = 0,
                 activation: Activation = Activation.TANH,
                 output_activation: Activation | None = None):
        super().__init__()
        check_sizes(self, hidden_size=hidden_size, output_size=output_size)  # input_size 0: no exogenous input
        if input_delays < 0 or output_delays < 0 or error_delays < 0:
            raise ValueError(f"input_delays, output_delays and error_delays must be >= 0; "
                             f"got {input_delays}, {output_delays} and {error_delays}")
        if output_delays == 0 and (error_delays or not input_size):
            raise ValueError("output_delays 0 reads the inputs only: it needs input_size > 0 and no error_delays "
                             "(an error needs the prediction fed back)")
        I, H, O = input_size, hidden_size, output_size
        self.input_size, self.hidden_size, self.output_size = I, H, O
        self.input_delays, self.output_delays, self.error_delays = input_delays, output_delays, error_delays
        self.state_sizes = (input_delays * I, output_delays * O) + ((error_delays * O,) if error_delays else ())
        self.activation, self.output_activation = activation, output_activation
        self.weight_ih = nn.Parameter(torch.empty(H, I))  # (H, I): x(t)
        self.weight_dh = nn.Parameter(torch.empty(H, input_delays * I))  # (H, L·I): x(t-1..t-L)
        self.weight_yh = nn.Parameter(torch.empty(H, output_delays * O))  # (H, K·O): y(t-1..t-K)
        self.weight_eh = nn.Parameter(torch.empty(H, error_delays * O)) if error_delays else None  # (H, Q·O)
        self.bias_h = nn.Parameter(torch.empty(H))  # (H,)
        self.weight_hy = nn.Parameter(torch.empty(O, H))  # (O, H)
        self.bias_y = nn.Parameter(torch.empty(O))  # (O,)
        init_uniform(self, H)

    def project(self, x: Tensor) -> Tensor:
        """(..., I) -> (..., H + I): W_x x + b_h, and x itself for the delay line."""
        return torch.cat([nn.functional.linear(x, self.weight_ih, self.bias_h), x], dim=-1)

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        x_hist, y_hist = state[:2]  # (B, L·I), (B, K·O)
        H, I, O = self.hidden_size, self.input_size, self.output_size
        pre, x = xp[:, :H], xp[:, H:]  # (B, H), (B, I)
        if self.output_delays:
            pre = torch.addmm(pre, y_hist, self.weight_yh.t())
        if self.input_delays:
            pre = torch.addmm(pre, x_hist, self.weight_dh.t())
        if self.error_delays:
            pre = torch.addmm(pre, state[2], self.weight_eh.t())
        h = self.activation(pre)  # (B, H)
        y = nn.functional.linear(h, self.weight_hy, self.bias_y)  # (B, O)
        if self.output_activation is not None:
            y = self.output_activation(y)
        x_hist = torch.cat([x, x_hist[:, :x_hist.shape[1] - I]], dim=1)  # (B, L·I)
        y_hist = torch.cat([y, y_hist[:, :y_hist.shape[1] - O]], dim=1)[:, :y_hist.shape[1]]  # (B, K·O)
        if not self.error_delays:
            return y, (x_hist, y_hist)
        e_hist = torch.cat([torch.zeros_like(y), state[2][:, :state[2].shape[1] - O]], dim=1)  # (B, Q·O): e(t) = 0
        return y, (x_hist, y_hist, e_hist)

    def feed(self, state: State, value: Tensor) -> State:
        """The state ``recur`` returned, with ``value`` (B, O) fed back instead of y(t) (and
        e(t) = value − y(t) as the newest error)."""
        O = self.output_size
        x_hist, y_hist = state[:2]
        fed = torch.cat([value, y_hist[:, O:]], dim=1)[:, :y_hist.shape[1]]  # (B, K·O)
        if not self.error_delays:
            return x_hist, fed
        e_hist = torch.cat([value - y_hist[:, :O], state[2][:, O:]], dim=1)  # (B, Q·O)
        return x_hist, fed, e_hist


class OutputFeedback(nn.Module):
    """Scans a Jordan or NARX cell over a padded batch (see the module docstring)."""

    def __init__(self, cell: JordanCell | NARXCell):
        super().__init__()
        self.cell = cell

    def _state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: State | Tensor | None = None, *,
                targets: Tensor | None = None, teacher_forcing: float | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, State | Tensor]:
        """x: (B, T, I); targets: (B, T, O) true outputs to feed back, or None.

        ``teacher_forcing`` is the probability of feeding back the true value at
        each step (1: open loop; 0: closed loop); it defaults to 1 when targets
        are given and must be 0 or None when they are not.
        """
        cell = self.cell
        x = check_input(x, cell.input_size, dtype=cell.weight_ih.dtype)
        steps = Steps.of(lengths, x)
        lengths = steps.lengths
        B, T = x.shape[:2]
        if state is None:
            s = cell.zero_state(B, x)
        else:
            parts = (state,) if isinstance(state, Tensor) else tuple(state)
            parts = check_state(parts, self._state_shapes(B), self.state_names, x)
            s = tuple(p.reshape(B, -1) for p in parts)
        xp = cell.project(zero_padding(x, lengths))  # (B, T, G)
        p = (1.0 if targets is not None else 0.0) if teacher_forcing is None else teacher_forcing
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1]; got {p}")
        if targets is None and p > 0:
            raise ValueError("teacher_forcing > 0 needs targets (B, T, O) to feed back")
        if p == 0:
            y, s = scan(lambda xt, st: cell.recur(xt[0], st), (xp,), s, steps, cell.output_size)
        else:
            targets = check_input(targets, cell.output_size, name="targets")
            if targets.shape[:2] != (B, T):
                raise ValueError(f"targets must have shape (B={B}, T={T}, O={cell.output_size}); "
                                 f"got {tuple(targets.shape)}")
            targets = zero_padding(targets, lengths)
            use_true = torch.rand(B, T, 1, generator=generator, device=x.device) < p  # (B, T, 1)

            def step(xt: tuple[Tensor, ...], st: State) -> tuple[Tensor, State]:
                y, st = cell.recur(xt[0], st)
                return y, cell.feed(st, torch.where(xt[2], xt[1], y))

            y, s = scan(step, (xp, targets, use_true), s, steps, cell.output_size)
        return y, self._layer_state(s, B)

    def forecast(self, state: State | Tensor, steps: int, x: Tensor | None = None) -> tuple[Tensor, State | Tensor]:
        """Run closed loop for ``steps`` steps from ``state``, feeding back predictions.

        x: (B, steps, I) future exogenous inputs; may be None when I = 0.
        Returns y (B, steps, O) and the state after the last step.
        """
        B = (state if isinstance(state, Tensor) else state[0]).shape[0]
        if x is None:
            if self.cell.input_size:
                raise ValueError(f"x (B={B}, T={steps}, I={self.cell.input_size}) is needed: "
                                 "the model reads exogenous inputs")
            ref = state if isinstance(state, Tensor) else state[0]
            x = ref.new_zeros(B, steps, 0)
        return self(x, state=state)

    def _layer_state(self, s: State, batch: int) -> State | Tensor:
        raise NotImplementedError


class Jordan(OutputFeedback):
    """Jordan network layer. State: y(t-1), a tensor (B, O).

    Example:
        >>> net = Jordan(0, 32, 1)                      # autoregressive: no exogenous input
        >>> series = torch.randn(8, 50, 1)
        >>> y, state = net(series.new_zeros(8, 50, 0), targets=series)   # open loop
        >>> future, _ = net.forecast(state, steps=10)   # (8, 10, 1), closed loop
    """

    state_names = ("y",)

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *,
                 activation: Activation = Activation.TANH,
                 output_activation: Activation | None = None):
        super().__init__(JordanCell(input_size, hidden_size, output_size, activation=activation,
                                    output_activation=output_activation))

    def _state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return [(batch, self.cell.output_size)]

    def _layer_state(self, s: State, batch: int) -> Tensor:
        return s[0]


class NARX(OutputFeedback):
    """NARX layer (NARMAX with ``error_delays`` > 0). State: (x_hist (B, L, I), y_hist (B,
    K, O)) and e_hist (B, Q, O) when Q > 0, newest first.

    Example:
        >>> net = NARX(2, 32, 1, input_delays=4, output_delays=4)
        >>> x, y_true = torch.randn(8, 50, 2), torch.randn(8, 50, 1)
        >>> y, state = net(x, targets=y_true)           # open loop (series-parallel)
        >>> future, _ = net.forecast(state, 10, x=torch.randn(8, 10, 2))
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *,
                 input_delays: int, output_delays: int, error_delays: int = 0,
                 activation: Activation = Activation.TANH,
                 output_activation: Activation | None = None):
        super().__init__(NARXCell(input_size, hidden_size, output_size, input_delays=input_delays,
                                  output_delays=output_delays, error_delays=error_delays, activation=activation,
                                  output_activation=output_activation))
        self.state_names = ("x_hist", "y_hist", "e_hist")[:len(self.cell.state_sizes)]

    def _state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        c = self.cell
        shapes = [(batch, c.input_delays, c.input_size), (batch, c.output_delays, c.output_size)]
        return shapes + ([(batch, c.error_delays, c.output_size)] if c.error_delays else [])

    def _layer_state(self, s: State, batch: int) -> tuple[Tensor, Tensor]:
        return tuple(p.view(shape) for p, shape in zip(s, self._state_shapes(batch)))
