"""rnnkit's Adam family on the CPU, each update one call into the C++ extension
(``kernels/csrc/optim.cpp``): :class:`Adam` (torch's Adam or AdamW, tested equal), which
also gives a sparse gradient's table its dense update from the used rows, and
:class:`LazyAdam`, DyNet's update of the used rows only. :mod:`rnnkit.optim` chooses
among them; :mod:`rnnkit.adam_in_layers` holds the opt-in updates taken inside the
layers (the softmax weight's in its backward pass, a table's rows when next looked up).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnkit.kernels import fused


def advance(state: dict, p: Tensor) -> dict:
    """Adam's state of ``p`` (torch's names), created on first use, its step counted."""
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
    state["step"] += 1
    return state


class Adam(torch.optim.Optimizer):
    """torch.optim.Adam (``decoupled=False``, L2 weight decay) or AdamW
    (``decoupled=True``), each step one call into rnnkit's C++ extension that makes
    one vectorised pass over every parameter with a dense gradient. CPU tensors.
    A parameter with a sparse gradient (``nn.Embedding(sparse=True)``) in a group with
    ``lazy=True`` (the default) gets :class:`LazyAdam`'s update of the rows it used (as
    DyNet's Adam treats lookup parameters; such groups take ``weight_decay=0``). With
    ``lazy=False`` it gets exactly the update of the dense gradient, every row's moments
    decaying, in one pass that reads the used rows' gradient and no dense zeros (a dense
    embedding gradient costs a zero fill, a scatter and a read of the whole table).
    The state holds torch's names: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Example:
        >>> opt = Adam(model.parameters(), lr=1e-3, weight_decay=0.01, decoupled=True)   # AdamW
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False, lazy: bool = True):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "decoupled": decoupled, "lazy": lazy})

    @torch.no_grad()
    def step(self, closure=None):
        kernel = fused.extension()
        for group in self.param_groups:
            update(kernel, group, group["params"], self.state)

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grad(self, set_to_none)


class LazyAdam(torch.optim.Optimizer):
    """Adam on the rows of a sparse gradient only (DyNet's lookup-parameter update,
    TF's LazyAdam, the semantics of ``torch.optim.SparseAdam``): the rows a batch used
    get the Adam update of their moments and values; other rows are left exactly as
    they are. One step counter per table. One C++ call per table when the extension
    is built (repeated rows summed there, no coalescing), else a handful of ops on the
    gathered rows; either is many times cheaper per step than ``SparseAdam``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        kernel = fused.extension()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise ValueError("LazyAdam updates sparse gradients (nn.Embedding(sparse=True)) only")
                state = advance(self.state[p], p)
                _lazy_adam(kernel if p.device.type == "cpu" else None, p, state, group["lr"], beta1, beta2,
                           group["eps"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grad(self, set_to_none)


def hyper(group: dict) -> tuple[float, float, float, float, float, bool]:
    """(lr, beta1, beta2, eps, weight_decay, decoupled): a group's settings as the C++ steps take them."""
    return (group["lr"], *group["betas"], group["eps"], group["weight_decay"], group["decoupled"])


def update(kernel, group: dict, params, state: dict) -> None:
    """One step of :class:`Adam` (the group's rule) for the parameters ``params`` of ``group``
    that have a gradient: one C++ pass over all the dense ones, a pass per sparse table.
    ``state`` is the optimizer's, each parameter's step counted here."""
    dense, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
    for p in params:
        grad = p.grad
        if grad is None:
            continue
        if not p.is_cpu:  # (p.device costs more than the rest of the loop)
            raise ValueError("rnnkit.adam.Adam updates CPU tensors; use torch.optim.Adam on other devices")
        s = advance(state[p], p)
        if grad.is_sparse and not group["lazy"]:  # the dense gradient's update
            kernel.adam_rows_step(p, grad._indices()[0], grad._values(), s["exp_avg"], s["exp_avg_sq"],
                                  int(s["step"]), *hyper(group))
        elif grad.is_sparse:
            if group["weight_decay"]:
                raise ValueError("lazy updates of sparse gradients take no weight decay: put sparse "
                                 "tables in a parameter group with weight_decay=0, or lazy=False")
            beta1, beta2 = group["betas"]
            _lazy_adam(kernel, p, s, group["lr"], beta1, beta2, group["eps"])
        else:
            dense.append(p)
            grads.append(grad.contiguous())
            exp_avgs.append(s["exp_avg"])
            exp_avg_sqs.append(s["exp_avg_sq"])
            steps.append(int(s["step"]))
    if dense:
        kernel.adam_step(dense, grads, exp_avgs, exp_avg_sqs, steps, *hyper(group))


def _lazy_adam(kernel, p: Tensor, state: dict, lr: float, beta1: float, beta2: float, eps: float) -> None:
    """SparseAdam's update of the rows of ``p`` its sparse gradient names (state advanced)."""
    t = int(state["step"])
    if kernel is not None:  # one C++ call; repeated rows summed there, no coalescing
        kernel.lazy_adam_step(p, p.grad._indices()[0], p.grad._values(), state["exp_avg"], state["exp_avg_sq"],
                              t, lr, beta1, beta2, eps)
        return
    grad = p.grad.coalesce()
    rows, g = grad.indices()[0], grad.values()  # (N,), (N, *row)
    m = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(g, alpha=1 - beta1)
    v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
    state["exp_avg"].index_copy_(0, rows, m)
    state["exp_avg_sq"].index_copy_(0, rows, v)
    step_size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    p.index_add_(0, rows, m.div_(v.sqrt_().add_(eps)), alpha=-step_size)


def zero_grad(optimizer: torch.optim.Optimizer, set_to_none: bool) -> None:
    """torch's zero_grad without its profiler region, which costs more than this loop when
    an update is small."""
    if not set_to_none:
        torch.optim.Optimizer.zero_grad(optimizer, set_to_none=False)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
