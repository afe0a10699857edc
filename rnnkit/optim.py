"""Optimizers, learning-rate schedules and weight noise for the training loop.

SGD with momentum, RMSProp (Tieleman & Hinton 2012), Adam and AdamW. On the CPU, Adam
and AdamW are rnnkit's :class:`~rnnkit.adam.Adam` (one C++ pass over each parameter, no
Python bookkeeping per tensor; torch's update, tested equal); elsewhere, or without
the compiled extension, torch's fused implementation. SGD and RMSProp use
torch's foreach implementation.
With ``sparse_embeddings``, every ``nn.Embedding(sparse=True)`` table is updated
only in the rows a batch used (DyNet's lookup-parameter semantics): SGD on
sparse gradients, or for the Adam family :class:`~rnnkit.adam.LazyAdam`'s update (on the CPU
inside the one :class:`Adam`, which saves a second optimizer's per-step cost).
Without it, :class:`Adam` gives a sparse table the update of its dense gradient
(every row moves), read from the rows without making the dense zeros.
With ``in_layers`` (Adam family, CPU) the optimizer is
:class:`~rnnkit.adam_in_layers.AdamInLayers`: the same Adam, with the softmax layer's weight
and the dense-rule sparse tables updated inside their layers (no clipping or weight noise).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from rnnkit.adam import Adam, LazyAdam
from rnnkit.adam_in_layers import AdamInLayers
from rnnkit.kernels import fused
from rnnkit.settings import FRACTION, NATURAL, NONNEGATIVE, POSITIVE, SHARE, SettingError, check, setting
from rnnkit.softmax import SoftmaxOutput


class Method(enum.Enum):
    SGD = "sgd"
    RMSPROP = "rmsprop"
    ADAM = "adam"
    ADAMW = "adamw"


@dataclass(frozen=True)
class OptimizerConfig:
    method: Method = Method.ADAM
    lr: float = setting(1e-3, POSITIVE)  # learning rate
    momentum: float = setting(0.0, FRACTION)  # SGD and RMSProp momentum
    weight_decay: float = setting(0.0, NONNEGATIVE)  # L2 (SGD, RMSProp, Adam) or decoupled (AdamW)
    rmsprop_alpha: float = setting(0.99, FRACTION)  # RMSProp's moving-average factor for squared gradients
    sparse_embeddings: bool = False  # update only the used rows of sparse embedding tables
    in_layers: bool = False  # Adam family, CPU: softmax weights and dense-rule tables updated in their layers

    def __post_init__(self) -> None:
        check(self)
        if self.momentum and self.method in (Method.ADAM, Method.ADAMW):
            raise SettingError("momentum", f"has no effect with the {self.method.value} optimizer (its betas play that "
                               "part); use --optimizer sgd or rmsprop, or leave momentum at 0", type(self).__name__)
        if self.in_layers and self.method not in (Method.ADAM, Method.ADAMW):
            raise SettingError("in_layers", f"needs the adam or adamw optimizer, not {self.method.value}",
                               type(self).__name__)


class Optimizers:
    """Several optimizers stepped as one (dense parameters and sparse tables)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers
        self.param_groups = [g for o in optimizers for g in o.param_groups]  # the schedule adjusts these
        self.updates_in_backward = any(getattr(o, "updates_in_backward", False) for o in optimizers)

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


def _sparse_tables(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse]


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer | Optimizers:
    """The optimizer of ``config`` over the model's trainable parameters."""
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
    if config.in_layers and not cpu_adam:
        raise ValueError("in_layers updates are rnnkit's Adam or AdamW, on the CPU with the compiled extension; "
                         f"not {m.name}" + ("" if fused.available() else " (the extension is not available)"))
    if m is Method.SGD:
        main = torch.optim.SGD(dense, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, foreach=True)
    elif m is Method.RMSPROP:
        main = torch.optim.RMSprop(dense, lr=c.lr, alpha=c.rmsprop_alpha, momentum=c.momentum,
                                   weight_decay=c.weight_decay, foreach=True)
    elif cpu_adam:  # sparse tables in ``dense``: every row updated, from the used rows' gradient
        groups = [{"params": dense, "lazy": False}] + ([{"params": sparse, "weight_decay": 0.0}] if sparse else [])
        decoupled = m is Method.ADAMW
        if not config.in_layers:
            return Adam(groups, lr=c.lr, weight_decay=c.weight_decay, decoupled=decoupled)
        softmax = [layer for layer in model.modules() if isinstance(layer, SoftmaxOutput)]
        if len(softmax) > 1:
            raise ValueError(f"in_layers updates one softmax layer; the model has {len(softmax)}")
        dense_rule = [layer for layer in model.modules() if isinstance(layer, nn.Embedding) and layer.sparse
                      and id(layer.weight) not in sparse_ids]
        return AdamInLayers(groups, softmax[0] if softmax else None, dense_rule, lr=c.lr,
                            weight_decay=c.weight_decay, decoupled=decoupled)
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
    factor: float = setting(0.5, SHARE)  # the multiplier applied to the learning rate
    patience: int = setting(0, NATURAL)  # PLATEAU: epochs without improvement tolerated
    start_epoch: int = setting(1, NATURAL)  # DECAY: first epoch (1-based) after which the rate decays
    min_lr: float = setting(0.0, NONNEGATIVE)

    def __post_init__(self) -> None:
        check(self)


class LRSchedule:
    """Epoch-level learning-rate control; ``step(metric)`` at each epoch's end.

    ``minimize`` says whether a lower development metric is better (loss,
    perplexity) or a higher one (accuracy, F1).
    """

    def __init__(self, optimizer: torch.optim.Optimizer | Optimizers, config: ScheduleConfig,
                 minimize: bool = True):
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
