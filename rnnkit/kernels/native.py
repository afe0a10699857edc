"""torch's own fused CPU/GPU kernels (``torch.lstm`` and kin, what ``torch.nn.LSTM`` runs, cuDNN on
a GPU) for the cells they implement: Elman with tanh or relu, LSTM with or without
projection (no peepholes), GRU.

One layer at a time, both directions at once, over a packed sequence, so that
the backward direction runs within each sequence's own length and the final
state is taken at each sequence's own last step. rnnkit keeps one bias where
torch keeps two: the bias goes in ``b_ih`` and zeros in ``b_hh``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import Activation, Cell, ElmanCell, GRUCell, LSTMCell
from rnnkit.checks import Steps

State = tuple[Tensor, ...]


def supports(cell: Cell) -> bool:
    """Whether torch's fused kernels compute exactly this cell's recurrence."""
    if isinstance(cell, LSTMCell):
        return cell.weight_ch is None and cell.bias is not None
    if isinstance(cell, GRUCell):
        return cell.bias_ih is not None
    if isinstance(cell, ElmanCell):
        return cell.activation in (Activation.TANH, Activation.RELU) and cell.bias is not None
    return False


def _weights(cell: Cell) -> list[Tensor]:
    if isinstance(cell, GRUCell):
        return [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    weights = [cell.weight_ih, cell.weight_hh, cell.bias, torch.zeros_like(cell.bias)]
    if isinstance(cell, LSTMCell) and cell.weight_hr is not None:
        weights.append(cell.weight_hr)
    return weights


def _call(cell: Cell, args: tuple, hx: list[Tensor], rest: tuple) -> tuple[Tensor, list[Tensor]]:
    """The fused kernel of ``cell``'s type: (output, [h] or [h, c])."""
    if isinstance(cell, LSTMCell):
        out, h, c = torch.lstm(*args, (hx[0], hx[1]), *rest)
        return out, [h, c]
    if isinstance(cell, GRUCell):
        out, h = torch.gru(*args, hx[0], *rest)
        return out, [h]
    kernel = torch.rnn_tanh if cell.activation is Activation.TANH else torch.rnn_relu
    out, h = kernel(*args, hx[0], *rest)
    return out, [h]


def run_layer(cells: list[Cell], x: Tensor, steps: Steps,
              states: list[State]) -> tuple[Tensor, list[State]]:
    """One layer (1 or 2 directions) over x (B, T, I) with the lengths ``steps``
    (:class:`rnnkit.checks.Steps`; a full batch needs no packing).

    Returns y (B, T, D·H_out), zero past each length, and each direction's final state.
    """
    B, T = x.shape[:2]
    lengths = steps.lengths
    if steps.shortest == 0:  # torch's kernels need >= 1 step
        running = torch.nonzero(lengths > 0).squeeze(1)
        y = x.new_zeros(B, T, len(cells) * cells[0].output_size)
        if running.numel() == 0:
            return y, states
        running_states = [tuple(t[running] for t in s) for s in states]
        y_run, finals_run = run_layer(cells, x[running], steps.select(running), running_states)
        finals = [tuple(t.index_copy(0, running, f) for t, f in zip(s, fr)) for s, fr in zip(states, finals_run)]
        return y.index_copy(0, running, y_run), finals
    bidirectional = len(cells) == 2
    cell = cells[0]
    flat = [w for c in cells for w in _weights(c)]
    if lengths is None:  # a full batch: the padded tensor goes in as it is
        hx = [torch.stack([s[k] for s in states]) for k in range(len(states[0]))]  # each (D, B, n)
        y, finals = _call(cell, (x,), hx,
                          (flat, True, 1, 0.0, False, bidirectional, True))
        return y, [tuple(f[d] for f in finals) for d in range(len(cells))]
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    order = packed.sorted_indices  # packed batch position -> original sequence
    hx = [torch.stack([s[k] for s in states])[:, order] for k in range(len(states[0]))]  # each (D, B, n)
    out, finals = _call(cell, (packed.data, packed.batch_sizes), hx, (flat, True, 1, 0.0, False, bidirectional))
    restored = packed._replace(data=out)
    y, _ = pad_packed_sequence(restored, batch_first=True, total_length=T)  # (B, T, D·H_out)
    unsort = packed.unsorted_indices
    finals = [f[:, unsort] for f in finals]  # each (D, B, n), original order
    return y, [tuple(f[d] for f in finals) for d in range(len(cells))]
