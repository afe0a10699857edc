"""Optimizers, learning-rate schedules and weight noise for the training loop.

SGD with momentum, RMSProp (seed 001), Adam and AdamW. On the CPU, Adam and
AdamW are rnnkit's :class:`Adam` (one C++ pass over each parameter, no Python
bookkeeping per tensor; torch's update, tested equal); elsewhere, or without
the compiled extension, torch's fused implementation. SGD and RMSProp use
torch's foreach implementation.
With ``sparse_embeddings``, every ``nn.Embedding(sparse=True)`` table is updated
only in the rows a batch used (DyNet's lookup-parameter semantics): SGD on
sparse gradients, or for the Adam family :class:`LazyAdam`'s update (on the CPU
inside the one :class:`Adam`, which saves a second optimizer's per-step cost).
Without it, :class:`Adam` gives a sparse table the update of its dense gradient
(every row moves), read from the rows without making the dense zeros.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.kernels import fused


class Method(enum.Enum):
    SGD = "sgd"
    RMSPROP = "rmsprop"
    ADAM = "adam"
    ADAMW = "adamw"


@dataclass(frozen=True)
class OptimizerConfig:
    method: Method = Method.ADAM
    lr: float = 1e-3  # learning rate
    momentum: float = 0.0  # SGD and RMSProp momentum
    weight_decay: float = 0.0  # L2 (SGD, RMSProp, Adam) or decoupled (AdamW)
    rmsprop_alpha: float = 0.99  # RMSProp's moving-average factor for squared gradients
    sparse_embeddings: bool = False  # update only the used rows of sparse embedding tables


class Optimizers:
    """Several optimizers stepped as one (dense parameters and sparse tables)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers
        self.param_groups = [g for o in optimizers for g in o.param_groups]  # the schedule adjusts these

    def step(self, closure=None):
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"members": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.optimizers, state["members"], strict=True):
            o.load_state_dict(s)


def _advance(state: dict, p: Tensor) -> dict:
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
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False, lazy: bool = True):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "decoupled": decoupled, "lazy": lazy})

    def step_in_backward(self, param: nn.Parameter) -> None:
        """Update ``param`` inside the backward pass, where a kernel can fuse its Adam step with
        the computation of its gradient, which is then never stored: on the CPU, the weight of
        :func:`rnnkit.fused_softmax.linear_cross_entropy` in float32/float64 (its (V, H)
        gradient is the largest tensor of a softmax model at small batches). The update is the
        same as ``step()``'s; each backward is one update of ``param``, so this does not go with
        gradient clipping, accumulation or non-finite checks over all gradients, and
        ``step()`` raises if ``param`` also got a gradient from elsewhere (a tied weight). Under
        bfloat16 autocast the update also writes the weight's bfloat16 copy, which the next
        forward pass multiplies with instead of casting the weight again. Where no kernel
        fuses it (another layer, a gradient already there), ``param`` gets its gradient and
        ``step()`` updates it as usual. The binding is the attribute
        ``param.rnnkit_step_in_backward``; another optimizer's ``step()`` raises until it is
        deleted."""
        if not any(param is q for group in self.param_groups for q in group["params"]):
            raise ValueError("step_in_backward: the parameter is not one of this optimizer's")
        param.rnnkit_step_in_backward = _StepInBackward(self, param)

    def __setstate__(self, state: dict) -> None:  # states saved before ``lazy`` existed
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("lazy", True)

    @torch.no_grad()
    def step(self, closure=None):
        kernel = fused.extension()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                grad = p.grad
                fused_step = getattr(p, "rnnkit_step_in_backward", None)
                if fused_step is not None and fused_step.done(self, grad):
                    continue
                if grad is None:
                    continue
                if p.device.type != "cpu":
                    raise ValueError("rnnkit.optim.Adam updates CPU tensors; use torch.optim.Adam on other devices")
                state = _advance(self.state[p], p)
                if grad.is_sparse and not group["lazy"]:  # the dense gradient's update
                    kernel.adam_rows_step(p, grad._indices()[0], grad._values(), state["exp_avg"],
                                          state["exp_avg_sq"], int(state["step"]), group["lr"], beta1, beta2,
                                          group["eps"], group["weight_decay"], group["decoupled"])
                    continue
                if grad.is_sparse:
                    if group["weight_decay"]:
                        raise ValueError("lazy updates of sparse gradients take no weight decay: put sparse "
                                         "tables in a parameter group with weight_decay=0, or lazy=False")
                    _lazy_adam(kernel, p, state, group["lr"], beta1, beta2, group["eps"])
                    continue
                params.append(p)
                grads.append(grad.contiguous())
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(int(state["step"]))
            if params:
                kernel.adam_step(params, grads, exp_avgs, exp_avg_sqs, steps, group["lr"], beta1, beta2,
                                 group["eps"], group["weight_decay"], group["decoupled"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad(self, set_to_none)


BLOCK_ELEMENTS = 131072  # the fused backward works through the weight in blocks of this many values


class _StepInBackward:
    """Adam's step of one parameter, taken by a kernel during the backward pass
    (:meth:`Adam.step_in_backward`)."""

    def __init__(self, optimizer: Adam, param: nn.Parameter):
        self.optimizer, self.param, self.pending = optimizer, param, False
        self.block_elements = BLOCK_ELEMENTS
        self.low_copy: Tensor | None = None  # bfloat16 copy of the weight, written with its update
        self.low_version = -1  # the weight's version when the copy was written; -1: stale

    def low_weight(self, weight: Tensor) -> Tensor | None:
        """The bfloat16 copy of ``weight`` written by the last update, if it is still current
        (no update since elsewhere, no in-place change, which bumps the version)."""
        if self.low_copy is None or weight is not self.param or self.low_version != weight._version:
            return None
        return self.low_copy

    def linear_backward(self, g: Tensor, w: Tensor, hs: Tensor) -> Tensor | None:
        """g (N, V) @ w (V, H), with the weight then updated by its gradient g.T @ hs (hs
        (N, H)); w is the weight, or under autocast (g and hs bfloat16) the bfloat16 weight
        the forward pass used: then both products are bfloat16, as unfused, and the update
        also writes the next bfloat16 copy. None when this backward cannot take the step
        (the caller falls back)."""
        p, kernel = self.param, fused.extension()
        low = g.dtype == hs.dtype == w.dtype == torch.bfloat16 and p.dtype == torch.float32
        if kernel is None or p.grad is not None or p.device.type != "cpu" or not p.is_contiguous() \
                or not (low or (g.dtype == p.dtype and p.dtype in (torch.float32, torch.float64))):
            return None
        group = next(group for group in self.optimizer.param_groups if any(p is q for q in group["params"]))
        state = _advance(self.optimizer.state[p], p)
        beta1, beta2 = group["betas"]
        step = (int(state["step"]), group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["decoupled"])
        self.pending = True
        with torch.no_grad():
            if not low:
                self.low_version = -1
                return kernel.linear_adam_backward(g.contiguous(), p, hs.contiguous(), state["exp_avg"],
                                                   state["exp_avg_sq"], *step, self.block_elements)
            dh = (g @ w).float()  # (N, H), with the weight before this update
            dw = g.t() @ hs  # (V, H) bfloat16, as the unfused layer's product
            # a new tensor each time: a forward pass that saved the previous copy keeps its values
            self.low_copy = torch.empty_like(p, dtype=torch.bfloat16)
            kernel.adam_low_step(p, dw, state["exp_avg"], state["exp_avg_sq"], self.low_copy, *step)
            self.low_version = p._version
            return dh

    def __reduce__(self):  # a pickled parameter does not carry its optimizer along
        return (_no_step_in_backward, ())

    def done(self, optimizer: Adam, grad: Tensor | None) -> bool:
        """Whether this step's update was taken in the backward pass (called by ``optimizer.step``)."""
        if optimizer is not self.optimizer:
            raise RuntimeError("this parameter is updated in the backward pass by another optimizer "
                               "(Adam.step_in_backward); delete its rnnkit_step_in_backward attribute first")
        pending, self.pending = self.pending, False
        if not pending:
            self.low_version = -1  # step() updates the weight: the bfloat16 copy goes stale
        if pending and grad is not None:
            raise RuntimeError("a parameter updated in the backward pass (Adam.step_in_backward) also got a "
                               "gradient from elsewhere (a tied weight?): its update would be split in two")
        return pending


def _no_step_in_backward() -> None:
    return None


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
                state = _advance(self.state[p], p)
                _lazy_adam(kernel if p.device.type == "cpu" else None, p, state, group["lr"], beta1, beta2,
                           group["eps"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad(self, set_to_none)


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


def _zero_grad(optimizer: torch.optim.Optimizer, set_to_none: bool) -> None:
    """torch's zero_grad without its profiler region (which costs more than the loop at one
    sentence per update)."""
    if not set_to_none:
        torch.optim.Optimizer.zero_grad(optimizer, set_to_none=False)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def _sparse_tables(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse]


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer | Optimizers:
    """The optimizer of ``config`` over the model's trainable parameters."""
    if config.lr <= 0:
        raise ValueError(f"lr must be > 0; got {config.lr}")
    tables = _sparse_tables(model)
    sparse = tables if config.sparse_embeddings else []
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if p.requires_grad and id(p) not in sparse_ids]
    m, c = config.method, config
    cpu_adam = m in (Method.ADAM, Method.ADAMW) and all(p.device.type == "cpu" for p in dense + sparse) \
        and fused.available()
    if tables and not config.sparse_embeddings and not cpu_adam:
        raise ValueError("the model has sparse embeddings: set sparse_embeddings=True (dense updates of sparse "
                         "tables need Adam or AdamW on the CPU)")
    if m is Method.SGD:
        main = torch.optim.SGD(dense, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, foreach=True)
    elif m is Method.RMSPROP:
        main = torch.optim.RMSprop(dense, lr=c.lr, alpha=c.rmsprop_alpha, momentum=c.momentum,
                                   weight_decay=c.weight_decay, foreach=True)
    elif cpu_adam:  # sparse tables in ``dense``: every row updated, from the used rows' gradient
        groups = [{"params": dense, "lazy": False}] + ([{"params": sparse, "weight_decay": 0.0}] if sparse else [])
        return Adam(groups, lr=c.lr, weight_decay=c.weight_decay, decoupled=m is Method.ADAMW)
    elif m is Method.ADAM:
        main = torch.optim.Adam(dense, lr=c.lr, weight_decay=c.weight_decay, fused=True)
    else:
        main = torch.optim.AdamW(dense, lr=c.lr, weight_decay=c.weight_decay, fused=True)
    if not sparse:
        return main
    if m is Method.SGD:
        side = torch.optim.SGD(sparse, lr=c.lr)  # momentum would touch every row: none, as DyNet
    elif m in (Method.ADAM, Method.ADAMW):
        side = LazyAdam(sparse, lr=c.lr)
    else:
        raise ValueError(f"sparse_embeddings works with SGD, Adam and AdamW; not {m.name}")
    return Optimizers([main, side])


class Schedule(enum.Enum):
    CONSTANT = "constant"
    PLATEAU = "plateau"  # multiply by factor when the dev metric has not improved for `patience` epochs
    DECAY = "decay"  # multiply by factor at the end of every epoch from `start_epoch` on


@dataclass(frozen=True)
class ScheduleConfig:
    kind: Schedule = Schedule.CONSTANT
    factor: float = 0.5  # the multiplier applied to the learning rate
    patience: int = 0  # PLATEAU: epochs without improvement tolerated
    start_epoch: int = 1  # DECAY: first epoch (1-based) after which the rate decays
    min_lr: float = 0.0


class LRSchedule:
    """Epoch-level learning-rate control; ``step(metric)`` at each epoch's end.

    ``minimize`` says whether a lower development metric is better (loss,
    perplexity) or a higher one (accuracy, F1).
    """

    def __init__(self, optimizer: torch.optim.Optimizer | Optimizers, config: ScheduleConfig,
                 minimize: bool = True):
        if not 0 < config.factor <= 1:
            raise ValueError(f"schedule factor must be in (0, 1]; got {config.factor}")
        self.optimizer, self.config, self.minimize = optimizer, config, minimize
        self.epochs, self.best, self.stale = 0, None, 0

    def step(self, metric: float | None = None) -> None:
        self.epochs += 1
        c = self.config
        if c.kind is Schedule.PLATEAU:
            if metric is None:
                raise ValueError("the PLATEAU schedule needs a development metric (give --dev data)")
            better = self.best is None or (metric < self.best if self.minimize else metric > self.best)
            self.best, self.stale = (metric, 0) if better else (self.best, self.stale + 1)
            if self.stale > c.patience:
                self._scale()
                self.stale = 0
        elif c.kind is Schedule.DECAY and self.epochs >= c.start_epoch:
            self._scale()

    def _scale(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = max(group["lr"] * self.config.factor, self.config.min_lr)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"epochs": self.epochs, "best": self.best, "stale": self.stale,
                "lrs": [g["lr"] for g in self.optimizer.param_groups]}

    def load_state_dict(self, state: dict) -> None:
        self.epochs, self.best, self.stale = state["epochs"], state["best"], state["stale"]
        for group, lr in zip(self.optimizer.param_groups, state["lrs"], strict=True):
            group["lr"] = lr


@contextlib.contextmanager
def weight_noise(model: nn.Module, std: float, generator: torch.Generator | None) -> Iterator[None]:
    """Add N(0, std²) to every weight matrix for the forward and backward pass,
    and take it away again before the update (Graves et al. 2013). Biases,
    vectors and embedding tables are left alone. ``std == 0`` does nothing."""
    if std <= 0:
        yield
        return
    skip = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    noisy = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in skip]
    clean = [p.detach().clone() for p in noisy]  # restored exactly, not by subtraction
    with torch.no_grad():
        for p in noisy:
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device) * std)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, c in zip(noisy, clean):
                p.copy_(c)
