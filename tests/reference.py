"""Independent references used by the tests: plain loops over one sequence at a time, the
torch.nn modules the layers are compared with, and a tiny model with an embedding table."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def loop_over_cells(layer, x: Tensor, lengths: list[int], state=None):
    """Run an rnnkit Recurrent layer the slow way: each sequence alone, each step a cell call.

    Returns y (B, T, D·H_out) and the final state in the layer's structure.
    """
    B, T, _ = x.shape
    D = layer.num_directions
    ys, finals = [], []
    for b in range(B):
        inp = x[b, :lengths[b]]  # (L_b, I)
        seq_finals = []
        for layer_index in range(layer.num_layers):
            outs = []
            for d in range(D):
                k = layer_index * D + d
                cell = layer.cells[k]
                if state is not None:
                    parts = (state,) if isinstance(state, Tensor) else state
                    s = tuple(p[k, b:b + 1] for p in parts)
                elif layer.initial_state is not None:
                    s = tuple(p[k:k + 1] for p in layer.initial_state)
                else:
                    s = cell.zero_state(1, x)
                order = range(lengths[b]) if d == 0 else reversed(range(lengths[b]))
                out = [None] * lengths[b]
                for t in order:
                    y, s = cell(inp[t:t + 1], s)
                    out[t] = y[0]
                outs.append(torch.stack(out) if out else x.new_zeros(0, cell.output_size))
                seq_finals.append(s)
            inp = torch.cat(outs, dim=1)
        ys.append(torch.cat([inp, inp.new_zeros(T - lengths[b], inp.shape[1])]))
        finals.append(seq_finals)
    y = torch.stack(ys)  # (B, T, D·H_out)
    parts = tuple(torch.stack([torch.cat([finals[b][k][j] for b in range(B)]) for k in range(len(layer.cells))])
                  for j in range(len(layer.cells[0].state_sizes)))
    return y, parts[0] if len(parts) == 1 else parts


def run_torch(module: nn.RNNBase, x: Tensor, lengths: list[int]):
    """torch.nn.RNN/LSTM/GRU (batch_first) over a padded batch, via a packed sequence."""
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, state = module(packed)
    y, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return y, state


def as_tuple(state) -> tuple[Tensor, ...]:
    return (state,) if isinstance(state, Tensor) else tuple(state)


def flatten(out) -> list[Tensor]:
    """Every tensor in a nest of tuples and lists."""
    if isinstance(out, Tensor):
        return [out]
    return [t for item in out for t in flatten(item)]


def gradcheck_module(module: nn.Module, run, *inputs: Tensor) -> bool:
    """float64 gradcheck of ``run(call, *inputs)`` w.r.t. the inputs and every parameter.

    ``call`` is the module called with the parameters under test, so that
    gradcheck perturbs them: ``run = lambda call, x: call(x, lengths)``.
    """
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]

    def f(*args):
        table = dict(zip(names, args[len(inputs):]))
        out = run(lambda *a, **k: torch.func.functional_call(module, table, a, k), *args[:len(inputs)])
        return tuple(flatten(out))

    return torch.autograd.gradcheck(f, (*inputs, *params))


TORCH_I, TORCH_H = 5, 7  # the input and hidden sizes of TORCH_MODULES
TORCH_MODULES = {  # torch.nn layers, two layers deep and bidirectional, batch first
    "lstm": lambda: nn.LSTM(TORCH_I, TORCH_H, 2, bidirectional=True, batch_first=True),
    "lstmp": lambda: nn.LSTM(TORCH_I, TORCH_H, 2, bidirectional=True, batch_first=True, proj_size=3),
    "gru": lambda: nn.GRU(TORCH_I, TORCH_H, 2, bidirectional=True, batch_first=True),
    "rnn_tanh": lambda: nn.RNN(TORCH_I, TORCH_H, 2, bidirectional=True, batch_first=True),
    "rnn_relu": lambda: nn.RNN(TORCH_I, TORCH_H, 2, bidirectional=True, batch_first=True, nonlinearity="relu"),
}


class TinyTagger(nn.Module):
    """An embedding table (sparse gradients or dense) and a linear layer; forward: a scalar loss."""

    def __init__(self, sparse, rows=10, width=3, dtype=torch.float32):
        super().__init__()
        self.embed = nn.Embedding(rows, width, sparse=sparse, dtype=dtype)
        self.out = nn.Linear(width, 2, dtype=dtype)

    def forward(self, ids):
        return self.out(self.embed(ids)).pow(2).sum()
