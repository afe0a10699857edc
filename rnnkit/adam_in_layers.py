"""Adam steps that the layers take themselves, where the work is already in cache: opt-in.

:class:`AdamInLayers` is an optimizer for two kinds of parameters whose plain Adam
step costs a pass over a large tensor every update:

- the weight (V, H) of a :class:`rnnkit.softmax.SoftmaxOutput`: its update is taken
  inside the layer's backward pass, block by block while each block of the gradient is
  in cache (float32/float64), or right after the two bfloat16 products under bfloat16
  autocast (then also writing the weight's bfloat16 copy for the next forward pass), so
  the (V, H) gradient is never stored;
- the tables of ``nn.Embedding(sparse=True)`` layers: each row takes the zero-gradient
  steps it missed when it is next looked up, in cache, with the same arithmetic as every
  step, so the values are bitwise those of the dense update of every row every step;
  an update costs the rows a batch uses, not a pass over the table.

Both give exactly the update of :class:`rnnkit.adam.Adam` (tested). Because the softmax
weight moves during ``backward()``, an update cannot be undone or rescaled afterwards,
so what needs that raises instead of giving a wrong result:

- gradient clipping and weight noise: :func:`rnnkit.train.fit` refuses them with an
  optimizer whose ``updates_in_backward`` is True;
- gradient accumulation: a second backward pass before :meth:`AdamInLayers.step` raises;
- a skipped update: when the loss is not finite the layer stores its gradient and takes
  no step, so skipping is exact; skipping after a finite loss (another gradient was not
  finite) raises in ``zero_grad``, as the weight has already moved;
- a tied weight (also used elsewhere), data-parallel training (gradients are averaged
  across processes only after ``backward``): refused when the optimizer is built.

Read or write a deferred table's weight only through the module (its forward pass,
``state_dict``, ``load_state_dict``) or after :meth:`AdamInLayers.catch_up`.

Example:
    >>> dense = Adam([p for n, p in model.named_parameters() if n not in ("out.weight", "embed.weight")])
    >>> in_layers = AdamInLayers(softmax=model.out, tables=[model.embed])
    >>> optimizer = Optimizers([dense, in_layers])      # rnnkit.optim; build_optimizer does this
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rnnkit.adam import advance, zero_grad
from rnnkit.kernels import fused
from rnnkit.softmax import SoftmaxOutput

BLOCK_ELEMENTS = 131072  # the fused backward works through the weight in blocks of this many values


class AdamInLayers(torch.optim.Optimizer):
    """Adam (``decoupled=False``, L2 weight decay) or AdamW over a softmax layer's weight and
    embedding tables, each updated inside its layer (the module docstring). CPU tensors and
    rnnkit's compiled extension. ``history``: a deferred row catches up at most this many
    steps at once; after that many steps every row is brought up to date."""

    updates_in_backward = True  # the training loop reads this: no clipping, no weight noise

    def __init__(self, softmax: SoftmaxOutput | None = None, tables: Sequence[nn.Embedding] = (), lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled: bool = False, history: int = 1024):
        if fused.extension() is None:
            raise ValueError("AdamInLayers needs rnnkit's compiled extension (it is not available)")
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            raise ValueError("AdamInLayers updates inside the backward pass, before data-parallel training "
                             "averages the gradients: use Adam")
        if history < 1:
            raise ValueError(f"history must be >= 1; got {history}")
        tables = list(tables)
        for table in tables:
            w = table.weight
            if not isinstance(table, nn.Embedding) or not table.sparse or w.device.type != "cpu" \
                    or not w.is_contiguous():
                raise ValueError("AdamInLayers' tables are nn.Embedding(sparse=True) layers on the CPU")
        params = [t.weight for t in tables]
        if softmax is not None:
            w = softmax.weight
            if w.device.type != "cpu" or w.dtype not in (torch.float32, torch.float64) or not w.is_contiguous():
                raise ValueError("AdamInLayers' softmax weight must be a contiguous float32/float64 CPU tensor")
            if any(w is p for p in params):
                raise ValueError("the softmax weight is tied to a table: it cannot take its step in the backward "
                                 "pass; use Adam")
            if softmax.update is not None:
                raise ValueError("this softmax layer's weight is already updated by another AdamInLayers")
            params.append(w)
        if not params:
            raise ValueError("AdamInLayers needs a softmax layer or at least one table")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "decoupled": decoupled})
        self.in_backward = _InBackwardStep(self, softmax.weight) if softmax is not None else None
        if softmax is not None:
            softmax.update = self.in_backward
        self.deferred = {id(t.weight): _DeferredRows(self, t, history) for t in tables}

    def hyper(self) -> tuple[float, float, float, float, float, bool]:
        """(lr, beta1, beta2, eps, weight_decay, decoupled) of the one parameter group."""
        g = self.param_groups[0]
        return (g["lr"], *g["betas"], g["eps"], g["weight_decay"], g["decoupled"])

    @torch.no_grad()
    def step(self, closure=None):
        kernel = fused.extension()
        for p in self.param_groups[0]["params"]:
            grad = p.grad
            if self.in_backward is not None and p is self.in_backward.param:
                if self.in_backward.taken(grad) or grad is None:
                    continue  # updated in the backward pass, or not used
                state = advance(self.state[p], p)  # the layer stored its gradient instead (it could not fuse)
                kernel.adam_step([p], [grad.contiguous()], [state["exp_avg"]], [state["exp_avg_sq"]],
                                 [int(state["step"])], *self.hyper())
                continue
            if grad is not None:
                self.deferred[id(p)].step(kernel, grad, advance(self.state[p], p))

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.in_backward is not None and self.in_backward.pending:
            self.in_backward.pending = False
            raise RuntimeError("an update was skipped (zero_grad without step) after the softmax weight had taken its "
                               "step in the backward pass (AdamInLayers): a non-finite gradient elsewhere? Lower the "
                               "learning rate, or train with Adam and clipping")
        zero_grad(self, set_to_none)

    def catch_up(self) -> None:
        """Bring every row of every deferred table up to date."""
        for deferred in self.deferred.values():
            deferred.catch_up()

    def state_dict(self) -> dict:
        self.catch_up()  # the moments saved are every row's
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for deferred in self.deferred.values():
            deferred.restart()


class _InBackwardStep:
    """The softmax weight's Adam step, taken by the layer's backward pass (its ``update`` slot)."""

    def __init__(self, optimizer: AdamInLayers, param: nn.Parameter):
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
        (the layer then stores the gradient)."""
        p, kernel = self.param, fused.extension()
        low = g.dtype == hs.dtype == w.dtype == torch.bfloat16 and p.dtype == torch.float32
        if p.grad is not None or not (low or g.dtype == p.dtype):
            return None
        if self.pending:
            raise RuntimeError("a second backward pass through the softmax layer before step(): its weight takes "
                               "an update in every backward pass (AdamInLayers), so gradients cannot be "
                               "accumulated; use Adam")
        state = advance(self.optimizer.state[p], p)
        step = (int(state["step"]), *self.optimizer.hyper())
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

    def taken(self, grad: Tensor | None) -> bool:
        """Whether this update was taken in the backward pass (called by ``step``)."""
        pending, self.pending = self.pending, False
        if not pending:
            self.low_version = -1  # step() updates the weight: the bfloat16 copy goes stale
        if pending and grad is not None:
            raise RuntimeError("the softmax weight took its step in the backward pass (AdamInLayers) but also got a "
                               "gradient from elsewhere (a tied weight?): its update would be split in two")
        return pending

    def __reduce__(self):  # a pickled or copied layer does not carry the optimizer along
        return (_nothing, ())


def _nothing() -> None:
    return None


class _DeferredRows:
    """A table whose rows take Adam's zero-gradient steps when next read: row ``r`` is at
    step ``current[r]``; ``history`` holds the constants of steps ``base + 1`` on (one row
    each, written by the C++ step)."""

    def __init__(self, optimizer: AdamInLayers, table: nn.Embedding, steps: int):
        self.optimizer, self.param = optimizer, table.weight
        self.history = torch.empty(steps, 9, dtype=self.param.dtype)
        self.current = torch.empty(self.param.shape[0], dtype=torch.long)
        self.restart()
        self.hooks = [table.register_forward_pre_hook(_Hook(self.before_lookup)),
                      table.register_state_dict_pre_hook(_Hook(self.catch_up)),
                      table.register_load_state_dict_pre_hook(_Hook(self.catch_up))]

    def _state(self) -> dict:
        return self.optimizer.state[self.param]

    def restart(self) -> None:
        """Every row taken as up to date (a new table, or a state just loaded)."""
        state = self._state()
        self.base = int(state["step"]) if state else 0
        self.current.fill_(self.base)

    def _bring(self, kernel, to: int, rows: Tensor | None) -> None:
        state = self._state()
        kernel.adam_catch_up(self.param.detach(), state["exp_avg"], state["exp_avg_sq"], self.current, self.history,
                             self.base, to, rows)

    def before_lookup(self, table: nn.Embedding, args: tuple) -> None:
        self._bring_current(args[0])

    def catch_up(self, *_) -> None:
        self._bring_current(None)

    def _bring_current(self, rows: Tensor | None) -> None:
        """``rows`` (or every row, which moves the history's start) up to the last step."""
        state = self._state()
        step = int(state["step"]) if state else 0
        if step > self.base:
            self._bring(fused.extension(), step, rows)
            if rows is None:
                self.base = step

    def step(self, kernel, grad: Tensor, state: dict) -> None:
        """The update of step ``state["step"]`` (already counted)."""
        t, p = int(state["step"]), self.param
        if t - self.base > len(self.history) or not grad.is_sparse:  # every row up to the step before
            self._bring(kernel, t - 1, None)
            self.base = t - 1
        hyper = self.optimizer.hyper()
        if grad.is_sparse:
            kernel.adam_deferred_step(p, grad._indices()[0], grad._values(), state["exp_avg"], state["exp_avg_sq"],
                                      self.current, self.history, self.base, t, *hyper)
            return
        kernel.adam_step([p], [grad.contiguous()], [state["exp_avg"]], [state["exp_avg_sq"]], [t], *hyper)
        self.current.fill_(t)
        self.base = t


class _Hook:
    """A module hook that calls a method of its optimizer's bookkeeping; pickled or copied
    with the module, it becomes one that does nothing (the optimizer stays behind)."""

    def __init__(self, method):
        self.method = method

    def __call__(self, *args):
        self.method(*args)

    def __reduce__(self):
        return (_Hook, (_ignore,))


def _ignore(*_) -> None:
    return None
