"""Data-parallel training with torch.distributed (DistributedDataParallel).

A run started by ``torchrun`` (or by ``rnnkit --nproc N``, which calls
torchrun's launcher) finds RANK, WORLD_SIZE and LOCAL_RANK in its
environment; :func:`init_world` joins the process group (gloo on CPU, nccl on
GPU) and :func:`wrap` wraps the model. Each rank trains on its own shard of
every epoch's batches (see :mod:`rnnkit.batch`); losses are summed on every
rank and divided by the token count of the whole global batch, so N ranks
compute the gradient that one process computes on the union of their batches.

Multi-node: run on every node
``torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d
--rdzv-endpoint HOST:PORT -m rnnkit.cli TASK train ...`` with the same
arguments; only rank 0 writes logs and checkpoints, every rank resumes from
them (put ``--out`` on a shared file system).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, value: float) -> float:
        """``value`` summed over every rank (itself, in a single process)."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())


    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is True on any rank (itself, in a single process): a decision every
        rank must take together, such as stopping at a time budget."""
        if self.size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


SINGLE = World()  # a world of one process (World is immutable)


def init_world(device: str = "cpu") -> World:
    """Join the process group if launched by torchrun, else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(world: World, device: str) -> str:
    """Each rank's own GPU (cuda:LOCAL_RANK) when training on cuda."""
    return f"cuda:{world.local_rank}" if device == "cuda" and world.size > 1 else device


def wrap(model: nn.Module, world: World) -> nn.Module:
    if world.size == 1:
        return model
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def finish(world: World) -> None:
    """Leave the process group, every rank together: a rank that tore its connections down
    while another still wrote its model could abort the other's transport threads."""
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
