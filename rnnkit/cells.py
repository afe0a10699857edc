"""One-step recurrent cells: the specification of every recurrence in rnnkit.

A cell computes one time step, ``(x_t, state) -> (y_t, state)``. Layers scan a
cell over time (:mod:`rnnkit.layers`); any faster path must reproduce the plain
loop over the cell, and the tests prove it.

Every cell splits its step in two so that layers can do the input half for all
time steps in one matrix product::

    cell(x_t, state) == cell.recur(cell.project(x_t), state)

Their matrix products are torch's, through :mod:`rnnkit.kernels.gemm` (which runs
large float32 ones on oneDNN's matmul). States are tuples of ``(B, *)`` tensors.
Dimensions: B batch, I input, H hidden (cell) size, P projection size, G = gates × H.
"""

from __future__ import annotations

import enum
import math

import torch
from torch import Tensor, nn

from rnnkit.checks import check_sizes
from rnnkit.kernels import gemm

State = tuple[Tensor, ...]


class Activation(enum.Enum):
    """Nonlinearity of an Elman (or Jordan, NARX, TDNN) hidden layer."""

    TANH = "tanh"
    RELU = "relu"
    SIGMOID = "sigmoid"

    def __call__(self, x: Tensor) -> Tensor:
        if self is Activation.TANH:
            return torch.tanh(x)
        if self is Activation.RELU:
            return torch.relu(x)
        return torch.sigmoid(x)


def init_uniform(module: nn.Module, hidden_size: int) -> None:
    """Every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), as torch.nn.RNN does."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


class Cell(nn.Module):
    """Base of the one-step cells.

    Subclasses set ``input_size``, ``hidden_size``, ``output_size`` (the width
    of ``y_t``) and ``state_sizes`` (the width of each state tensor), and
    implement :meth:`project` and :meth:`recur`.
    """

    input_size: int
    hidden_size: int
    output_size: int
    state_sizes: tuple[int, ...]

    def project(self, x: Tensor) -> Tensor:
        """Input half of the step: (..., I) -> (..., G). Works on any leading shape."""
        raise NotImplementedError

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        """Recurrent half of the step: xp (B, G), state -> y (B, output_size), state."""
        raise NotImplementedError

    def zero_state(self, batch: int, like: Tensor) -> State:
        """A state of zeros for ``batch`` sequences, on ``like``'s device and dtype."""
        return tuple(like.new_zeros(batch, n) for n in self.state_sizes)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One step. x: (B, I); state: tuple of (B, n) or None for zeros."""
        if state is None:
            state = self.zero_state(x.shape[0], x)
        return self.recur(self.project(x), state)


class ElmanCell(Cell):
    """Elman (simple) recurrent cell.

    h(t) = act(W_ih x(t) + W_hh h(t-1) + b),  y(t) = h(t);  state = (h,).

    Args:
        input_size: I.
        hidden_size: H.
        activation: tanh, relu or sigmoid.
        bias: whether b is used.

    Example:
        >>> cell = ElmanCell(3, 5, activation=Activation.RELU)
        >>> y, (h,) = cell(torch.randn(2, 3))          # y: (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, *,
                 activation: Activation = Activation.TANH, bias: bool = True):
        super().__init__()
        check_sizes(self, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.state_sizes = (hidden_size,)
        self.activation = activation
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))  # (H, I)
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))  # (H, H)
        self.bias = nn.Parameter(torch.empty(hidden_size)) if bias else None  # (H,)
        init_uniform(self, hidden_size)

    @property
    def project_bias(self) -> Tensor | None:
        """The bias of the input half: project(x) = x weight_ih^T + project_bias."""
        return self.bias

    def project(self, x: Tensor) -> Tensor:
        return gemm.linear(x, self.weight_ih, self.project_bias)  # (..., H)

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        (h,) = state
        h = self.activation(gemm.addmm(xp, h, self.weight_hh.t()))  # (B, H)
        return h, (h,)


class LSTMCell(Cell):
    """LSTM cell with a forget gate, optional peepholes and optional projection.

    Gates in the order i, f, g, o (as torch.nn.LSTM)::

        i = σ(W_i x + U_i r(t-1) + p_i ∘ c(t-1) + b_i)
        f = σ(W_f x + U_f r(t-1) + p_f ∘ c(t-1) + b_f)
        g = tanh(W_g x + U_g r(t-1) + b_g)
        c(t) = f ∘ c(t-1) + i ∘ g
        o = σ(W_o x + U_o r(t-1) + p_o ∘ c(t) + b_o)
        m(t) = o ∘ tanh(c(t))
        r(t) = W_hr m(t) if proj_size > 0 else m(t)

    ``peephole=True`` adds the diagonal weights p_i, p_f, p_o (Graves 2013,
    Sak et al. 2014 eqs. 1-6). ``proj_size=P > 0`` gives LSTMP (Sak et al.
    2014): the recurrent and emitted state is the projection r(t) of width P.
    Without biases, a peephole LSTMP with an n_o-way output layer has
    n_c·n_r·4 + n_i·n_c·4 + n_r·n_o + n_c·n_r + n_c·3 weights (Sak et al. 2014).

    The forget-gate bias starts at 1 (Jozefowicz et al. 2015; Keras'
    ``unit_forget_bias``); other weights ~ U(-1/sqrt(H), 1/sqrt(H)).

    State: (r, c) with r (B, P or H) and c (B, H). Output y(t) = r(t).

    Example:
        >>> cell = LSTMCell(3, 8, peephole=True, proj_size=4)
        >>> y, (r, c) = cell(torch.randn(2, 3))          # y, r: (2, 4); c: (2, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, *, proj_size: int = 0,
                 peephole: bool = False, bias: bool = True):
        super().__init__()
        check_sizes(self, input_size=input_size, hidden_size=hidden_size)
        if proj_size < 0 or proj_size >= hidden_size and proj_size != 0:
            raise ValueError(f"proj_size must be 0 or in [1, hidden_size={hidden_size}); got {proj_size}")
        H, R = hidden_size, (proj_size or hidden_size)
        self.input_size, self.hidden_size, self.output_size = input_size, H, R
        self.proj_size, self.peephole = proj_size, peephole
        self.state_sizes = (R, H)
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))  # (4H, I)
        self.weight_hh = nn.Parameter(torch.empty(4 * H, R))  # (4H, R)
        self.bias = nn.Parameter(torch.empty(4 * H)) if bias else None  # (4H,)
        self.weight_ch = nn.Parameter(torch.empty(3, H)) if peephole else None  # (3, H): p_i, p_f, p_o
        self.weight_hr = nn.Parameter(torch.empty(R, H)) if proj_size else None  # (P, H)
        init_uniform(self, H)
        if self.bias is not None:
            with torch.no_grad():
                self.bias[H:2 * H].fill_(1.0)

    @property
    def project_bias(self) -> Tensor | None:
        """The bias of the input half: project(x) = x weight_ih^T + project_bias."""
        return self.bias

    def project(self, x: Tensor) -> Tensor:
        return gemm.linear(x, self.weight_ih, self.project_bias)  # (..., 4H)

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        r, c = state  # (B, R), (B, H)
        gates = gemm.addmm(xp, r, self.weight_hh.t())  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        if self.weight_ch is not None:
            p_i, p_f, p_o = self.weight_ch
            i, f = i + p_i * c, f + p_f * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (B, H)
        if self.weight_ch is not None:
            o = o + p_o * c
        m = torch.sigmoid(o) * torch.tanh(c)  # (B, H)
        r = m if self.weight_hr is None else gemm.mm(m, self.weight_hr.t())  # (B, R)
        return r, (r, c)


class GRUCell(Cell):
    """Gated recurrent unit (Cho et al. 2014), in torch.nn.GRU's form.

    Gates in the order r, z, n::

        r = σ(W_r x + b_ir + U_r h(t-1) + b_hr)
        z = σ(W_z x + b_iz + U_z h(t-1) + b_hz)
        n = tanh(W_n x + b_in + r ∘ (U_n h(t-1) + b_hn))
        h(t) = (1 - z) ∘ n + z ∘ h(t-1)

    State: (h,) with h (B, H); output y(t) = h(t).

    Example:
        >>> y, (h,) = GRUCell(3, 5)(torch.randn(2, 3))      # y: (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True):
        super().__init__()
        check_sizes(self, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.state_sizes = (hidden_size,)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))  # (3H, I)
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))  # (3H, H)
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None  # (3H,)
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None  # (3H,)
        init_uniform(self, hidden_size)

    @property
    def project_bias(self) -> Tensor | None:
        """The bias of the input half: project(x) = x weight_ih^T + project_bias."""
        return self.bias_ih

    def project(self, x: Tensor) -> Tensor:
        return gemm.linear(x, self.weight_ih, self.project_bias)  # (..., 3H)

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        (h,) = state  # (B, H)
        hp = gemm.linear(h, self.weight_hh, self.bias_hh)  # (B, 3H)
        x_r, x_z, x_n = xp.chunk(3, dim=1)
        h_r, h_z, h_n = hp.chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (h - n)  # (1 - z) n + z h
        return h, (h,)
