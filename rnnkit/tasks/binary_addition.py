"""Binary addition, the classic toy problem of recurrent networks: an RNN reads two numbers
bit by bit, least significant first, and emits the bits of their sum. Trained on
N-bit numbers, a recurrent net that has learned the carry adds numbers of any
length; a fixed-window (TDNN) network cannot carry beyond its window."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


def addition_batch(batch: int, bits: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Random pairs of ``bits``-bit numbers as sequences of ``bits + 1`` steps.

    Returns x (B, bits+1, 2) with the two addends' bits (a final 0 step for the
    carry) and y (B, bits+1) with the sum's bits, least significant first.
    """
    a = torch.randint(0, 2, (batch, bits), generator=generator)  # (B, N), any N
    b = torch.randint(0, 2, (batch, bits), generator=generator)
    total, carry = [], torch.zeros(batch, dtype=torch.long)
    for t in range(bits):  # ripple-carry addition
        s = a[:, t] + b[:, t] + carry
        total.append(s & 1)
        carry = s >> 1
    total.append(carry)
    zero = torch.zeros(batch, 1, dtype=torch.long)
    x = torch.stack([torch.cat([a, zero], 1), torch.cat([b, zero], 1)], dim=2).float()  # (B, N+1, 2)
    return x, torch.stack(total, dim=1).float()  # (B, N+1)


@dataclass(frozen=True)
class AdderConfig:
    train_bits: int = 8  # N, length of the numbers seen in training
    steps: int = 1500  # training updates
    batch_size: int = 64
    lr: float = 0.01  # Adam learning rate


class Adder(nn.Module):
    """A sequence layer and a per-step logistic output: y(t) = σ(w·h(t) + b).

    ``rnn`` is any layer with the ``(x, lengths, state) -> (y, state)`` call and
    an ``output_size``: an Elman RNN, an LSTM, or the TDNN baseline.
    """

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn
        self.out = nn.Linear(rnn.output_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(x)  # (B, T, H)
        return self.out(h).squeeze(2)  # (B, T) logits


def train_adder(model: Adder, config: AdderConfig, generator: torch.Generator) -> Adder:
    """Train by full BPTT on the per-step cross-entropy."""
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    for _ in range(config.steps):
        x, y = addition_batch(config.batch_size, config.train_bits, generator)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def sum_accuracy(model: Adder, bits: int, count: int, generator: torch.Generator) -> float:
    """Fraction of ``count`` random ``bits``-bit additions whose every output bit is right."""
    model.eval()
    x, y = addition_batch(count, bits, generator)
    correct = ((model(x) > 0).float() == y).all(dim=1)
    return correct.float().mean().item()
