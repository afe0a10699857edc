"""Recurrent language models: next-symbol prediction and generation by sampling
(seeds 002, 003: draw from the output distribution, feed it back, repeat)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.layers import LSTM, LayerState, Recurrent


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int  # V, including special symbols
    embed_size: int = 64  # E, width of the symbol embeddings
    hidden_size: int = 256  # H, width of each recurrent layer
    num_layers: int = 1  # L, stacked recurrent layers
    dropout: float = 0.0  # on embeddings, between layers and before the softmax
    tie_weights: bool = False  # share the embedding and output matrices (needs E == H)


class LanguageModel(nn.Module):
    """Embedding -> recurrent stack -> linear softmax layer.

    ``model(ids, lengths=None, state=None) -> (logits (B, T, V), state)`` with
    ids (B, T) integer symbols. ``rnn`` is any rnnkit recurrent layer taking E
    inputs (default: an LSTM of the config's size).

    Example:
        >>> lm = LanguageModel(LMConfig(vocab_size=100))
        >>> logits, state = lm(torch.randint(0, 100, (2, 7)))     # (2, 7, 100)
    """

    def __init__(self, config: LMConfig, rnn: Recurrent | None = None):
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.embed_size)  # (V, E)
        self.rnn = rnn or LSTM(c.embed_size, c.hidden_size, c.num_layers, dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(self.rnn.output_size, c.vocab_size)  # (V, H)
        if c.tie_weights:
            if c.embed_size != self.rnn.output_size:
                raise ValueError(f"tie_weights needs embed_size == hidden size; "
                                 f"got {c.embed_size} and {self.rnn.output_size}")
            self.out.weight = self.embed.weight

    def forward(self, ids: Tensor, lengths: Tensor | None = None,
                state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        x = self.drop(self.embed(ids))  # (B, T, E)
        h, state = self.rnn(x, lengths, state)  # (B, T, H)
        return self.out(self.drop(h)), state  # (B, T, V)


def stream_batches(ids: Tensor, batch_size: int) -> Tensor:
    """Cut one long stream of ids into ``batch_size`` contiguous streams: (B, N // B).

    Row b continues where it left off from one chunk to the next, so the state
    of each row can be carried across chunks (truncated BPTT).
    """
    n = ids.numel() // batch_size
    return ids[:n * batch_size].view(batch_size, n)


@torch.no_grad()
def bits_per_symbol(model: LanguageModel, ids: Tensor, batch_size: int = 16, bptt: int = 256) -> float:
    """Average negative log2-probability of each symbol after the first, with the
    state carried through each of ``batch_size`` contiguous streams."""
    model.eval()
    streams = stream_batches(ids, batch_size)  # (B, N)
    total, count, state = 0.0, 0, None
    for start in range(0, streams.shape[1] - 1, bptt):
        x = streams[:, start:start + bptt]
        y = streams[:, start + 1:start + 1 + bptt]
        x = x[:, :y.shape[1]]
        logits, state = model(x, state=state)
        total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                             reduction="sum").item()
        count += y.numel()
    return total / count / math.log(2)


@torch.no_grad()
def sample(model: LanguageModel, prime: list[int], length: int, *, temperature: float = 1.0,
           top_k: int | None = None, generator: torch.Generator | None = None) -> list[int]:
    """Feed ``prime``, then draw ``length`` symbols one at a time, each fed back in.

    The state is kept across the prime and the generated text.
    """
    if not prime:
        raise ValueError("prime must hold at least one symbol")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    model.eval()
    device = next(model.parameters()).device
    logits, state = model(torch.tensor([prime], device=device))
    last = logits[0, -1]  # (V,)
    out = []
    for _ in range(length):
        scores = last / temperature
        if top_k is not None:
            kth = scores.topk(min(top_k, scores.numel())).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        symbol = int(torch.multinomial(scores.softmax(-1), 1, generator=generator))
        out.append(symbol)
        logits, state = model(torch.tensor([[symbol]], device=device), state=state)
        last = logits[0, -1]
    return out


@dataclass(frozen=True)
class StreamTraining:
    batch_size: int = 64  # B parallel streams
    bptt: int = 64  # k, steps per truncated-BPTT chunk
    lr: float = 3e-3  # Adam learning rate
    clip: float = 5.0  # gradient norm clipping
    seconds: float = 90.0  # training time budget


def train_on_stream(model: LanguageModel, ids: Tensor, config: StreamTraining, clock) -> int:
    """Truncated BPTT over one long stream: B contiguous rows, chunks of k steps,
    each chunk's final state carried (detached) into the next. Stops when
    ``clock()`` (seconds since start) passes the budget; returns symbols trained."""
    streams = stream_batches(ids, config.batch_size)  # (B, N)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    state, start, seen = None, 0, 0
    model.train()
    while clock() < config.seconds:
        if start + config.bptt + 1 > streams.shape[1]:  # wrap around: a fresh pass
            start, state = 0, None
        x = streams[:, start:start + config.bptt]  # (B, k)
        y = streams[:, start + 1:start + 1 + config.bptt]  # (B, k)
        if state is not None:
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        logits, state = model(x, state=state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        opt.step()
        start += config.bptt
        seen += y.numel()
    return seen
