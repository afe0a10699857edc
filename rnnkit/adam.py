"""rnnkit's Adam family on the CPU, each update one call into the C++ extension
(``kernels/csrc/optim.cpp``): :class:`Adam` (torch's Adam or AdamW, tested equal),
with a table's dense update from its used rows' gradient, deferred per row
(:meth:`Adam.defer_rows`), or fused into the softmax's backward pass
(:meth:`Adam.step_in_backward`); :class:`LazyAdam`, DyNet's update of the used
rows only. :mod:`rnnkit.optim` chooses among them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from rnnkit.kernels import fused


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

    def defer_rows(self, table: nn.Embedding, history: int = 1024) -> None:
        """Give ``table`` (``nn.Embedding(sparse=True)``, in a ``lazy=False`` group) exactly its
        dense update at the cost of the rows each batch uses: a row takes the zero-gradient
        steps it missed (its moments decaying, its values moving) when it is next looked up,
        in cache, with the same arithmetic as every step, so the values are bitwise those of
        ``step()`` without deferral. Each update then costs the used rows, not a pass over
        the table at memory speed. The rows are brought up to date by the table's forward
        pass, its ``state_dict`` and ``load_state_dict``, this optimizer's ``state_dict``,
        :meth:`catch_up`, and every ``history`` steps. Read or write the weight only through
        these (call :meth:`catch_up` before pickling the model or reading the weight
        directly); a table tied to another layer gets a dense gradient, and then every row
        is updated every step."""
        p = table.weight if isinstance(table, nn.Embedding) else None
        group = next((g for g in self.param_groups if any(p is q for q in g["params"])), None)
        if p is None or not table.sparse or group is None or group["lazy"] or p.device.type != "cpu" \
                or not p.is_contiguous() or fused.extension() is None:
            raise ValueError("defer_rows: an nn.Embedding(sparse=True) on the CPU whose weight is in one of this "
                             "optimizer's groups with lazy=False (and rnnkit's compiled extension)")
        if history < 1:
            raise ValueError(f"defer_rows: history must be >= 1; got {history}")
        if getattr(p, "rnnkit_step_in_backward", None) is not None or id(p) in self._deferred_tables():
            raise ValueError("defer_rows: this table already has a special update")
        self._deferred_tables()[id(p)] = _DeferredRows(self, table, history)

    def catch_up(self) -> None:
        """Bring every row of the tables given to :meth:`defer_rows` up to date."""
        for deferred in self._deferred_tables().values():
            deferred.catch_up()

    def _deferred_tables(self) -> dict[int, _DeferredRows]:
        if not hasattr(self, "_deferred"):  # made here: an unpickled optimizer defers nothing
            self._deferred: dict[int, _DeferredRows] = {}
        return self._deferred

    def state_dict(self) -> dict:
        self.catch_up()  # the moments saved are every row's
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for deferred in self._deferred_tables().values():
            deferred.restart()

    def __setstate__(self, state: dict) -> None:  # states saved before ``lazy`` existed
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("lazy", True)

    def _patch_step_function(self) -> None:
        """torch wraps every optimizer's step() in a profiler region and a loop over its step
        hooks, ~50 µs a call: more than this optimizer's own work in a one-sentence update.
        step() takes that path only when it has something to do (a profiler on, a hook)."""
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{type(self).__name__}.zero_grad"

    def step(self, closure=None):
        if torch.autograd._profiler_enabled() or _has_step_hooks(self):
            return _profiled_update(self)
        return self._update()

    @torch.no_grad()
    def _update(self):
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
                if not p.is_cpu:  # (p.device costs more than the rest of the loop)
                    raise ValueError("rnnkit.adam.Adam updates CPU tensors; use torch.optim.Adam on other devices")
                state = _advance(self.state[p], p)
                deferred = self._deferred_tables().get(id(p))
                if deferred is not None:
                    deferred.step(kernel, grad, state, group)
                    continue
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


def _has_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a step hook is registered on ``optimizer`` or on every optimizer."""
    return bool(optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                or _global_optimizer_pre_hooks or _global_optimizer_post_hooks)


_profiled_update = torch.optim.Optimizer.profile_hook_step(Adam._update)  # torch's step(): region, hooks


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


class _DeferredRows:
    """A table whose rows take Adam's zero-gradient steps when next read (:meth:`Adam.defer_rows`):
    row ``r`` is at step ``current[r]``; ``history`` holds the constants of steps ``base + 1``
    on (one row each, written by the C++ step)."""

    def __init__(self, optimizer: Adam, table: nn.Embedding, steps: int):
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

    def step(self, kernel, grad: Tensor, state: dict, group: dict) -> None:
        """The update of step ``state["step"]`` (already counted)."""
        t, p = int(state["step"]), self.param
        if t - self.base > len(self.history) or not grad.is_sparse:  # every row up to the step before
            self._bring(kernel, t - 1, None)
            self.base = t - 1
        beta1, beta2 = group["betas"]
        hyper = (group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["decoupled"])
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
