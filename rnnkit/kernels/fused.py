"""rnnkit's own fused recurrences: a C++ extension (``csrc/recurrent.cpp``; with
``softmax.cpp``, ``optim.cpp`` and their shared ``common.h``) for
every cell of :mod:`rnnkit.cells` in any configuration: Elman (tanh, relu,
sigmoid), LSTM with peepholes and/or projection, GRU; with or without biases.

Per layer and direction: one GEMM for the input projections of all steps (here,
through autograd), then in C++ a recurrent GEMM per step into preallocated
buffers, the gate arithmetic fused in one loop, and the backward pass through
time written out by hand. The extension is compiled on first use (``make
setup`` does it once) and cached by torch (``TORCH_EXTENSIONS_DIR``); if it
cannot be built (or ``RNNKIT_NO_EXTENSION=1`` is set), :func:`available` is
False, rnnkit says so once, and layers run on torch's kernels or the reference
loop. The same extension holds the one-pass Adam updates (:mod:`rnnkit.optim`)
and the softmax row pass (:mod:`rnnkit.fused_softmax`), which fall back likewise.

The stack runs time-major: x is transposed once, the batch is sorted by length
(longest first, as the kernel requires) once, and both are undone at the end.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from rnnkit.cells import Activation, Cell, ElmanCell, GRUCell, LSTMCell

State = tuple[Tensor, ...]
CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / name for name in ("recurrent.cpp", "softmax.cpp", "optim.cpp")]
ACTIVATIONS = {Activation.TANH: 0, Activation.RELU: 1, Activation.SIGMOID: 2}


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
        from torch.utils.cpp_extension import load
        if shutil.which("ninja") is None:  # the ninja wheel's binary sits beside this interpreter
            os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        capability = torch.backends.cpu.get_cpu_capability()
        # -fopenmp: at::parallel_for is inline and runs serially unless compiled with OpenMP; the
        # loader then binds the libgomp.so.1 that torch already loaded (one thread pool)
        flags = ["-O3", "-fno-math-errno", "-fopenmp"] + CAPABILITY_FLAGS.get(capability, [])
        # the name carries a digest of the flags, every source file and the header: any edit rebuilds
        sources = b"".join(path.read_bytes() for path in sorted(CSRC.iterdir()))
        digest = hashlib.sha1(" ".join(flags).encode() + sources).hexdigest()[:10]
        return load(name=f"rnnkit_kernels_{capability.lower()}_{digest}", sources=[str(path) for path in SOURCES],
                    verbose=False, extra_cflags=flags, extra_ldflags=["-fopenmp"])
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


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh, w_ch, w_hr, lengths, reverse):
        y, h, c, *saved = extension().lstm_forward(xp, h0, c0, w_hh, w_ch, w_hr, lengths, reverse)
        ctx.save_for_backward(*saved, w_hh, w_ch, w_hr, lengths)
        ctx.reverse = reverse
        return y, h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh, dc):
        gates, cs, hprev, cprev, m, w_hh, w_ch, w_hr, lengths = ctx.saved_tensors
        dy, dh, dc = (g.contiguous() for g in (dy, dh, dc))
        dxp, dh0, dc0, dw_hh, dw_ch, dw_hr = extension().lstm_backward(
            dy, dh, dc, gates, cs, hprev, cprev, m, w_hh, w_ch, w_hr, lengths, ctx.reverse)
        return (dxp, dh0, dc0, dw_hh, dw_ch if w_ch.numel() else None, dw_hr if w_hr.numel() else None,
                None, None)


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, lengths, reverse):
        y, h, *saved = extension().gru_forward(xp, h0, w_hh, b_hh, lengths, reverse)
        ctx.save_for_backward(*saved, w_hh, lengths)
        ctx.reverse, ctx.bias = reverse, b_hh.numel() > 0
        return y, h

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh):
        act, hn, hprev, w_hh, lengths = ctx.saved_tensors
        dxp, dh0, dw_hh, db_hh = extension().gru_backward(dy.contiguous(), dh.contiguous(), act, hn, hprev,
                                                           w_hh, ctx.bias, lengths, ctx.reverse)
        return dxp, dh0, dw_hh, db_hh if ctx.bias else None, None, None


class _Elman(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w_hh, activation, lengths, reverse):
        y, h, hprev = extension().elman_forward(xp, h0, w_hh, activation, lengths, reverse)
        ctx.save_for_backward(y, hprev, w_hh, lengths)
        ctx.reverse, ctx.activation = reverse, activation
        return y, h

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh):
        y, hprev, w_hh, lengths = ctx.saved_tensors
        dxp, dh0, dw_hh = extension().elman_backward(dy.contiguous(), dh.contiguous(), y, hprev, w_hh,
                                                      ctx.activation, lengths, ctx.reverse)
        return dxp, dh0, dw_hh, None, None, None


def run_direction(cell: Cell, x: Tensor, lengths: Tensor, state: State, reverse: bool) -> tuple[Tensor, State]:
    """One direction of one layer, time-major: x (T, B, I) -> y (T, B, H_out), final state.

    ``lengths``: (B,) CPU int64 sorted longest first, or an empty tensor for all T.
    """
    # (T, B, G): every step's input half in one GEMM (bfloat16 under autocast; the recurrence runs
    # in the weights' dtype)
    xp = cell.project(x).to(cell.weight_hh.dtype).contiguous()
    if isinstance(cell, LSTMCell):
        w_ch = cell.weight_ch if cell.weight_ch is not None else _empty(xp)
        w_hr = cell.weight_hr if cell.weight_hr is not None else _empty(xp)
        y, h, c = _LSTM.apply(xp, state[0], state[1], cell.weight_hh, w_ch, w_hr, lengths, reverse)
        return y, (h, c)
    if isinstance(cell, GRUCell):
        b_hh = cell.bias_hh if cell.bias_hh is not None else _empty(xp)
        y, h = _GRU.apply(xp, state[0], cell.weight_hh, b_hh, lengths, reverse)
        return y, (h,)
    y, h = _Elman.apply(xp, state[0], cell.weight_hh, ACTIVATIONS[cell.activation], lengths, reverse)
    return y, (h,)


def run_stack(cells: list[Cell], num_layers: int, x: Tensor, lengths: Tensor | None, states: list[State],
              dropout: float, training: bool) -> tuple[Tensor, list[State]]:
    """Every layer of a stack: x (B, T, I) zero past each length, lengths (B,) in [0, T] or None.

    Returns y (B, T, D·H_out), zero past each length, and each cell's final state
    (``cells[l·D + d]``), in the batch's own order.
    """
    D = len(cells) // num_layers
    order = None
    if lengths is not None and bool((lengths == x.shape[1]).all()):
        lengths = None
    if lengths is None:
        sorted_lengths = torch.empty(0, dtype=torch.long)
        inp = x.transpose(0, 1)  # (T, B, I)
    else:
        sorted_lengths, order = torch.sort(lengths.cpu().long(), descending=True, stable=True)
        inp = x.transpose(0, 1)[:, order]  # (T, B, I), longest first
        states = [tuple(s[order] for s in state) for state in states]
    finals: list[State] = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(D):
            k = layer * D + direction
            y, final = run_direction(cells[k], inp, sorted_lengths, states[k], reverse=direction == 1)
            outputs.append(y)  # (T, B, H_out)
            finals.append(final)
        inp = outputs[0] if D == 1 else torch.cat(outputs, dim=2)  # (T, B, D·H_out)
        if layer < num_layers - 1 and dropout > 0:
            inp = nn.functional.dropout(inp, dropout, training)
    if order is not None:
        unsort = torch.argsort(order)
        inp = inp[:, unsort]
        finals = [tuple(s[unsort] for s in state) for state in finals]
    return inp.transpose(0, 1).contiguous(), finals  # (B, T, D·H_out)
