"""rnnkit's own fused recurrences: a C++ extension (``csrc/layer.cpp`` and
``recurrent.cpp``; with ``softmax.cpp``, ``optim.cpp`` and their shared
``common.h``) for every cell of :mod:`rnnkit.cells` in any configuration: Elman
(tanh, relu, sigmoid), LSTM with peepholes and/or projection, GRU; with or
without biases.

One call per layer each way, for every direction: per direction one GEMM for
the input projections of all steps, then a recurrent GEMM per step into
preallocated buffers, the gate arithmetic fused in one loop; the backward pass
through time, and of the projections, written out by hand. The extension is
compiled on first use (``make setup`` does it once) and cached by torch (``TORCH_EXTENSIONS_DIR``); if it
cannot be built (or ``RNNKIT_NO_EXTENSION=1`` is set), :func:`available` is
False, rnnkit says so once, and layers run on torch's kernels or the reference
loop. The same extension holds the one-pass Adam updates (:mod:`rnnkit.adam`)
and the softmax row pass (:mod:`rnnkit.softmax`), which fall back likewise.

The stack runs time-major: x is transposed once, the batch is sorted by length
(longest first, as the kernel requires) once, and both are undone at the end.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from rnnkit.cells import Activation, Cell, ElmanCell, GRUCell, LSTMCell
from rnnkit.checks import Steps

State = tuple[Tensor, ...]
CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / name for name in ("layer.cpp", "recurrent.cpp", "softmax.cpp", "optim.cpp", "blocks.cpp")]
ACTIVATIONS = {Activation.TANH: 0, Activation.RELU: 1, Activation.SIGMOID: 2}
# Under bfloat16 autocast the input projections run in bfloat16 from this many rows (B·T)
# on; below it, casting the weights and inputs costs as much as the products save
LOW_PRECISION_ROWS = 512


# ATen's vector type is compiled for the instruction set torch itself dispatches to here.
CAPABILITY_FLAGS = {
    "AVX512": ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512", "-mavx512f", "-mavx512bw", "-mavx512vl",
               "-mavx512dq", "-mfma"],
    "AVX2": ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma", "-mf16c"],
}


@functools.cache
def extension():
    """The compiled module, or None (with one warning) when it cannot be built."""
    if os.environ.get("RNNKIT_NO_EXTENSION"):
        return None
    try:
        from rnnkit.kernels import jit
        capability = torch.backends.cpu.get_cpu_capability()
        # -fopenmp: at::parallel_for is inline and runs serially unless compiled with OpenMP; the
        # loader then binds the libgomp.so.1 that torch already loaded (one thread pool)
        flags = ["-O3", "-fno-math-errno", "-fopenmp"] + CAPABILITY_FLAGS.get(capability, [])
        # the name carries a digest of the flags, every source file and the header: any edit rebuilds
        sources = b"".join(path.read_bytes() for path in sorted(CSRC.iterdir()))
        digest = hashlib.sha1(" ".join(flags).encode() + sources).hexdigest()[:10]
        return jit.load(f"rnnkit_kernels_{capability.lower()}_{digest}", SOURCES, flags, ["-fopenmp"])
    except Exception as error:  # noqa: BLE001 - any build failure means: use the other paths
        warnings.warn(f"rnnkit: the fused C++ recurrences could not be built ({type(error).__name__}: "
                      f"{str(error).strip().splitlines()[-1] if str(error).strip() else ''}); "
                      "using torch's kernels and the reference loop", RuntimeWarning, stacklevel=2)
        return None


def available() -> bool:
    return extension() is not None


def supports(cell: Cell, x: Tensor) -> bool:
    """Whether the extension computes ``cell`` on ``x`` (CPU, float32/float64)."""
    return (isinstance(cell, (ElmanCell, LSTMCell, GRUCell)) and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64) and available())


def _kind(cell: Cell) -> int:
    """layer.cpp's Kind of ``cell``."""
    return 1 if isinstance(cell, LSTMCell) else 2 if isinstance(cell, GRUCell) else 0


def _direction(cell: Cell, state: State | None) -> list[Tensor]:
    """The tensors of one direction in layer.cpp's order; empty for an absent one (an
    absent initial state is zeros)."""
    empty = cell.weight_ih.new_empty(0)
    h0, c0 = (empty, empty) if state is None else (state[0], state[-1])
    if isinstance(cell, LSTMCell):
        return [cell.weight_ih, _or(cell.bias, empty), h0, c0, cell.weight_hh, _or(cell.weight_ch, empty),
                _or(cell.weight_hr, empty)]
    if isinstance(cell, GRUCell):
        return [cell.weight_ih, _or(cell.bias_ih, empty), h0, cell.weight_hh, _or(cell.bias_hh, empty)]
    return [cell.weight_ih, _or(cell.bias, empty), h0, cell.weight_hh]


def _or(t: Tensor | None, empty: Tensor) -> Tensor:
    return empty if t is None else t


class _Layer(torch.autograd.Function):
    """One layer, every direction: layer.cpp's forward and backward, one call each."""

    @staticmethod
    def forward(ctx, kind, activation, lengths, low, x, *params):
        y, finals, saved = extension().layer_forward(kind, x, list(params), activation, lengths, low)
        ctx.save_for_backward(x, *params, *saved)
        ctx.spec = (kind, activation, lengths, low, len(params))
        return (y, *finals)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, *dfinals):
        kind, activation, lengths, low, n = ctx.spec
        x, *rest = ctx.saved_tensors
        grads = extension().layer_backward(kind, dy, list(dfinals), x, rest[:n], rest[n:], activation, lengths,
                                           low, ctx.needs_input_grad[4])
        return (None, None, None, None, *grads)


def run_stack(cells: list[Cell], num_layers: int, x: Tensor, steps: Steps,
              states: list[State] | None, dropout: float, training: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Every layer of a stack: x (B, T, I) zero past each length, ``steps`` its lengths
    (:class:`rnnkit.checks.Steps`); ``states`` one per cell (``cells[l·D + d]``), or None for zeros.

    Returns y (B, T, D·H_out), zero past each length, and the final state as the layer
    returns it, (h (L·D, B, H_out),) or for the LSTM (h, c (L·D, B, H)), in the batch's order.
    Under bfloat16 autocast the input projections of a batch of ``LOW_PRECISION_ROWS``
    steps or more run in bfloat16; the recurrences in the weights' dtype.
    """
    D = len(cells) // num_layers
    kind = _kind(cells[0])
    activation = ACTIVATIONS[cells[0].activation] if isinstance(cells[0], ElmanCell) else 0
    low = (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
           and x.shape[0] * x.shape[1] >= LOW_PRECISION_ROWS)
    order, lengths = None, steps.lengths
    if lengths is None:
        sorted_lengths = torch.empty(0, dtype=torch.long)
        inp = x.transpose(0, 1)  # (T, B, I)
    else:
        sorted_lengths, order = torch.sort(lengths.cpu().long(), descending=True, stable=True)
        inp = x.transpose(0, 1)[:, order]  # (T, B, I), longest first
        if states is not None:
            states = [tuple(s[order] for s in state) for state in states]
    finals: list[tuple[Tensor, ...]] = []  # per layer: h (D, B, R) [, c (D, B, H)]
    for layer in range(num_layers):
        params = [t for d in range(D)
                  for t in _direction(cells[layer * D + d], None if states is None else states[layer * D + d])]
        y, *layer_finals = _Layer.apply(kind, activation, sorted_lengths, low,
                                        inp.to(cells[layer * D].weight_ih.dtype), *params)
        finals.append(tuple(layer_finals))
        inp = y  # (T, B, D·H_out)
        if layer < num_layers - 1 and dropout > 0:
            inp = nn.functional.dropout(inp, dropout, training)
    state = tuple(f[0] if num_layers == 1 else torch.cat(f, dim=0) for f in zip(*finals))  # each (L·D, B, n)
    if order is not None:
        unsort = torch.argsort(order)
        inp = inp[:, unsort]
        state = tuple(s[:, unsort] for s in state)
    return inp.transpose(0, 1).contiguous(), state  # (B, T, D·H_out)
