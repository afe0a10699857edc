"""Data-parallel training on the toy parity task: used by test_distributed.py."""

from __future__ import annotations

import os
import sys
import time

import torch

from rnnkit import LSTM
from rnnkit.batch import BatchingConfig
from rnnkit.distributed import SINGLE, finish, init_world, wrap
from rnnkit.loader import SequenceLoader
from rnnkit.tasks.toys import Problem, SequenceModel, collate, make_dataset, make_objective
from rnnkit.train import FitConfig, fit

DATA = make_dataset(Problem.PARITY, 48, 1, 15, seed=0)
CONFIG = BatchingConfig(batch_size=4, seed=0)


def model_and_optimizer():
    torch.manual_seed(0)
    model = SequenceModel(LSTM(1, 6, 2), 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)


class MergedLoader:
    """One process seeing, at step k, the union of the batches that ranks 0..W-1 see at step k."""

    def __init__(self, world_size: int):
        self.shards = [SequenceLoader(DATA, [len(x) for x, _ in DATA], collate, CONFIG, r, world_size)
                       for r in range(world_size)]

    def epoch(self, epoch):
        per_rank = [s.epoch(epoch) for s in self.shards]
        return [sum((p[k] for p in per_rank), []) for k in range(len(per_rank[0]))]

    def batch(self, key):
        return self.shards[0].batch(key)


def run_single(world_size: int) -> list[torch.Tensor]:
    model, opt = model_and_optimizer()
    fit(model, make_objective(Problem.PARITY), MergedLoader(world_size), opt, FitConfig(epochs=2), [], None, SINGLE)
    return [p.detach().clone() for p in model.parameters()]


def main(out: str, budget: bool = False) -> None:
    """Train on this rank's shard and save rank 0's weights to ``out``. With ``budget``, a time
    budget of 3 "seconds" on clocks that tick once per batch on rank 0 and twice on rank 1:
    the ranks must stop together (at rank 1's third batch), else a collective would hang."""
    torch.set_num_threads(1)
    world = init_world("cpu")
    model, opt = model_and_optimizer()
    loader = SequenceLoader(DATA, [len(x) for x, _ in DATA], collate, CONFIG, world.rank, world.size)
    ddp = wrap(model, world)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5, momentum=0.9)
    ticks = iter(range(0, 10**6, 1 + world.rank))
    config = FitConfig(epochs=2, max_minutes=3 / 60 if budget else None)
    state = fit(ddp, make_objective(Problem.PARITY), loader, opt, config, [], None, world,
                clock=(lambda: float(next(ticks))) if budget else time.monotonic)
    if world.is_main:
        torch.save({"weights": [p.detach().clone() for p in model.parameters()], "step": state.step}, out)
    finish(world)


if __name__ == "__main__":
    assert "WORLD_SIZE" in os.environ
    main(sys.argv[1], budget=len(sys.argv) > 2)
