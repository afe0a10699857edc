"""Recurrent layers: a cell scanned over time, in both directions, stacked.

Every layer is called as ``layer(x, lengths=None, state=None) -> (y, state)``:

- ``x``: (B, T, I) batch-first input; positions past a sequence's length are
  ignored (they may hold anything finite or not).
- ``lengths``: (B,) integers in [0, T] on x's device, or None for all T.
  A sequence of length 0 gives zero outputs and keeps its initial state.
- ``y``: (B, T, D·H_out), exactly zero past each length; D = 2 when
  bidirectional, the forward direction first.
- ``state``: as in torch.nn: for RNN and GRU a tensor h (L·D, B, H); for LSTM a
  pair (h (L·D, B, H_out), c (L·D, B, H)), indexed by layer·D + direction. The
  returned state is each sequence's state after its own last step (for the
  backward direction: after its first position). Passing it back as ``state``
  continues the sequence: for unidirectional layers, a sequence run in chunks
  gives exactly the outputs and state of the whole run.

In a deep bidirectional stack every layer reads both directions of the layer
below (Graves et al. 2013, eqs. 11-12). The backward direction runs over each
sequence from its own last step, never over padding.

``layer.kernel`` (:class:`rnnkit.kernels.Kernel`) chooses the implementation:
rnnkit's C++ recurrences, torch's kernels, or the plain loop over the cell
(the specification); AUTO, the default, picks the fastest that computes the
cell. All are tested equal to the loop.
"""

from __future__ import annotations

import enum

import torch
from torch import Tensor, nn

from rnnkit.cells import Activation, Cell, ElmanCell, GRUCell, LSTMCell
from rnnkit.checks import Steps, check_input, check_sizes, check_state
from rnnkit.interop import copy_from_torch, copy_to_torch, like
from rnnkit.kernels import Kernel, fused, native
from rnnkit.scan import scan, zero_padding
from rnnkit.settings import FRACTION

LayerState = Tensor | tuple[Tensor, ...]


class Recurrent(nn.Module):
    """Base of RNN, LSTM and GRU: L layers × D directions of one cell type.

    Subclasses build the cells; this class scans them. ``cells[l * D + d]`` is
    the cell of layer l, direction d (0 forward, 1 backward).
    """

    state_names: tuple[str, ...] = ("h",)

    def __init__(self, cells: list[Cell], input_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, learn_initial_state: bool):
        super().__init__()
        check_sizes(self, num_layers=num_layers)
        FRACTION.check("dropout", dropout, type(self).__name__)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.num_directions = 2 if bidirectional else 1
        self.cells = nn.ModuleList(cells)
        self.kernel = Kernel.AUTO  # which implementation runs (all give the reference loop's results)
        self.output_size = self.num_directions * cells[0].output_size  # D·H_out
        n = len(cells)
        self.initial_state = nn.ParameterList(
            [nn.Parameter(torch.zeros(n, size)) for size in cells[0].state_sizes]
        ) if learn_initial_state else None  # each (L·D, n_k)

    def state_shapes(self, batch: int) -> list[tuple[int, int, int]]:
        """Shape of each tensor of the layer's state for ``batch`` sequences."""
        return [(len(self.cells), batch, size) for size in self.cells[0].state_sizes]

    def _cell_states(self, state: LayerState | None, x: Tensor) -> list[tuple[Tensor, ...]]:
        """The layer state, checked, as one state tuple per cell."""
        B = x.shape[0]
        if state is None:
            if self.initial_state is None:
                return [cell.zero_state(B, x) for cell in self.cells]
            parts = [p.unsqueeze(1).expand(-1, B, -1) for p in self.initial_state]  # (L·D, B, n_k)
        else:
            parts = (state,) if isinstance(state, Tensor) else tuple(state)
            parts = check_state(parts, self.state_shapes(B), self.state_names, x)
        return [tuple(p[k] for p in parts) for k in range(len(self.cells))]

    def _layer_state(self, states: list[tuple[Tensor, ...]]) -> LayerState:
        parts = tuple(torch.stack(s, dim=0) for s in zip(*states))  # each (L·D, B, n_k)
        return parts[0] if len(parts) == 1 else parts

    def forward(self, x: Tensor, lengths: Tensor | None = None,
                state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        """x: (B, T, I); lengths: (B,) or None; state as in the module docstring.

        Returns y (B, T, D·H_out), zero past each length, and the final state.
        """
        x = check_input(x, self.input_size, dtype=self.cells[0].weight_ih.dtype)
        steps = Steps.of(lengths, x)  # checked once; every path below reads these
        inp = zero_padding(x, steps.lengths)
        kernel = self.kernel_for(x)
        if kernel is Kernel.EXTENSION:  # zero initial states are made in C++
            zeros = state is None and self.initial_state is None
            y, final = fused.run_stack(list(self.cells), self.num_layers, inp, steps,
                                       None if zeros else self._cell_states(state, x), self.dropout,
                                       self.training)
            return y, final[0] if len(final) == 1 else final
        states = self._cell_states(state, x)
        D, finals = self.num_directions, []
        for layer in range(self.num_layers):
            if kernel is Kernel.TORCH:
                inp, layer_finals = native.run_layer(list(self.cells[layer * D:(layer + 1) * D]), inp, steps,
                                                     states[layer * D:(layer + 1) * D])
                finals.extend(layer_finals)
                if layer < self.num_layers - 1 and self.dropout > 0:
                    inp = nn.functional.dropout(inp, self.dropout, self.training)
                continue
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                cell = self.cells[k]
                xp = cell.project(inp)  # (B, T, G): all time steps in one product
                y, s = scan(lambda xt, st, cell=cell: cell.recur(xt[0], st), (xp,), states[k],
                            steps, cell.output_size, reverse=direction == 1)
                outputs.append(y)  # (B, T, H_out)
                finals.append(s)
            inp = outputs[0] if D == 1 else torch.cat(outputs, dim=2)  # (B, T, D·H_out)
            if layer < self.num_layers - 1 and self.dropout > 0:
                inp = nn.functional.dropout(inp, self.dropout, self.training)
        return inp, self._layer_state(finals)

    def kernel_for(self, x: Tensor) -> Kernel:
        """The implementation a call on ``x`` runs: ``self.kernel``, or AUTO's choice (raises
        when ``self.kernel`` cannot compute this cell on x)."""
        cell = self.cells[0]
        if x.shape[0] == 0 or x.shape[1] == 0:
            return Kernel.REFERENCE  # nothing to compute
        extension = fused.supports(cell, x)
        torch_kernel = native.supports(cell)
        if self.kernel is Kernel.AUTO:
            return Kernel.EXTENSION if extension else Kernel.TORCH if torch_kernel else Kernel.REFERENCE
        if self.kernel is Kernel.EXTENSION and not extension:
            raise ValueError("kernel=EXTENSION needs the compiled extension and a CPU float32/float64 input "
                             f"(available: {fused.available()}, input: {x.device.type} {x.dtype})")
        if self.kernel is Kernel.TORCH and not torch_kernel:
            raise ValueError(f"kernel=TORCH cannot compute this {type(cell).__name__} (peepholes, sigmoid "
                             "or no bias); use Kernel.AUTO")
        return self.kernel

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}, "
                f"learn_initial_state={self.initial_state is not None}")


def _check_plain(layer: Recurrent) -> None:
    if layer.initial_state is not None:
        raise ValueError("learn_initial_state=True has no torch.nn equivalent; "
                         "pass the learned state explicitly instead")


class RNN(Recurrent):
    """Elman RNN stack (see :class:`rnnkit.cells.ElmanCell`).

    Example:
        >>> rnn = RNN(3, 8, num_layers=2, bidirectional=True)
        >>> y, h = rnn(torch.randn(4, 10, 3), lengths=torch.tensor([10, 7, 3, 1]))
        >>> y.shape, h.shape
        (torch.Size([4, 10, 16]), torch.Size([4, 4, 8]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 activation: Activation = Activation.TANH, bidirectional: bool = False,
                 dropout: float = 0.0, learn_initial_state: bool = False, bias: bool = True):
        D = 2 if bidirectional else 1
        cells = [ElmanCell(input_size if layer == 0 else D * hidden_size, hidden_size,
                           activation=activation, bias=bias)
                 for layer in range(num_layers) for _ in range(D)]
        super().__init__(cells, input_size, hidden_size, num_layers, bidirectional, dropout,
                         learn_initial_state)
        self.activation = activation

    @classmethod
    def from_torch(cls, module: nn.RNN) -> RNN:
        """The equivalent layer of a torch.nn.RNN (any layers, directions, batch_first)."""
        activation = Activation.RELU if module.nonlinearity == "relu" else Activation.TANH
        layer = cls(module.input_size, module.hidden_size, module.num_layers, activation=activation,
                    bidirectional=module.bidirectional, dropout=module.dropout, bias=module.bias)
        copy_from_torch(like(layer, module), module)
        return layer

    def to_torch(self) -> nn.RNN:
        """The equivalent batch-first torch.nn.RNN (tanh or relu only)."""
        if self.activation is Activation.SIGMOID:
            raise ValueError("activation=SIGMOID has no torch.nn.RNN equivalent (tanh or relu only)")
        _check_plain(self)
        module = nn.RNN(self.input_size, self.hidden_size, self.num_layers,
                        nonlinearity=self.activation.value, bias=self.cells[0].bias is not None,
                        batch_first=True, dropout=self.dropout, bidirectional=self.bidirectional)
        return copy_to_torch(self, like(module, self))


class LSTM(Recurrent):
    """LSTM stack, with optional peepholes and projection (LSTMP); see
    :class:`rnnkit.cells.LSTMCell`. State: (h (L·D, B, H_out), c (L·D, B, H)),
    H_out = proj_size or hidden_size.

    Example:
        >>> lstm = LSTM(3, 8, num_layers=2, proj_size=4, peephole=True)
        >>> y, (h, c) = lstm(torch.randn(2, 5, 3), lengths=torch.tensor([5, 2]))
        >>> y.shape, h.shape, c.shape
        (torch.Size([2, 5, 4]), torch.Size([2, 2, 4]), torch.Size([2, 2, 8]))
    """

    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, dropout: float = 0.0, learn_initial_state: bool = False,
                 peephole: bool = False, proj_size: int = 0, bias: bool = True):
        D = 2 if bidirectional else 1
        out = proj_size or hidden_size
        cells = [LSTMCell(input_size if layer == 0 else D * out, hidden_size, proj_size=proj_size,
                          peephole=peephole, bias=bias)
                 for layer in range(num_layers) for _ in range(D)]
        super().__init__(cells, input_size, hidden_size, num_layers, bidirectional, dropout,
                         learn_initial_state)
        self.peephole, self.proj_size = peephole, proj_size

    @classmethod
    def from_torch(cls, module: nn.LSTM) -> LSTM:
        """The equivalent layer of a torch.nn.LSTM (any layers, directions, proj_size, batch_first)."""
        layer = cls(module.input_size, module.hidden_size, module.num_layers,
                    bidirectional=module.bidirectional, dropout=module.dropout,
                    proj_size=module.proj_size, bias=module.bias)
        copy_from_torch(like(layer, module), module)
        return layer

    def to_torch(self) -> nn.LSTM:
        """The equivalent batch-first torch.nn.LSTM (no peepholes, no learned initial state)."""
        if self.peephole:
            raise ValueError("peephole=True has no torch.nn.LSTM equivalent")
        _check_plain(self)
        module = nn.LSTM(self.input_size, self.hidden_size, self.num_layers,
                         bias=self.cells[0].bias is not None, batch_first=True, dropout=self.dropout,
                         bidirectional=self.bidirectional, proj_size=self.proj_size)
        return copy_to_torch(self, like(module, self))


class GRU(Recurrent):
    """GRU stack (see :class:`rnnkit.cells.GRUCell`).

    Example:
        >>> y, h = GRU(3, 8)(torch.randn(2, 5, 3))      # y: (2, 5, 8); h: (1, 2, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, dropout: float = 0.0, learn_initial_state: bool = False,
                 bias: bool = True):
        D = 2 if bidirectional else 1
        cells = [GRUCell(input_size if layer == 0 else D * hidden_size, hidden_size, bias=bias)
                 for layer in range(num_layers) for _ in range(D)]
        super().__init__(cells, input_size, hidden_size, num_layers, bidirectional, dropout,
                         learn_initial_state)

    @classmethod
    def from_torch(cls, module: nn.GRU) -> GRU:
        """The equivalent layer of a torch.nn.GRU (any layers, directions, batch_first)."""
        layer = cls(module.input_size, module.hidden_size, module.num_layers,
                    bidirectional=module.bidirectional, dropout=module.dropout, bias=module.bias)
        copy_from_torch(like(layer, module), module)
        return layer

    def to_torch(self) -> nn.GRU:
        """The equivalent batch-first torch.nn.GRU."""
        _check_plain(self)
        module = nn.GRU(self.input_size, self.hidden_size, self.num_layers,
                        bias=self.cells[0].bias_ih is not None, batch_first=True, dropout=self.dropout,
                        bidirectional=self.bidirectional)
        return copy_to_torch(self, like(module, self))


class CellKind(enum.Enum):
    """The recurrence of a layer, as the command line names it."""

    ELMAN = "elman"
    LSTM = "lstm"
    GRU = "gru"


LAYERS = {CellKind.ELMAN: RNN, CellKind.LSTM: LSTM, CellKind.GRU: GRU}  # the one name -> layer class table
