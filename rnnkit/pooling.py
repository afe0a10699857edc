"""Summaries of a padded sequence of outputs y (B, T, F) with lengths (B,) in [1, T]:
the last step (per direction), the mean or maximum over the valid steps, or additive
attention. Generic: any many-to-one model can pool its recurrent outputs with them.

Padding never reaches a computation: valid steps are selected with
``torch.where`` (never multiplied by a mask), so NaN in padding changes nothing.

Dimensions: B batch, T time, F features, H hidden, D directions, A attention.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.checks import valid_mask
from rnnkit.losses import last_step_outputs


def last_pool(y: Tensor, lengths: Tensor, directions: int = 1) -> Tensor:
    """Each sequence's final outputs: y (B, T, D·H), lengths (B,) in [1, T] -> (B, D·H).

    Forward: y[b, L_b − 1]. Backward (D = 2, the second half of the features):
    y[b, 0], where the backward direction ends. Example:
        >>> last_pool(torch.randn(2, 5, 8), torch.tensor([5, 2]), directions=2).shape
        torch.Size([2, 8])
    """
    last = last_step_outputs(y, lengths)  # (B, D·H)
    if directions == 1:
        return last
    H = y.shape[2] // 2
    return torch.cat([last[:, :H], y[:, 0, H:]], dim=1)  # (B, 2H)


def mean_pool(y: Tensor, lengths: Tensor) -> Tensor:
    """(1/L_b) Σ_{t < L_b} y[b, t]: y (B, T, F), lengths (B,) in [1, T] -> (B, F)."""
    valid = valid_mask(lengths, y.shape[1]).unsqueeze(2)  # (B, T, 1)
    return torch.where(valid, y, 0).sum(1) / lengths.unsqueeze(1).to(y.dtype)  # (B, F)


def max_pool(y: Tensor, lengths: Tensor) -> Tensor:
    """max_{t < L_b} y[b, t] per feature: y (B, T, F), lengths (B,) in [1, T] -> (B, F)."""
    valid = valid_mask(lengths, y.shape[1]).unsqueeze(2)  # (B, T, 1)
    return torch.where(valid, y, -torch.inf).amax(1)  # (B, F)


class AttentionPool(nn.Module):
    """Additive attention pooling (Bahdanau et al. 2015; Yang et al. 2016):

        e_t = v · tanh(W y_t + b),  α = softmax over t < L of e (padding −inf),  s = Σ_t α_t y_t.

    ``pool(y, lengths) -> s``: y (B, T, F), lengths (B,) in [1, T], s (B, F).
    W: (A, F), b: (A,), v: (A,), A = ``attention_size``.
    """

    def __init__(self, size: int, attention_size: int):
        super().__init__()
        self.proj = nn.Linear(size, attention_size)  # W, b
        self.score = nn.Linear(attention_size, 1, bias=False)  # v

    def weights(self, y: Tensor, lengths: Tensor) -> Tensor:
        """α (B, T): zero on padding, summing to 1 over each sequence's steps."""
        valid = valid_mask(lengths, y.shape[1])  # (B, T)
        y = torch.where(valid.unsqueeze(2), y, 0)  # (B, T, F): padding reaches no computation
        e = self.score(torch.tanh(self.proj(y))).squeeze(2)  # (B, T)
        return e.masked_fill(~valid, -torch.inf).softmax(1)  # (B, T)

    def forward(self, y: Tensor, lengths: Tensor) -> Tensor:
        alpha = self.weights(y, lengths)  # (B, T)
        valid = valid_mask(lengths, y.shape[1]).unsqueeze(2)  # (B, T, 1)
        return (alpha.unsqueeze(2) * torch.where(valid, y, 0)).sum(1)  # (B, F)
