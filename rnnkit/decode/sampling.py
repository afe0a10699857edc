"""Generation: drawing from a model's output distribution and feeding the draw back in,
with temperature, top-k (Fan et al. 2018) and nucleus (top-p, Holtzman et al. 2020)
filtering. V: vocabulary."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def filter_logits(scores: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """scores (..., V) with every symbol outside the k best, and outside the nucleus, set to
    -inf (each row on its own).

    The nucleus is the smallest set of most probable symbols whose probability under
    softmax(scores) reaches ``top_p``: a symbol is kept when the symbols ranked above it
    hold less than ``top_p`` (the best one always is).

    Example:
        >>> filter_logits(torch.tensor([1.0, 3.0, 2.0]), top_k=2)
        tensor([-inf, 3., 2.])
    """
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {top_k}")
        kth = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1]; got {top_p}")
        probs, order = scores.softmax(-1).sort(dim=-1, descending=True)  # (..., V)
        above = probs.cumsum(-1) - probs  # (..., V) mass of the symbols ranked higher
        drop = torch.zeros_like(above, dtype=torch.bool).scatter(-1, order, above >= top_p)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


@torch.no_grad()
def sample(model: nn.Module, prime: list[int], length: int, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, stop: int | None = None,
           generator: torch.Generator | None = None) -> list[int]:
    """Feed ``prime``, then draw up to ``length`` symbols one at a time, each fed back in.

    ``model(ids (1, T), state=state) -> (logits (1, T, V), state)`` is any language model
    of :mod:`rnnkit.tasks.lm`. The state is kept across the prime and the generated
    text. Each draw is from softmax(logits / temperature), restricted by
    :func:`filter_logits` to the ``top_k`` best and the ``top_p`` nucleus. Drawing
    ``stop`` (e.g. ``</s>``) ends the text; it is the last symbol returned.
    """
    if not prime:
        raise ValueError("prime must hold at least one symbol")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    if length < 0:
        raise ValueError(f"length must be >= 0; got {length}")
    model.eval()
    device = next(model.parameters()).device
    logits, state = model(torch.tensor([prime], device=device))
    last = logits[0, -1]  # (V,)
    out = []
    for _ in range(length):
        scores = filter_logits(last / temperature, top_k, top_p)
        symbol = int(torch.multinomial(scores.softmax(-1).cpu(), 1, generator=generator))
        out.append(symbol)
        if symbol == stop:
            break
        logits, state = model(torch.tensor([[symbol]], device=device), state=state)
        last = logits[0, -1]
    return out
