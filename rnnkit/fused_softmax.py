"""A softmax output layer and its cross-entropy in one step, without the (N, V) logits.

``linear_cross_entropy(h, W, b, targets)`` equals
``F.cross_entropy(F.linear(h, W, b), targets, reduction="sum")`` and its gradients.
It works through the N rows in chunks: per chunk the logits (one GEMM into an
(N, V) buffer), then, while they are in cache, one C++ pass per row (rnnkit's
extension) turns them into the loss and softmax - onehot in place; then the
gradients of h and W are two large GEMMs over the whole buffer in the backward
pass, which puts the upstream gradient on the small (N, H) side of each. The
three GEMMs of the unfused layer remain; its separate passes over an N×V tensor
(log-softmax, NLL, their backward, the one-hot scatter) are gone.

With :meth:`rnnkit.adam.Adam.step_in_backward` on the weight, the backward pass
updates the weight itself and stores no float32 (V, H) gradient: in float32, block
by block while each block is in cache (one C++ pass: dh, the block's gradient, its
Adam step); under bfloat16 autocast, after the two bfloat16 products, in one pass
that reads the bfloat16 gradient and also writes the weight's bfloat16 copy for the
next forward pass (no cast of the weight per step).

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (rnnkit's ``--precision
bfloat16``) the three GEMMs run in bfloat16 when there are at least
``LOW_PRECISION_ROWS`` rows (below that, casting the weight costs more than the
GEMMs save, and they stay float32); the softmax, the loss and the gradients
handed back stay float32.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnkit.kernels import fused

CHUNK = 256  # rows per chunk of the forward GEMM and the row pass
LOW_PRECISION_ROWS = 64  # fewer rows: casting the (V, H) weight costs more than bfloat16 GEMMs save (BENCHMARKS.md)
# bfloat16 products run on rows padded with zeros (_padded_rows) to a multiple of this, or of
# 1/16 of the count's power of two if larger: oneDNN compiles a kernel for every new shape (~20 ms
# each at 90 x 10,000 x 256), so at most 8 shapes per doubling, and at most 1/8 more rows
LOW_PRECISION_ALIGN = 16
# logits of this many bytes or more are made in a block kept for the next step
# (kernels/csrc/blocks.cpp): malloc maps blocks over 32 MiB afresh every time, and touching
# one costs a page fault per 4 KiB (~36 ms per update at minibatch 64; BENCHMARKS.md)
KEPT_BYTES = 32 << 20


def _padded_rows(n: int) -> int:
    align = max(LOW_PRECISION_ALIGN, 1 << max(0, (n - 1).bit_length() - 4))
    return -(-n // align) * align


def _logits(h: Tensor, rows: int, vocab: int, dtype: torch.dtype) -> Tensor:
    """An uninitialised (rows, vocab) buffer of ``dtype`` on h's device."""
    kernel = fused.extension() if h.device.type == "cpu" else None
    if kernel is not None and rows * vocab * dtype.itemsize >= KEPT_BYTES:
        return kernel.kept_empty(rows, vocab, h.new_empty(0, dtype=dtype))
    return h.new_empty(rows, vocab, dtype=dtype)


def _softmax_xent_(z: Tensor, targets: Tensor, bias: Tensor | None, db: Tensor | None) -> Tensor:
    """z (n, V) -> softmax(z + bias) - onehot(targets), in place; db += its column sums.
    Returns each row's loss (n,)."""
    kernel = fused.extension() if z.device.type == "cpu" else None
    if kernel is not None:
        empty = z.new_empty(0, dtype=torch.float32 if z.dtype == torch.bfloat16 else z.dtype)
        return kernel.softmax_xent_(z, targets, empty if bias is None else bias, empty if db is None else db)
    zf = z.float() if z.dtype == torch.bfloat16 else z.clone()
    if bias is not None:
        zf += bias
    lse = torch.logsumexp(zf, dim=1)  # (n,)
    loss = lse - zf.gather(1, targets[:, None]).squeeze(1)
    p = (zf - lse[:, None]).exp_()
    p[torch.arange(len(targets), device=z.device), targets] -= 1
    if db is not None:
        db += p.sum(0)
    z.copy_(p)
    return loss


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk, low):
        # h (N, H), weight (V, H), bias (V,) or None, targets (N,); low: bfloat16 GEMMs or None
        dtype, n = low or h.dtype, h.shape[0]
        # rnnkit.adam.Adam.step_in_backward: the weight's update fused with its gradient's product
        fused_step = getattr(weight, "rnnkit_step_in_backward", None)
        w = fused_step.low_weight(weight) if fused_step is not None and low == torch.bfloat16 else None
        w, hl = (weight.to(dtype) if w is None else w), h.to(dtype)  # under autocast: its copy kept by Adam
        rows = n if low is None else _padded_rows(n)
        if rows > n:  # zero rows: zero logits, never turned into gradients, so they add nothing
            hl = torch.cat([hl, hl.new_zeros(rows - n, hl.shape[1])])
        g = _logits(h, rows, weight.shape[0], dtype)  # logits, then dL/dlogits (rows past n: 0)
        wants = ctx.needs_input_grad
        b = None if bias is None else bias.to(torch.float32 if low is not None else bias.dtype)
        db = torch.zeros_like(b) if b is not None and wants[2] else None  # (V,)
        loss = h.new_zeros((), dtype=torch.float32 if low is not None else h.dtype)
        for start in range(0, rows, chunk):  # each chunk's logits are used while in cache
            z = g[start:start + chunk]
            torch.mm(hl[start:start + chunk], w.t(), out=z)  # (c, V); the bias is added in the row pass
            loss += _softmax_xent_(z[:max(0, n - start)], targets[start:start + chunk], b, db).sum()
        ctx.save_for_backward(g, w, hl, db)
        ctx.dtypes, ctx.rows = (h.dtype, weight.dtype, None if bias is None else bias.dtype), n
        ctx.fused_step = fused_step
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        g, w, hl, db = ctx.saved_tensors  # g = dL/dlogits (N, V), unscaled; zero rows past ctx.rows
        wants, (h_dtype, w_dtype, b_dtype), n = ctx.needs_input_grad, ctx.dtypes, ctx.rows
        scale = grad.to(hl.dtype)  # the upstream scalar goes on the small (N, H) side of each product
        if ctx.fused_step is not None and wants[1]:
            gw = ctx.fused_step.linear_backward(g, w, hl * scale)  # g @ w; w updated by g.T @ (hl * scale)
            if gw is not None:
                dh = gw[:n].mul_(scale).to(h_dtype) if wants[0] else None
                db = (db * grad).to(b_dtype) if wants[2] and b_dtype is not None else None
                return dh, None, db, None, None, None
        with torch.autocast(device_type=hl.device.type, enabled=False):  # the dtypes chosen in forward
            dh = (g @ w)[:n].mul_(scale).to(h_dtype) if wants[0] else None  # (N, H)
            dw = (g.t() @ (hl * scale)).to(w_dtype) if wants[1] else None  # (V, H)
        db = (db * grad).to(b_dtype) if wants[2] and b_dtype is not None else None  # (V,)
        return dh, dw, db, None, None, None


def linear_cross_entropy(h: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                         chunk: int = CHUNK) -> Tensor:
    """Summed cross-entropy of ``h @ weight.T + bias`` (h (N, H), weight (V, H),
    bias (V,) or None) against ``targets`` (N,) in [0, V): a scalar, as
    ``F.cross_entropy(..., reduction="sum")``, with the gradients of h, weight and bias.
    """
    if h.dim() != 2 or weight.dim() != 2 or h.shape[1] != weight.shape[1]:
        raise ValueError(f"h must be (N, H) and weight (V, H); got {tuple(h.shape)} and {tuple(weight.shape)}")
    if targets.shape != (h.shape[0],):
        raise ValueError(f"targets must be ({h.shape[0]},); got {tuple(targets.shape)}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= weight.shape[0]):
        raise ValueError(f"targets must be in [0, {weight.shape[0]}); got [{int(targets.min())}, "
                         f"{int(targets.max())}]")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}")
    device = h.device.type
    low = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    if h.shape[0] < LOW_PRECISION_ROWS:
        low = None
    with torch.autocast(device_type=device, enabled=False):
        return _LinearCrossEntropy.apply(h, weight, bias, targets.long(), chunk, low)
