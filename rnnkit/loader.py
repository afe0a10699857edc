"""Loaders: what the training loop iterates over, epoch by epoch.

A loader answers two questions: which batches make up epoch ``e`` (a list of
keys, fixed by the seed and the epoch, so that a resumed run sees the same
ones), and what batch a key stands for. Keys are plain values (lists of
dataset indices, or stream offsets) so that the position in the data is two
integers: the epoch and the number of batches done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rnnkit.batch import Batch, BatchingConfig, BucketSampler


class SequenceLoader:
    """Bucketed batches of a dataset of examples, collated on demand.

    Args:
        examples: any sequence of examples.
        lengths: the length of each example (what bucketing sorts by).
        collate: turns a list of examples and their indices into a Batch.
        config: batching rule; rank and world_size shard each epoch.
    """

    def __init__(self, examples: Sequence[Any], lengths: Sequence[int],
                 collate: Callable[[list[Any], list[int]], Batch], config: BatchingConfig,
                 rank: int = 0, world_size: int = 1):
        self.examples, self.collate = examples, collate
        self.sampler = BucketSampler(lengths, config, rank, world_size)

    def epoch(self, epoch: int) -> list[list[int]]:
        return self.sampler.epoch(epoch)

    def batch(self, key: list[int]) -> Batch:
        return self.collate([self.examples[i] for i in key], key)


class StreamLoader:
    """One long stream of ids for truncated BPTT with the state carried across
    batches (Zaremba et al. 2014): the stream is cut into B contiguous rows and
    each batch is the next k columns; inputs are ids[t], targets ids[t+1].
    Every epoch walks the rows from the start, in order (the state carries).

    With ``world_size`` processes, B is the global batch and this rank takes rows
    ``rank·B/W`` to ``(rank+1)·B/W``, carrying their state itself: the ranks together
    train on exactly the batches one process with B rows trains on."""

    def __init__(self, ids: Tensor, batch_size: int, bptt: int, rank: int = 0, world_size: int = 1):
        if ids.dim() != 1:
            raise ValueError(f"ids must have shape (N,); got {tuple(ids.shape)}")
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1; got {batch_size}, {bptt}")
        if batch_size % world_size:
            raise ValueError(f"the stream's batch size {batch_size} (rows, over all processes) must be a multiple "
                             f"of the {world_size} processes")
        n = (ids.numel() - 1) // batch_size
        if n < 1:
            raise ValueError(f"the stream of {ids.numel()} ids is too short for batch_size={batch_size}")
        rows = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
        self.inputs = ids[:n * batch_size].view(batch_size, n)[rows]  # (B / W, N)
        self.targets = ids[1:n * batch_size + 1].view(batch_size, n)[rows]  # (B / W, N)
        self.bptt = bptt

    def epoch(self, epoch: int) -> list[int]:
        return list(range(0, self.inputs.shape[1], self.bptt))

    def batch(self, start: int) -> Batch:
        x = self.inputs[:, start:start + self.bptt]  # (B, k)
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        return Batch(x, lengths, self.targets[:, start:start + self.bptt], indices=torch.tensor([start]))
