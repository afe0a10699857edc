"""The fixed-window neural probabilistic language model of Bengio et al. (2003)
the baseline the recurrent language models are measured against.

The previous n - 1 symbols are looked up in a shared table C, concatenated
(oldest first), passed through one tanh hidden layer, and scored by a softmax:

    x_t = [C(w_{t-n+2}); …; C(w_t)]                          ((n-1)·E,)
    y_t = b + W x_t + U tanh(d + H x_t)                        (V,)   W: direct connections, optional
    P(w_{t+1} = i | w_{t-n+2} … w_t) = softmax(y_t)_i

It is called like a recurrent language model, ``model(ids, lengths, state) ->
(logits, state)`` (or with ``targets``, the summed cross-entropy of the scored steps
instead of the logits), with the state the last n - 1 symbols read (B, n - 1): a
stream is carried across chunks, and sampling feeds symbols back, exactly as for
:class:`rnnkit.tasks.lm.LanguageModel`. Before the start (state None) the
history is ``pad_id`` (the boundary symbol ``</s>`` or ``<s>``).

Dimensions: B batch, T time, N = n - 1 context symbols, E embedding, H hidden, V vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.checks import valid_mask
from rnnkit.settings import COUNT, FRACTION, NATURAL, Rule, check, setting
from rnnkit.softmax import SoftmaxOutput


@dataclass(frozen=True)
class NPLMConfig:
    vocab_size: int = setting(rule=NATURAL)  # V; 0 until the data sets it
    order: int = setting(5, Rule(int, 2))  # n: each symbol is predicted from the n - 1 before it
    embed_size: int = setting(100, COUNT)  # E, Bengio's m
    hidden_size: int = setting(200, COUNT)  # H, Bengio's h
    direct: bool = False  # the direct connections W from the embeddings to the output
    dropout: float = setting(0.0, FRACTION)  # on the concatenated embeddings and on the hidden layer
    pad_id: int = setting(0, NATURAL)  # the symbol standing for the history before the start

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NPLMConfig:
        return cls(**d)


class NPLM(nn.Module):
    """Bengio et al.'s NPLM: ``model(ids (B, T), lengths=None, state=None) ->
    (logits (B, T, V), state (B, n - 1))``; logits[:, t] scores the symbol after ids[:, t].

    ``lengths`` (B,) only says where each sequence ends, so that the returned state
    is each one's own last n - 1 symbols; the positions past it are computed anyway.

    Example:
        >>> lm = NPLM(NPLMConfig(vocab_size=50, order=3))
        >>> logits, history = lm(torch.randint(0, 50, (2, 7)))    # (2, 7, 50), (2, 2)
    """

    def __init__(self, config: NPLMConfig):
        super().__init__()
        c = config
        if c.order < 2:
            raise ValueError(f"order must be >= 2 (at least one symbol of context); got {c.order}")
        if not 0 <= c.pad_id < c.vocab_size:
            raise ValueError(f"pad_id must be a symbol in [0, {c.vocab_size}); got {c.pad_id}")
        self.config = c
        context = (c.order - 1) * c.embed_size
        self.embed = nn.Embedding(c.vocab_size, c.embed_size)  # C: (V, E)
        self.hidden = nn.Linear(context, c.hidden_size)  # H, d: (H, N·E), (H,)
        self.out = SoftmaxOutput(c.hidden_size, c.vocab_size)  # U, b: (V, H), (V,)
        self.direct = nn.Linear(context, c.vocab_size, bias=False) if c.direct else None  # W: (V, N·E)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, ids: Tensor, lengths: Tensor | None = None, state: Tensor | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        B, T = ids.shape
        N = self.config.order - 1
        if state is None:
            state = ids.new_full((B, N), self.config.pad_id)  # (B, N)
        elif tuple(state.shape) != (B, N):
            raise ValueError(f"state must be the last {N} symbols, shape (B={B}, {N}); got {tuple(state.shape)}")
        full = torch.cat([state, ids], dim=1)  # (B, N + T)
        windows = full.unfold(1, N, 1)[:, 1:]  # (B, T, N): the N symbols up to and including ids[:, t]
        x = self.drop(self.embed(windows).flatten(2))  # (B, T, N·E)
        h = self.drop(torch.tanh(self.hidden(x)))  # (B, T, H)
        if lengths is None:
            history = full[:, T:]  # (B, N)
        else:
            at = lengths.to(ids.device).long().unsqueeze(1) + torch.arange(N, device=ids.device)  # (B, N)
            history = full.gather(1, at)  # each sequence's own last N symbols
        if targets is None:
            y = self.out.logits(h)  # (B, T, V)
            return (y if self.direct is None else y + self.direct(x)), history
        if lengths is not None:  # the scored steps only
            mask = valid_mask(lengths.to(ids.device), T)  # (B, T)
            h, x, targets = h[mask], x[mask], targets[mask]  # (M, H), (M, N·E), (M,)
        else:
            h, x, targets = h.flatten(0, 1), x.flatten(0, 1), targets.flatten()
        if self.direct is None:
            return self.out(h, targets), history
        return F.cross_entropy(self.out.logits(h) + self.direct(x), targets, reduction="sum"), history
