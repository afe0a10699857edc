"""Scanning a one-step function over a padded batch, with lengths.

The loop here is the reference every faster path is measured against: each
sequence is processed over its own steps only, its state stops changing after
its last step, and outputs past its length are exactly zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rnnkit.checks import Steps, valid_mask

State = tuple[Tensor, ...]
Inputs = tuple[Tensor, ...]
Step = Callable[[Inputs, State], tuple[Tensor, State]]


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence within its own length; padding stays in place.

    x: (B, T, *); lengths: (B,). Position t < L_b of sequence b takes position
    L_b - 1 - t; positions t >= L_b are left as they are.
    """
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).expand(B, T)  # (B, T)
    L = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(t < L, L - 1 - t, t)  # (B, T)
    index = index.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def zero_padding(x: Tensor, lengths: Tensor | None) -> Tensor:
    """x (B, T, *) with every position past its sequence's length set to zero.

    Layers call this on their input so that padding (even NaN) reaches no
    computation, not even one whose result is discarded: a discarded NaN would
    still poison the weight gradients (0 · NaN = NaN).
    """
    if lengths is None:
        return x
    B, T = x.shape[:2]
    valid = valid_mask(lengths, T)  # (B, T)
    return x.masked_fill(~valid.view(B, T, *([1] * (x.dim() - 2))), 0)


def scan(step: Step, xs: Inputs, state: State, steps: Steps, width: int,
         reverse: bool = False) -> tuple[Tensor, State]:
    """Run ``step`` over time.

    Args:
        step: ``(x_t, state) -> (y_t, state)`` where x_t is the tuple of the
            t-th slices of ``xs``, each (B, *), and y_t is (B, D).
        xs: tuple of per-step inputs, each (B, T, *).
        state: tuple of (B, *) tensors: the state before the first step.
        steps: each sequence's length, checked by :meth:`rnnkit.checks.Steps.of`
            (``Steps.of(None, x)`` when every sequence has all T steps).
        width: D, the width of y_t.
        reverse: run each sequence from its last step to its first.

    Returns:
        y: (B, T, D), zero past each length.
        state: the state after each sequence's own last step (the given state
            for a sequence of length 0).
    """
    B, T = xs[0].shape[:2]
    lengths, longest = steps.lengths, steps.longest
    if reverse and lengths is not None:
        xs = tuple(reverse_padded(x, lengths) for x in xs)
    elif reverse:
        xs = tuple(x.flip(1) for x in xs)
    ragged = steps.ragged
    if ragged:
        active = valid_mask(lengths, longest).t().unsqueeze(2)  # (T', B, 1)
    outputs = []
    for t in range(longest):
        y, new = step(tuple(x[:, t] for x in xs), state)
        if ragged:
            m = active[t]  # (B, 1)
            state = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            y = torch.where(m, y, y.new_zeros(()))
        else:
            state = new
        outputs.append(y)
    if not outputs:  # every sequence is empty
        return xs[0].new_zeros(B, T, width), state
    y = torch.stack(outputs, dim=1)  # (B, T', D)
    if longest < T:
        y = torch.cat([y, y.new_zeros(B, T - longest, y.shape[2])], dim=1)  # (B, T, D)
    if reverse:
        y = y.flip(1) if lengths is None else reverse_padded(y, lengths)
    return y, state
