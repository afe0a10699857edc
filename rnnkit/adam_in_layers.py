"""Adam whose largest updates the layers take themselves, where the work is in cache: opt-in.

:class:`AdamInLayers` is rnnkit's :class:`~rnnkit.adam.Adam` over a model's parameters
(the same groups and options), in which two kinds of parameter, whose plain step costs
a pass over a large tensor every update, are updated inside their layers:

- the weight (V, H) of a :class:`rnnkit.softmax.SoftmaxOutput`: its update is taken
  inside the layer's backward pass, block by block while each block of the gradient is
  in cache (float32/float64), or right after the two bfloat16 products under bfloat16
  autocast (then also writing the weight's bfloat16 copy for the next forward pass), so
  the (V, H) gradient is never stored;
- the tables of ``nn.Embedding(sparse=True)`` layers, with the dense rule: each row takes
  the zero-gradient steps it missed when it is next looked up, in cache, with the same
  arithmetic as every step, so the values are bitwise those of the dense update of every
  row every step; an update costs the rows a batch uses, not a pass over the table.

Both give exactly Adam's update (tested). Because the softmax weight moves during
``backward()``, an update cannot be undone or rescaled afterwards, so what needs that
raises instead of giving a wrong result:

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
    >>> optimizer = AdamInLayers(model.parameters(), softmax=model.out, tables=[model.embed], lr=1e-3)
    >>> # build_optimizer(model, OptimizerConfig(in_layers=True)) finds the layers itself
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rnnkit.adam import advance, hyper, update, zero_grad
from rnnkit.kernels import fused
from rnnkit.softmax import SoftmaxOutput

BLOCK_ELEMENTS = 131072  # the fused backward works through the weight in blocks of this many values


class AdamInLayers(torch.optim.Optimizer):
    """:class:`rnnkit.adam.Adam` (``decoupled=False``: L2 weight decay; True: AdamW; ``lazy``:
    the rule for sparse gradients of tables not given here) over ``params``, with the weight
    of ``softmax`` and the ``tables`` (which must be among ``params``) updated inside their
    layers (the module docstring). CPU tensors and rnnkit's compiled extension.
    ``history``: a deferred row catches up at most this many steps at once; after that
    many steps every row of its table is brought up to date."""

    updates_in_backward = True  # the training loop reads this: no clipping, no weight noise

    def __init__(self, params, softmax: SoftmaxOutput | None = None, tables: Sequence[nn.Embedding] = (),
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False, lazy: bool = True, history: int = 1024):
        if fused.extension() is None:
            raise ValueError("AdamInLayers needs rnnkit's compiled extension (it is not available)")
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            raise ValueError("AdamInLayers updates inside the backward pass, before data-parallel training "
                             "averages the gradients: use Adam")
        if history < 1:
            raise ValueError(f"history must be >= 1; got {history}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "decoupled": decoupled, "lazy": lazy})
        groups = {id(p): g for g in self.param_groups for p in g["params"]}
        tables = list(tables)
        for table in tables:
            w = table.weight
            if not isinstance(table, nn.Embedding) or not table.sparse or w.device.type != "cpu" \
                    or not w.is_contiguous():
                raise ValueError("AdamInLayers' tables are nn.Embedding(sparse=True) layers on the CPU")
            if id(w) not in groups:
                raise ValueError("a table given to AdamInLayers must be among its parameters")
        self.in_backward = None
        if softmax is not None:
            w = softmax.weight
            if w.device.type != "cpu" or w.dtype not in (torch.float32, torch.float64) or not w.is_contiguous():
                raise ValueError("AdamInLayers' softmax weight must be a contiguous float32/float64 CPU tensor")
            if id(w) not in groups:
                raise ValueError("the softmax weight given to AdamInLayers must be among its parameters")
            if any(w is t.weight for t in tables):
                raise ValueError("the softmax weight is tied to a table: it cannot take its step in the backward "
                                 "pass; use Adam")
            if softmax.update is not None:
                raise ValueError("this softmax layer's weight is already updated by another AdamInLayers")
            self.in_backward = softmax.update = _InBackwardStep(self, w, groups[id(w)])
        self.deferred = {id(t.weight): _DeferredRows(self, t, groups[id(t.weight)], history) for t in tables}

    @torch.no_grad()
    def step(self, closure=None):
        kernel = fused.extension()
        softmax = self.in_backward.param if self.in_backward is not None else None
        for group in self.param_groups:
            rest = []
            for p in group["params"]:
                if p is softmax:
                    if not self.in_backward.taken(p.grad):  # the layer stored its gradient (it could not fuse)
                        update(kernel, group, [p], self.state)
                elif id(p) in self.deferred:
                    if p.grad is not None:
                        self.deferred[id(p)].step(kernel, p.grad, advance(self.state[p], p))
                else:
                    rest.append(p)
            update(kernel, group, rest, self.state)

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

    def __init__(self, optimizer: AdamInLayers, param: nn.Parameter, group: dict):
        self.optimizer, self.param, self.group, self.pending = optimizer, param, group, False
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
        step = (int(state["step"]), *hyper(self.group))
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

    def __init__(self, optimizer: AdamInLayers, table: nn.Embedding, group: dict, steps: int):
        self.optimizer, self.param, self.group = optimizer, table.weight, group
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
        if grad.is_sparse:
            kernel.adam_deferred_step(p, grad._indices()[0], grad._values(), state["exp_avg"], state["exp_avg_sq"],
                                      self.current, self.history, self.base, t, *hyper(self.group))
            return
        kernel.adam_step([p], [grad.contiguous()], [state["exp_avg"]], [state["exp_avg_sq"]], [t], *hyper(self.group))
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
