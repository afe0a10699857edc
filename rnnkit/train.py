"""The training loop: full or truncated BPTT over batches, with callbacks.

``fit`` reads top to bottom: for each epoch, for each batch, for each chunk of
``bptt`` steps (one chunk of the whole batch for full BPTT): forward with the
carried state detached, backward, clip, update; non-finite updates are
skipped and counted; callbacks log, evaluate, schedule, stop early and
checkpoint. The position (epoch, batch, chunk) and the carried state live in
:class:`FitState`, which checkpoints save and resumption restores; a run stops
(time budget, a callback's request) after any update, inside a long batch too,
and a checkpoint taken there resumes at the next chunk.

Truncated BPTT (Williams & Peng 1990) is implemented here once: ``bptt = k`` means an
update every k steps, the state carried into the next chunk detached. With
``carry_state`` the state also carries from one batch into the next (a stream cut
into consecutive batches of rows, :class:`rnnkit.loader.StreamLoader`).

The optimizer is anything with ``step()`` and ``zero_grad()``. One that updates some
weights inside the backward pass declares ``updates_in_backward = True``
(:class:`rnnkit.adam_in_layers.AdamInLayers`): its gradients cannot be clipped or
computed on noisy weights, so ``fit`` refuses those settings with it.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from rnnkit.batch import Batch
from rnnkit.distributed import SINGLE, World
from rnnkit.optim import weight_noise
from rnnkit.settings import COUNT, NATURAL, NONNEGATIVE, POSITIVE, SettingError, check, setting


@dataclass
class StepOutput:
    """What an objective returns for one batch or chunk."""

    loss: Tensor  # the loss SUMMED over what was scored (the loop divides by the global count)
    count: int  # how many predictions were scored (tokens, sequences)
    state: Any = None  # the recurrent state after this chunk, to carry forward


class Objective(Protocol):
    def __call__(self, model: nn.Module, batch: Batch, state: Any) -> StepOutput: ...


class Loader(Protocol):
    def epoch(self, epoch: int) -> Sequence[Any]: ...
    def batch(self, key: Any) -> Batch: ...


class Precision(enum.Enum):
    """Arithmetic of the forward and backward pass. BFLOAT16 runs matrix products
    in bfloat16 under ``torch.autocast`` (AMX or AVX512-BF16 where the CPU has them)
    while the weights, the optimizer, the losses and the recurrent kernels stay float32."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"

    def autocast(self, device: str) -> contextlib.AbstractContextManager:
        if self is Precision.FLOAT32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


class NoiseDraw(enum.Enum):
    """How often weight noise is drawn. UPDATE: once per update, shared by every sequence of
    the batch. SEQUENCE: once per training sequence, as Graves et al. 2013 do: the update's
    gradient is the sum of each sequence's gradient on its own noisy weights, so the batch
    runs one sequence at a time (exact, but without the batch's parallelism)."""

    UPDATE = "update"
    SEQUENCE = "sequence"


@dataclass(frozen=True)
class FitConfig:
    epochs: int = setting(10, COUNT)  # passes over the training data
    max_minutes: float | None = setting(None, POSITIVE)  # stop (and checkpoint) once this run has trained this long
    bptt: int | None = setting(None, COUNT)  # truncated BPTT: update every k steps; None = full BPTT per batch
    carry_state: bool = False  # carry the final state from one batch into the next (one stream)
    clip_norm: float | None = setting(None, POSITIVE)  # rescale gradients whose global L2 norm exceeds this
    clip_value: float | None = setting(None, POSITIVE)  # clamp every gradient element to [-v, v]
    weight_noise: float = setting(0.0, NONNEGATIVE)  # std of Gaussian weight noise (Graves 2013)
    weight_noise_per: NoiseDraw = NoiseDraw.UPDATE  # a draw per update, or per training sequence
    max_bad_steps: int = setting(10, NATURAL)  # consecutive non-finite updates that stop training
    device: str = "cpu"
    precision: Precision = Precision.FLOAT32

    def __post_init__(self) -> None:
        check(self)
        if not isinstance(self.weight_noise_per, NoiseDraw):
            object.__setattr__(self, "weight_noise_per", NoiseDraw(self.weight_noise_per))
        if self.weight_noise_per is NoiseDraw.SEQUENCE and (self.bptt is not None or self.carry_state):
            raise SettingError("weight_noise_per", "sequence draws once per whole sequence: it needs full BPTT over "
                                            "separate sequences (no --bptt, no stream)")

    @property
    def per_sequence_noise(self) -> bool:
        return self.weight_noise > 0 and self.weight_noise_per is NoiseDraw.SEQUENCE


class TrainingDiverged(RuntimeError):
    """Too many consecutive updates had a non-finite loss or gradient."""


class Stop(enum.Enum):
    """Why a run ended before its last epoch."""

    BUDGET = "budget"  # FitConfig.max_minutes of training in this run
    EARLY = "early"  # the dev metric stopped improving
    REQUEST = "request"  # a callback asked (an interrupt)


@dataclass
class FitState:
    """Where training is: what a checkpoint saves, what a resumed run restores."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch completed
    chunk: int = 0  # updates (bptt chunks) of the current batch completed; 0 between batches
    step: int = 0  # updates applied
    skipped: int = 0  # non-finite updates skipped in total
    bad_in_row: int = 0
    carried: Any = None  # recurrent state carried to the next chunk (mid-batch) or batch (carry_state)
    metrics: dict[str, float] = field(default_factory=dict)  # latest evaluation results
    history: list[dict[str, float]] = field(default_factory=list)  # one record per epoch
    stop: bool = False  # set by a callback, or by the time budget
    stopped: Stop | None = None  # why, when the run ends early (not saved: a resumed run goes on)
    noise: torch.Generator = field(default_factory=torch.Generator)  # weight-noise draws
    elapsed: float = 0.0  # training seconds over this run and the runs it resumes

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "chunk": self.chunk, "step": self.step,
                "skipped": self.skipped,
                "bad_in_row": self.bad_in_row, "carried": self.carried, "metrics": dict(self.metrics),
                "history": list(self.history), "noise": self.noise.get_state(), "elapsed": self.elapsed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitState:
        state = cls(**{k: v for k, v in d.items() if k != "noise"})
        state.noise.set_state(d["noise"])
        return state


@dataclass(frozen=True)
class StepRecord:
    """What one update (one chunk of a batch) reports to the callbacks."""

    loss: float  # mean loss per scored prediction of the chunk (on this process)
    count: int  # predictions scored
    grad_norm: float  # global L2 norm of the gradient, before clipping
    tokens: int  # real input steps of the chunk
    finite: bool  # False: the loss or gradient was not finite and the update was skipped
    indices: list[int] | None  # the dataset positions of the batch's sequences (for logs)


class Callback:
    """Hooks of the loop; override those you need. ``on_batch_start`` and ``on_batch_end``
    bracket the updates of one batch (a profiler, a process setting per batch); then
    ``on_step`` receives each of the batch's update records, with the position past the batch
    (so that a checkpoint taken there resumes at the next batch)."""

    def on_batch_start(self, fit: FitState, batch: Batch) -> None: ...

    def on_step(self, fit: FitState, record: StepRecord) -> None: ...

    def on_batch_end(self, fit: FitState, batch: Batch) -> None: ...

    def on_epoch_end(self, fit: FitState) -> None: ...

    def on_end(self, fit: FitState) -> None: ...


def detach(state: Any) -> Any:
    """The state with every tensor cut from the graph (truncated BPTT)."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach(s) for s in state)
    return state


def _chunks(batch: Batch, bptt: int | None) -> list[Batch]:
    T = batch.inputs.shape[1]
    if bptt is None or bptt >= T:
        return [batch]
    return [batch.chunk(start, min(start + bptt, T)) for start in range(0, T, bptt)]


def _clip(params: list[Tensor], config: FitConfig) -> float:
    """Clip as configured; returns the global gradient norm before norm clipping.

    Sparse gradients (embedding tables with sparse updates) are coalesced and
    clipped on their stored values, so they count once per row they touch.
    """
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.coalesce()
    grads = [p.grad for p in params if p.grad is not None]
    values = [g._values() if g.is_sparse else g for g in grads]  # the numbers each gradient stores
    if config.clip_value is not None:
        for v in values:
            v.clamp_(-config.clip_value, config.clip_value)
    if not values:
        return 0.0
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in values]))
    if config.clip_norm is not None:
        coef = torch.clamp(config.clip_norm / (norm + 1e-6), max=1.0)
        for v in values:
            v.mul_(coef)
    return float(norm)


def check_optimizer(optimizer, config: FitConfig) -> None:
    """Settings that change gradients after the backward pass cannot go with an optimizer
    that updates weights inside it."""
    if not getattr(optimizer, "updates_in_backward", False):
        return
    for name, value in (("clip_norm", config.clip_norm), ("clip_value", config.clip_value),
                        ("weight_noise", config.weight_noise or None)):
        if value is not None:
            raise ValueError(f"{name} cannot be combined with an optimizer that updates weights inside the backward "
                             f"pass ({type(optimizer).__name__}); use Adam")


def _per_sequence(model: nn.Module, objective: Objective, batch: Batch, params: list[Tensor], fit: FitState,
                  config: FitConfig, world: World) -> tuple[StepOutput, float]:
    """Forward and backward each sequence of ``batch`` on its own draw of weight noise; the
    gradients sum, then scale to the mean over the global batch, as one pass over the batch
    does. Under DDP only the last sequence's backward pass reduces across ranks."""
    loss, count = torch.zeros(()), 0
    for b in range(batch.size):
        sync = b == batch.size - 1 or not isinstance(model, nn.parallel.DistributedDataParallel)
        with (contextlib.nullcontext() if sync else model.no_sync()), \
                weight_noise(model, config.weight_noise, fit.noise), config.precision.autocast(config.device):
            out = objective(model, batch.select([b]), None)
            out.loss.backward()
        loss, count = loss + out.loss.detach().float().cpu(), count + out.count
    total = world.sum(count)
    scale = world.size / max(total, 1)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale)
    return StepOutput(loss, count, None), total


def train_chunk(model: nn.Module, objective: Objective, optimizer, chunk: Batch, state: Any,
                fit: FitState, config: FitConfig, world: World = SINGLE) -> tuple[Any, StepRecord]:
    """One update: forward from ``state`` (detached), backward, clip, step; returns the state
    after the chunk and the update's record.

    The update minimises the chunk's summed loss divided by the number of predictions
    scored over all ranks: the mean over the global batch.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.per_sequence_noise:
        out, total = _per_sequence(model, objective, chunk, params, fit, config, world)
    else:
        with weight_noise(model, config.weight_noise, fit.noise), config.precision.autocast(config.device):
            out = objective(model, chunk, detach(state))
            total = world.sum(out.count)
            # DDP averages gradients over ranks: scale by the world size to get the global mean
            (out.loss * (world.size / max(total, 1))).backward()
    norm = _clip(params, config)
    loss = float(out.loss.detach()) / max(out.count, 1)
    finite = math.isfinite(norm) and math.isfinite(loss)
    if finite and total > 0:
        optimizer.step()
        fit.step += 1
        fit.bad_in_row = 0
    else:
        fit.skipped += 1
        fit.bad_in_row += 1
    optimizer.zero_grad(set_to_none=True)
    record = StepRecord(loss, out.count, norm, chunk.tokens, finite,
                        None if chunk.indices is None else chunk.indices.tolist())
    if fit.bad_in_row > config.max_bad_steps:
        raise TrainingDiverged(f"{fit.bad_in_row} updates in a row had a non-finite loss or gradient "
                               f"(last: epoch {fit.epoch + 1}, batch {fit.batch + 1}, "
                               f"sequences {record.indices}); lower the learning rate or clip")
    return out.state, record


def train_batch(model: nn.Module, objective: Objective, optimizer, batch: Batch, state: Any,
                fit: FitState, config: FitConfig, world: World = SINGLE) -> tuple[Any, list[StepRecord]]:
    """All the updates of one batch (one per chunk); returns the state after it and a record per update."""
    records = []
    for chunk in _chunks(batch, config.bptt):
        state, record = train_chunk(model, objective, optimizer, chunk, state, fit, config, world)
        records.append(record)
    return state, records


def fit(model: nn.Module, objective: Objective, loader: Loader, optimizer, config: FitConfig,
        callbacks: Sequence[Callback] = (), state: FitState | None = None, world: World = SINGLE,
        clock: Callable[[], float] = time.monotonic) -> FitState:
    """Train ``model`` until ``config.epochs`` are done, this run has trained
    ``config.max_minutes`` or a callback sets ``stop``. Pass the ``state`` of a
    checkpoint to resume (the budget counts this run's time only)."""
    check_optimizer(optimizer, config)
    fit_state = state or FitState()
    start, before = clock(), fit_state.elapsed
    model.train()
    while fit_state.epoch < config.epochs and not fit_state.stop:
        keys = loader.epoch(fit_state.epoch)
        while fit_state.batch < len(keys) and not fit_state.stop:
            batch = loader.batch(keys[fit_state.batch]).to(config.device)
            chunks = _chunks(batch, config.bptt)
            state = fit_state.carried if config.carry_state or fit_state.chunk else None
            for cb in callbacks:
                cb.on_batch_start(fit_state, batch)
            done = False
            while not done and not fit_state.stop:
                state, record = train_chunk(model, objective, optimizer, chunks[fit_state.chunk], state, fit_state,
                                            config, world)
                fit_state.chunk += 1
                done = fit_state.chunk == len(chunks)
                if done:  # the position past the batch
                    fit_state.batch, fit_state.chunk = fit_state.batch + 1, 0
                fit_state.carried = detach(state) if config.carry_state or fit_state.chunk else None
                now = clock() - start
                fit_state.elapsed = before + now
                if config.max_minutes is not None and now > 60 * config.max_minutes:
                    fit_state.stop, fit_state.stopped = True, Stop.BUDGET
                for cb in callbacks:
                    cb.on_step(fit_state, record)
                if world.any(fit_state.stop):  # every rank stops after the same update
                    fit_state.stop = True
                    fit_state.stopped = fit_state.stopped or Stop.REQUEST
            for cb in callbacks:
                cb.on_batch_end(fit_state, batch)
        if fit_state.batch >= len(keys):  # a whole epoch, not a stop in the middle
            fit_state.epoch += 1
            fit_state.batch = 0
            fit_state.carried = None
            model.eval()
            for cb in callbacks:
                cb.on_epoch_end(fit_state)
            model.train()
    for cb in callbacks:
        cb.on_end(fit_state)
    return fit_state
