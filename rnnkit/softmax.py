"""A softmax output layer and its cross-entropy in one step, without keeping (N, V) logits.

:class:`SoftmaxOutput` owns the layer's weight (V, H) and bias (V,):
``layer(h, targets)`` is the summed cross-entropy
``F.cross_entropy(F.linear(h, W, b), targets, reduction="sum")`` with its gradients,
and ``layer.logits(h)`` the plain logits, for scoring and sampling.
:func:`linear_cross_entropy` is the same computation as a function.

It works through the N rows in chunks: per chunk the logits (one GEMM into an (N, V)
buffer), then, while they are in cache, one pass per row (rnnkit's C++ extension, or
torch without it) turns them into the loss and softmax - onehot in place; the
gradients of h and W are two large GEMMs over the whole buffer in the backward pass,
with the upstream gradient on the small (N, H) side of each. The three GEMMs of the
unfused layer remain; its separate passes over an N×V tensor (log-softmax, NLL, their
backward, the one-hot scatter) are gone.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the three GEMMs run in bfloat16
when there are at least ``LOW_PRECISION_ROWS`` rows (below that, casting the (V, H)
weight costs more than bfloat16 GEMMs save); the softmax, the loss and the gradients
handed back stay float32.

The layer's weight can take its Adam step inside this backward pass, so that its
(V, H) gradient is never stored: that is the opt-in :class:`rnnkit.adam_in_layers.AdamInLayers`,
which fills the layer's ``update`` slot.

Dimensions: N rows (scored steps), H hidden, V classes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rnnkit.kernels import fused

CHUNK = 256  # rows per chunk of the forward GEMM and the row pass
LOW_PRECISION_ROWS = 64  # fewer rows: casting the (V, H) weight costs more than bfloat16 GEMMs save
# bfloat16 products run on rows padded with zeros (_padded_rows) to a multiple of this, or of
# 1/16 of the count's power of two if larger: oneDNN compiles a kernel for every new shape,
# so at most 8 shapes per doubling, and at most 1/8 more rows
LOW_PRECISION_ALIGN = 16
# logits of this many bytes or more are made in a block kept for the next step
# (kernels/csrc/blocks.cpp): glibc's malloc maps blocks over 32 MiB afresh every time, and
# touching a fresh mapping costs a page fault per 4 KiB page
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
    def forward(ctx, h, weight, bias, targets, chunk, low, update):
        # h (N, H), weight (V, H), bias (V,) or None, targets (N,); low: bfloat16 GEMMs or None;
        # update: the weight's Adam step taken in the backward pass (AdamInLayers), or None
        dtype, n = low or h.dtype, h.shape[0]
        w = update.low_weight(weight) if update is not None and low == torch.bfloat16 else None
        w, hl = (weight.to(dtype) if w is None else w), h.to(dtype)  # under autocast: the copy its update wrote
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
        # a non-finite loss stores the gradient instead: the training loop then skips the whole update
        ctx.update = update if update is not None and bool(torch.isfinite(loss)) else None
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        g, w, hl, db = ctx.saved_tensors  # g = dL/dlogits (N, V), unscaled; zero rows past ctx.rows
        wants, (h_dtype, w_dtype, b_dtype), n = ctx.needs_input_grad, ctx.dtypes, ctx.rows
        scale = grad.to(hl.dtype)  # the upstream scalar goes on the small (N, H) side of each product
        if ctx.update is not None and wants[1]:
            gw = ctx.update.linear_backward(g, w, hl * scale)  # g @ w; w updated by g.T @ (hl * scale)
            if gw is not None:
                dh = gw[:n].mul_(scale).to(h_dtype) if wants[0] else None
                db = (db * grad).to(b_dtype) if wants[2] and b_dtype is not None else None
                return dh, None, db, None, None, None, None
        with torch.autocast(device_type=hl.device.type, enabled=False):  # the dtypes chosen in forward
            dh = (g @ w)[:n].mul_(scale).to(h_dtype) if wants[0] else None  # (N, H)
            dw = (g.t() @ (hl * scale)).to(w_dtype) if wants[1] else None  # (V, H)
        db = (db * grad).to(b_dtype) if wants[2] and b_dtype is not None else None  # (V,)
        return dh, dw, db, None, None, None, None


def linear_cross_entropy(h: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                         chunk: int = CHUNK, update=None) -> Tensor:
    """Summed cross-entropy of ``h @ weight.T + bias`` (h (N, H), weight (V, H),
    bias (V,) or None) against ``targets`` (N,) in [0, V): a scalar, as
    ``F.cross_entropy(..., reduction="sum")``, with the gradients of h, weight and bias.
    ``update`` is :class:`SoftmaxOutput`'s slot (the weight's step in the backward pass).

    Example:
        >>> h, w, t = torch.randn(4, 8), torch.randn(10, 8), torch.tensor([1, 0, 9, 3])
        >>> linear_cross_entropy(h, w, None, t)     # == F.cross_entropy(h @ w.T, t, reduction="sum")
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
        return _LinearCrossEntropy.apply(h, weight, bias, targets.long(), chunk, low, update)


class SoftmaxOutput(nn.Module):
    """A linear layer to V classes whose cross-entropy is computed with it (the module docstring).

    ``layer(h, targets) -> loss``: h (N, H), targets (N,) in [0, V); the summed
    cross-entropy, a scalar. ``layer.logits(h)``: h (..., H) -> (..., V).
    Parameters as ``nn.Linear(H, V)`` (the same names, shapes and initialisation):
    ``weight`` (V, H), ``bias`` (V,) or None.

    Example:
        >>> layer = SoftmaxOutput(8, 10)
        >>> loss = layer(torch.randn(4, 8), torch.tensor([1, 0, 9, 3]))    # summed over the 4 rows
        >>> layer.logits(torch.randn(2, 3, 8)).shape
        torch.Size([2, 3, 10])
    """

    def __init__(self, in_features: int, num_classes: int, bias: bool = True, chunk: int = CHUNK):
        super().__init__()
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1; got {chunk}")
        self.in_features, self.num_classes, self.chunk = in_features, num_classes, chunk
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))  # (V, H)
        self.bias = nn.Parameter(torch.empty(num_classes)) if bias else None  # (V,)
        self.update = None  # the weight's Adam step in the backward pass: set by AdamInLayers
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation: weight ~ kaiming_uniform(a=√5), bias ~ U(±1/√H)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def logits(self, h: Tensor) -> Tensor:
        return F.linear(h, self.weight, self.bias)  # (..., V)

    def forward(self, h: Tensor, targets: Tensor) -> Tensor:
        return linear_cross_entropy(h, self.weight, self.bias, targets, self.chunk, self.update)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.num_classes}, bias={self.bias is not None}"
