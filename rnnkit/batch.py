"""Padded batches with lengths, and the sampler that groups sequences into them.

Sequences are bucketed by length (as in Graves et al. 2013, Khomenko et al. 2016): sorted by length (ties in a
random order that changes each epoch), cut into consecutive batches by a token
budget (padding counted) or a sequence count, and the batch order shuffled
each epoch, reproducibly from (seed, epoch). For data-parallel training the
batches of an epoch are dealt round-robin to the ranks, and every rank gets the
same number (the list is padded by repeating its first batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from rnnkit.settings import COUNT, NATURAL, check, setting


def pad_sequences(sequences: Sequence[Tensor], value: float = 0) -> tuple[Tensor, Tensor]:
    """Stack sequences of shape (T_i, *) into (B, T, *) padded with ``value``; also
    returns their lengths (B,) as int64. An empty list gives (0, 0) shapes."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)  # (B,)
    if not sequences:
        return torch.zeros(0, 0), lengths
    T = int(lengths.max())
    first = sequences[0]
    out = first.new_full((len(sequences), T, *first.shape[1:]), value)  # (B, T, *)
    for b, s in enumerate(sequences):
        out[b, :len(s)] = s
    return out, lengths


@dataclass
class Batch:
    """A padded batch. ``inputs`` (B, T, *) with ``lengths`` (B,); ``targets`` per
    step (B, T, *), per sequence (B,), or a separate padded sequence (B, S) with
    ``target_lengths``; ``indices`` (B,) the dataset positions, the batch's
    identity in logs."""

    inputs: Tensor
    lengths: Tensor
    targets: Tensor | None = None
    target_lengths: Tensor | None = None
    indices: Tensor | None = None
    extra: dict[str, Tensor] | None = None  # task-specific tensors (e.g. characters of each word)
    extra_rows: tuple[str, ...] = ()  # the keys of extra that hold a row per sequence (B, ...); the others are shared

    @property
    def size(self) -> int:
        return self.inputs.shape[0]

    @property
    def tokens(self) -> int:
        """Real (unpadded) input steps in the batch."""
        return int(self.lengths.sum())

    @property
    def padding_fraction(self) -> float:
        cells = self.inputs.shape[0] * self.inputs.shape[1]
        return 1.0 - self.tokens / cells if cells else 0.0

    def to(self, device: torch.device | str) -> Batch:
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), Tensor)}
        if self.extra is not None:
            moved["extra"] = {k: v.to(device) for k, v in self.extra.items()}
        return replace(self, **moved)

    def select(self, rows: Sequence[int] | Tensor) -> Batch:
        """The sequences ``rows`` of the batch, in that order: every per-sequence tensor
        (inputs, lengths, targets, target_lengths, indices and the ``extra_rows``) indexed on
        its first dimension; the other extra tensors shared as they are."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.lengths.device)
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self)
                  if isinstance(getattr(self, f.name), Tensor)}
        if self.extra is not None:
            picked["extra"] = {k: v[index] if k in self.extra_rows else v for k, v in self.extra.items()}
        return replace(self, **picked)

    def chunk(self, start: int, stop: int) -> Batch:
        """Time steps [start, stop) of a batch whose targets are aligned with its
        inputs (truncated BPTT); lengths become the steps each sequence has there
        (0 for a sequence that has ended)."""
        if self.target_lengths is not None:
            raise ValueError("chunk needs per-step targets aligned with the inputs, not a separate sequence")
        lengths = (self.lengths - start).clamp(0, stop - start)
        targets = self.targets
        if targets is not None and targets.dim() >= 2:
            targets = targets[:, start:stop]
        return replace(self, inputs=self.inputs[:, start:stop], lengths=lengths, targets=targets)


@dataclass(frozen=True)
class BatchingConfig:
    max_tokens: int | None = setting(None, COUNT)  # budget per batch: B × T_max (padding counted) stays within it
    batch_size: int | None = setting(32, COUNT)  # sequences per batch, when max_tokens is None
    shuffle: bool = True  # shuffle ties within a length and the order of batches, each epoch
    seed: int = setting(0, NATURAL)  # with the epoch, fixes the order: every rank and every resumed run agree

    def __post_init__(self) -> None:
        check(self)


class BucketSampler:
    """Deals a dataset's indices into length-bucketed batches, epoch by epoch.

    Args:
        lengths: the length of every sequence of the dataset.
        config: the batching rule.
        rank, world_size: this process's shard of every epoch.

    Example:
        >>> s = BucketSampler([5, 3, 9, 4, 3], BatchingConfig(batch_size=2, shuffle=False))
        >>> s.epoch(0)
        [[1, 4], [3, 0], [2]]
    """

    def __init__(self, lengths: Sequence[int], config: BatchingConfig, rank: int = 0, world_size: int = 1):
        if (config.max_tokens is None) == (config.batch_size is None):
            raise ValueError("BatchingConfig needs exactly one of max_tokens and batch_size")
        if (config.max_tokens or 1) < 1 or (config.batch_size or 1) < 1:
            raise ValueError(f"max_tokens and batch_size must be >= 1; got {config.max_tokens}, {config.batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}); got {rank}")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.config, self.rank, self.world_size = config, rank, world_size
        if config.max_tokens is not None and len(self.lengths) and int(self.lengths.max()) > config.max_tokens:
            longest = int(self.lengths.argmax())
            raise ValueError(f"max_tokens={config.max_tokens} is smaller than sequence {longest} "
                             f"(length {int(self.lengths.max())})")

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)

    def all_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of the epoch, before sharding, in this epoch's order."""
        g = self._generator(epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=g) if self.config.shuffle else torch.arange(n)
        order = order[torch.sort(self.lengths[order], stable=True).indices]  # by length, ties shuffled
        batches, current, longest = [], [], 0
        for i in order.tolist():
            L = int(self.lengths[i])
            grown = max(longest, L)
            full = (len(current) + 1) * grown > self.config.max_tokens if self.config.max_tokens \
                else len(current) == self.config.batch_size
            if current and full:
                batches.append(current)
                current, grown = [], L
            current.append(i)
            longest = grown
        if current:
            batches.append(current)
        if self.config.shuffle:
            batches = [batches[j] for j in torch.randperm(len(batches), generator=g).tolist()]
        return batches

    def epoch(self, epoch: int) -> list[list[int]]:
        """This rank's batches of the epoch; every rank gets the same number."""
        batches = self.all_batches(epoch)
        if self.world_size > 1 and batches:
            per_rank = -(-len(batches) // self.world_size)
            batches = (batches * self.world_size)[:per_rank * self.world_size]
        return batches[self.rank::self.world_size]

    def __len__(self) -> int:
        return len(self.epoch(0))

    def padding_fraction(self, epoch: int = 0) -> float:
        """Fraction of the padded cells (B × T_max summed over the epoch's batches) that is padding."""
        real = padded = 0
        for batch in self.all_batches(epoch):
            lens = self.lengths[batch]
            real += int(lens.sum())
            padded += len(batch) * int(lens.max())
        return 1.0 - real / padded if padded else 0.0
