"""Matrix products routed to the faster of torch's two CPU GEMMs.

torch runs ``torch.mm``, ``addmm`` and ``F.linear`` on the CPU through its BLAS (MKL in
the PyPI wheel); its oneDNN library, which runs ``nn.LSTM``, has its own matmul. The two
give the same products; which is faster depends on the processor (MKL takes a slower
path on some non-Intel CPUs) and on the product's size: a oneDNN matmul call costs more
to set up than a BLAS call, so small products stay with BLAS.

:func:`linear`, :func:`mm` and :func:`addmm` are those three functions with their
gradients, and :class:`Linear` is ``nn.Linear`` on :func:`linear`. A float32 CPU product
of at least :data:`ONEDNN_MACS` multiply-adds (forward or backward, each product decided
by its own size) runs on oneDNN's matmul; everything else (other dtypes, devices,
autocast, tracing and export, a torch without oneDNN) is the torch function itself. The
C++ extension applies the same rule (``kernels/csrc/common.h``).

The rule depends on shapes only, so a run is as reproducible as with torch's functions;
results agree with them to float32 rounding (tests/test_kernels_gemm.py).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ONEDNN_MACS = 1 << 21  # multiply-adds from which a float32 product goes to oneDNN


@functools.cache
def _onednn():
    """torch's oneDNN matmul (``mkldnn::_linear_pointwise``: x (m, k), w (n, k) -> x w^T), or None."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x = torch.ones(2, 3)
        if not torch.equal(op(x, torch.ones(4, 3), None, "none", [], ""), torch.full((2, 4), 3.0)):
            return None
    except (AttributeError, RuntimeError):
        return None
    return op


def _routes(*tensors: Tensor) -> bool:
    """Whether products of these tensors may go to oneDNN (their sizes aside)."""
    t = tensors[0]
    if t.device.type != "cpu" or any(x.dtype != torch.float32 for x in tensors):
        return False
    if torch.is_autocast_enabled("cpu") or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return False
    return _onednn() is not None


def _dense(t: Tensor) -> Tensor:
    """t (2-D) as is if it is stored row- or column-major without gaps, else a contiguous copy
    (oneDNN runs other strides, a column slice of a weight say, on a slow reference kernel)."""
    return t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous()


def _mm_t(a: Tensor, b_t: Tensor) -> Tensor:
    """a (m, k) @ b_t (n, k)^T, on oneDNN if large enough; any strides."""
    m, k, n = a.shape[0], a.shape[1], b_t.shape[0]
    if m * k * n >= ONEDNN_MACS:
        return _onednn()(_dense(a), _dense(b_t), None, "none", [], "")
    return a @ b_t.t()


class _Linear(torch.autograd.Function):
    """x (N, I) @ w (O, I)^T + b (O,) with every product routed by its size."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        y = _mm_t(x, w)  # (N, O)
        return y if b is None else y.add_(b)

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, w = ctx.saved_tensors
        dx = _mm_t(dy, w.t()) if ctx.needs_input_grad[0] else None  # (N, I) = dy w
        dw = _mm_t(dy.t(), x.t()) if ctx.needs_input_grad[1] else None  # (O, I) = dy^T x
        db = dy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (O,)
        return dx, dw, db


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear``: x (..., I), weight (O, I), bias (O,) or None -> (..., O)."""
    if not _routes(x, weight) or x.numel() * weight.shape[0] < ONEDNN_MACS:
        return F.linear(x, weight, bias)
    if x.dim() == 2:
        return _Linear.apply(x, weight, bias)
    return _Linear.apply(x.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """``nn.Linear`` computed by :func:`linear`: the same parameters, state dict and results."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def mm(a: Tensor, b: Tensor) -> Tensor:
    """``torch.mm``: a (m, k) @ b (k, n) -> (m, n)."""
    if not _routes(a, b) or a.numel() * b.shape[1] < ONEDNN_MACS:
        return a @ b
    return _Linear.apply(a, b.t(), None)


def addmm(input: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``torch.addmm``: input (m, n) or broadcastable + a (m, k) @ b (k, n)."""
    if not _routes(input, a, b) or a.numel() * b.shape[1] < ONEDNN_MACS:
        return torch.addmm(input, a, b)
    return _Linear.apply(a, b.t(), None) + input
