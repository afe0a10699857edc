"""Development data held out of a training file, for the runs given no ``--dev`` file:
the one rule every task uses, reproducible from the seed.

Sequences (sentences, cases) are held out at random, in each label's share when they
have labels (stratified), so a small data set keeps every class on both sides; a
stream (one long text) gives up its last stretch, so no held-out text sits between
two training stretches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

MOST_SEQUENCES = 2000  # held out at most
MOST_TOKENS = 200_000  # of a stream, at most


@dataclass(frozen=True)
class Holdout:
    train: list[int]  # indices kept for training, in their original order
    dev: list[int]  # indices held out, in their original order

    def describe(self, what: str, source: str) -> str:
        total = len(self.train) + len(self.dev)
        return (f"no --dev given: {len(self.dev):,} of the {total:,} {what} of {source} "
                f"({len(self.dev) / max(total, 1):.0%}) are held out as dev data (--holdout)")


def hold_out(count: int, fraction: float, seed: int, labels: Sequence[Hashable] | None = None,
             most: int = MOST_SEQUENCES) -> Holdout:
    """Hold out ``fraction`` of ``count`` sequences (at most ``most``; at least one of each
    label that has two or more), at random from ``seed``; with ``labels``, stratified."""
    if not 0 <= fraction < 1:
        raise ValueError(f"--holdout must be in [0, 1); got {fraction}")
    if fraction == 0 or count < 2:
        return Holdout(list(range(count)), [])
    rng = np.random.default_rng(seed)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i in range(count):
        groups[labels[i] if labels is not None else None].append(i)
    share = min(fraction, most / count)
    dev: list[int] = []
    for key in sorted(groups, key=repr):
        members = groups[key]
        n = len(members)
        take = min(n - 1, max(1 if labels is not None else 0, round(share * n)))
        dev.extend(int(i) for i in rng.permutation(members)[:take])
    if not dev:
        dev = [int(rng.integers(count))]
    held = set(dev)
    return Holdout([i for i in range(count) if i not in held], sorted(dev))


def hold_out_tail(length: int, fraction: float, most: int = MOST_TOKENS) -> int:
    """Where a stream of ``length`` tokens is cut: the last ``fraction`` of it (at most
    ``most`` tokens) is held out. Returns the number of tokens kept for training."""
    if not 0 <= fraction < 1:
        raise ValueError(f"--holdout must be in [0, 1); got {fraction}")
    return length - min(int(length * fraction), most)
