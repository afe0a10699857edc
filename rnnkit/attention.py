"""Attention of a decoder over an encoder's outputs (the memory), padding masked out.

A query q (the decoder's output at step t) scores every memory vector m_s of its source:

    additive (Bahdanau et al. 2015):  e_s = v · tanh(W_q q + W_m m_s)
    dot (Luong et al. 2015):          e_s = q · m_s                   (needs Q == M)
    general (Luong et al. 2015):      e_s = q · (W m_s)

then α = softmax over s < S_b of e (padding −inf), the context c = Σ_s α_s m_s. The memory's
half of each score (W_m m, W m) is computed once per source by :meth:`Attention.prepare`,
and every step reuses it. Padding never reaches a computation: the memory's padding is
selected away (``torch.where``) before anything reads it, so NaN there changes nothing.

Shapes: a single step takes q (B, Q); all steps at once (teacher forcing without input
feeding) take q (B, T, Q) and give c (B, T, M), α (B, T, S).

Dimensions: B batch, T decoder steps, S source positions, Q query, M memory, A attention.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.checks import valid_mask
from rnnkit.kernels import gemm
from rnnkit.settings import SettingError


class Scoring(enum.Enum):
    ADDITIVE = "additive"
    DOT = "dot"
    GENERAL = "general"


class Attention(nn.Module):
    """Attention with one of the three scorings.

    Args:
        scoring: additive, dot or general.
        query_size: Q, the decoder output's width.
        memory_size: M, the encoder output's width.
        attention_size: A, additive's hidden width (default Q).

    Example:
        >>> att = Attention(Scoring.GENERAL, 8, 6)
        >>> memory = att.prepare(torch.randn(2, 5, 6), torch.tensor([5, 3]))
        >>> c, alpha = att(torch.randn(2, 8), memory)      # c: (2, 6), alpha: (2, 5)
    """

    def __init__(self, scoring: Scoring, query_size: int, memory_size: int, attention_size: int | None = None):
        super().__init__()
        self.scoring = scoring
        if scoring is Scoring.DOT and query_size != memory_size:
            raise SettingError("attention", f"dot needs the decoder's width ({query_size}) to equal the encoder "
                                            f"output's ({memory_size}); use general")
        if scoring is Scoring.ADDITIVE:
            A = attention_size or query_size
            self.memory_proj = gemm.Linear(memory_size, A, bias=False)  # W_m: (A, M)
            self.query_proj = gemm.Linear(query_size, A)  # W_q: (A, Q), with the bias
            self.v = gemm.Linear(A, 1, bias=False)  # v: (1, A)
        elif scoring is Scoring.GENERAL:
            self.memory_proj = gemm.Linear(memory_size, query_size, bias=False)  # W: (Q, M)

    def prepare(self, memory: Tensor, lengths: Tensor) -> Memory:
        """The memory (B, S, M) of sources of ``lengths`` (B,) in [1, S], its padding zeroed,
        with its part of the scores computed once."""
        valid = valid_mask(lengths, memory.shape[1])  # (B, S)
        values = torch.where(valid.unsqueeze(2), memory, 0)  # (B, S, M)
        keys = values if self.scoring is Scoring.DOT else self.memory_proj(values)  # (B, S, A | Q | M)
        return Memory(values, keys, valid)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """Raw scores e: query (B, T, Q), keys (B, S, ·) -> (B, T, S)."""
        if self.scoring is Scoring.ADDITIVE:
            hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, A)
            return self.v(hidden).squeeze(3)  # (B, T, S)
        return query @ keys.transpose(1, 2)  # (B, T, S)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """(context, weights) for query (B, Q) or (B, T, Q): context (B, M) or (B, T, M); weights
        (B, S) or (B, T, S), zero on padding, summing to 1 over each source."""
        single = query.dim() == 2
        q = query.unsqueeze(1) if single else query  # (B, T, Q)
        e = self.scores(q, memory.keys)  # (B, T, S)
        alpha = torch.where(memory.valid.unsqueeze(1), e, -torch.inf).softmax(-1)  # (B, T, S); padding: 0
        context = alpha @ memory.values  # (B, T, M)
        return (context.squeeze(1), alpha.squeeze(1)) if single else (context, alpha)


@dataclass(frozen=True)
class Memory:
    """An encoded batch of sources as attention reads it."""

    values: Tensor  # (B, S, M), zero past each length
    keys: Tensor  # (B, S, ·): the memory's part of the scores
    valid: Tensor  # (B, S) bool: the real positions

    def select(self, index: Tensor) -> Memory:
        """The sources ``index`` (N,) in that order (beam search repeats each source per beam)."""
        return Memory(self.values[index], self.keys[index], self.valid[index])
