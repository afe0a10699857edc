"""Recurrent language models: next-symbol prediction and generation by sampling
(seeds 002, 003: draw from the output distribution, feed it back, repeat).

Two training regimes on the common engine (:mod:`rnnkit.train`):

- STREAM: the text is one stream of symbols, ``</s>`` ending each line, cut into
  B contiguous rows; truncated BPTT over chunks of k steps with each row's state
  carried from chunk to chunk (Mikolov's RNNLM; Zaremba et al. 2014).
- SENTENCES: every line is a sentence ``<s> w_1 … w_n </s>`` scored on its own
  from a zero state, batched by length with the padding masked out (the
  DyNet benchmark's regime).

Any model called as ``model(ids (B, T), lengths (B,) | None, state) -> (logits
(B, T, V), state)`` trains, is scored and samples through the same functions:
:class:`LanguageModel` here, and the fixed-window NPLM of :mod:`rnnkit.tasks.nplm`.

Dimensions: B batch, T time, E embedding, H hidden, L layers, V vocabulary.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.batch import Batch, pad_sequences
from rnnkit.data.text import Level
from rnnkit.distributed import unwrap
from rnnkit.fused_softmax import linear_cross_entropy
from rnnkit.layers import LAYERS, CellKind, LayerState, Recurrent
from rnnkit.losses import Reduction, masked_cross_entropy
from rnnkit.pooling import valid_steps
from rnnkit.train import StepOutput
from rnnkit.vocab import BOS, EOS, UNK, Vocab


class Regime(enum.Enum):
    STREAM = "stream"  # one stream, truncated BPTT, state carried across chunks
    SENTENCES = "sentences"  # one sequence per line, <s> ... </s>, padded and masked


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int  # V, including special symbols
    embed_size: int = 64  # E, width of the symbol embeddings
    hidden_size: int = 256  # H, width of each recurrent layer
    num_layers: int = 1  # L, stacked recurrent layers
    dropout: float = 0.0  # on embeddings, between layers and before the softmax
    tie_weights: bool = False  # share the embedding and output matrices (needs E == H)
    cell: CellKind = CellKind.LSTM  # the recurrence of every layer
    init_range: float | None = None  # draw every parameter from U(-r, r) (Zaremba: 0.1); None: the layers' own

    def to_dict(self) -> dict:
        return {**asdict(self), "cell": self.cell.value}

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        return cls(**{**d, "cell": CellKind(d["cell"])})


class LanguageModel(nn.Module):
    """Embedding -> recurrent stack -> linear softmax layer.

    ``model(ids, lengths=None, state=None) -> (logits (B, T, V), state)`` with
    ids (B, T) integer symbols. ``rnn`` is any rnnkit recurrent layer taking E
    inputs (default: a stack of the config's cell and size).

    Example:
        >>> lm = LanguageModel(LMConfig(vocab_size=100))
        >>> logits, state = lm(torch.randint(0, 100, (2, 7)))     # (2, 7, 100)
    """

    def __init__(self, config: LMConfig, rnn: Recurrent | None = None):
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.embed_size)  # (V, E)
        self.rnn = rnn or LAYERS[c.cell](c.embed_size, c.hidden_size, c.num_layers, dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(self.rnn.output_size, c.vocab_size)  # (V, H)
        if c.tie_weights:
            if c.embed_size != self.rnn.output_size:
                raise ValueError(f"tie_weights needs embed_size == hidden size; "
                                 f"got {c.embed_size} and {self.rnn.output_size}")
            self.out.weight = self.embed.weight
        if c.init_range is not None:
            if c.init_range <= 0:
                raise ValueError(f"init_range must be > 0; got {c.init_range}")
            for p in self.parameters():
                nn.init.uniform_(p, -c.init_range, c.init_range)

    def forward(self, ids: Tensor, lengths: Tensor | None = None,
                state: LayerState | None = None, logits: bool = True) -> tuple[Tensor, LayerState]:
        """Logits (B, T, V), or with ``logits=False`` the output layer's input (B, T, H)."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        h, state = self.rnn(x, lengths, state)  # (B, T, H)
        h = self.drop(h)
        return (self.out(h) if logits else h), state


# ---------------------------------------------------------------- data

def start_symbol(regime: Regime) -> str:
    """What the model reads before the first word: the end of an (implied) previous
    line in a stream, the sentence start for sentences."""
    return EOS if regime is Regime.STREAM else BOS


def build_vocab(sequences: list[list[str]], regime: Regime, min_count: int = 1,
                max_size: int | None = None) -> Vocab:
    """Symbols of the training text (``</s>`` ending each line), most frequent first,
    after <unk>, </s> and (SENTENCES) <s>. Unknown symbols map to <unk>; a corpus
    that already writes ``<unk>`` (PTB) uses that same symbol."""
    specials = (UNK, EOS) + ((BOS,) if regime is Regime.SENTENCES else ())
    return Vocab.build(sequences, specials=specials, min_freq=min_count, max_size=max_size)


def encode_stream(tokens: list[str], vocab: Vocab) -> Tensor:
    """``</s> t_1 … t_N`` as ids (N + 1,): the leading </s> is the context of the
    first line, so every one of the N tokens is predicted."""
    return torch.tensor(vocab.encode([EOS, *tokens]), dtype=torch.long)


def encode_sentences(sentences: list[list[str]], vocab: Vocab) -> list[Tensor]:
    """Each line ``w_1 … w_n </s>`` as ids ``<s> w_1 … w_n </s>`` (n + 2,)."""
    return [torch.tensor(vocab.encode([BOS, *s]), dtype=torch.long) for s in sentences]


def count_unknown(sequences: list[list[str]], vocab: Vocab) -> int:
    """Tokens the vocabulary does not hold (they are scored as <unk>)."""
    return sum(1 for s in sequences for t in s if t not in vocab)


def collate_sentences(examples: list[Tensor], indices: list[int]) -> Batch:
    """Sentences ``<s> w_1 … w_n </s>`` -> inputs ``<s> … w_n`` and targets ``w_1 … </s>``,
    padded (B, T) with lengths (B,) = n + 1."""
    inputs, lengths = pad_sequences([e[:-1] for e in examples])  # (B, T)
    targets, _ = pad_sequences([e[1:] for e in examples])  # (B, T)
    return Batch(inputs, lengths, targets, indices=torch.tensor(indices))


# ---------------------------------------------------------------- objectives

def _summed_cross_entropy(model: nn.Module, batch: Batch, lengths: Tensor | None, state) -> tuple[Tensor, Any]:
    """The summed cross-entropy of the scored steps (all, or each row's first ``lengths``).
    A LanguageModel's softmax layer and loss run fused (:func:`linear_cross_entropy`,
    no (B, T, V) logits); other models (NPLM) score their logits."""
    if isinstance(unwrap(model), LanguageModel):
        h, state = model(batch.inputs, lengths, state, logits=False)  # (B, T, H)
        mask = None if lengths is None else valid_steps(lengths.to(h.device), h.shape[1])  # (B, T)
        h, targets = (h.flatten(0, 1), batch.targets.flatten()) if mask is None else (h[mask], batch.targets[mask])
        out = unwrap(model).out
        return linear_cross_entropy(h, out.weight, out.bias, targets), state
    logits, state = model(batch.inputs, lengths, state)  # (B, T, V)
    if lengths is None:
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum"), state
    return masked_cross_entropy(logits, batch.targets, lengths, reduction=Reduction.SUM), state


def stream_objective(model: nn.Module, batch: Batch, state) -> StepOutput:
    """Summed cross-entropy of a chunk of full rows, from the carried state."""
    loss, state = _summed_cross_entropy(model, batch, None, state)
    return StepOutput(loss, batch.targets.numel(), state)


def sentence_objective(model: nn.Module, batch: Batch, state) -> StepOutput:
    """Summed cross-entropy over each sentence's own steps; padding is never scored."""
    loss, state = _summed_cross_entropy(model, batch, batch.lengths, state)
    return StepOutput(loss, batch.tokens, state)


OBJECTIVES = {Regime.STREAM: stream_objective, Regime.SENTENCES: sentence_objective}


# ---------------------------------------------------------------- scoring

def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def stream_loss(model: nn.Module, ids: Tensor, batch_size: int = 1, bptt: int = 256) -> tuple[float, int]:
    """Negative log-likelihood in nats of ``ids[1:]``, each symbol given all before
    it in its row, summed; and the number of symbols scored, N - 1.

    The stream is cut into B rows of ceil((N - 1) / B) predictions (the last ones
    shorter), each started from the zero state and carried through chunks of
    ``bptt`` steps. Nothing is left out; B = 1 gives the exact one-stream figure,
    a larger B is faster and loses the context at B - 1 row starts.
    """
    if ids.dim() != 1 or ids.numel() < 2:
        raise ValueError(f"the stream must hold at least 2 symbols; got shape {tuple(ids.shape)}")
    if batch_size < 1 or bptt < 1:
        raise ValueError(f"batch_size and bptt must be >= 1; got {batch_size}, {bptt}")
    model.eval()
    N = ids.numel() - 1
    B = min(batch_size, N)
    n = -(-N // B)
    pad = n * B - N
    device = _device(model)
    inputs = F.pad(ids[:-1], (0, pad)).view(B, n).to(device)  # (B, n)
    targets = F.pad(ids[1:], (0, pad)).view(B, n).to(device)  # (B, n)
    rows = (N - torch.arange(B, device=device) * n).clamp(0, n)  # (B,) real predictions per row
    total, state = 0.0, None
    for start in range(0, n, bptt):
        x, y = inputs[:, start:start + bptt], targets[:, start:start + bptt]  # (B, k)
        lengths = (rows - start).clamp(0, x.shape[1])  # (B,)
        full = bool((lengths == x.shape[1]).all())
        logits, state = model(x, None if full else lengths, state)  # (B, k, V)
        total += float(masked_cross_entropy(logits, y, lengths, reduction=Reduction.SUM))
    return total, N


@torch.no_grad()
def sentence_loss(model: nn.Module, sentences: list[Tensor], batch_size: int = 64) -> tuple[float, int]:
    """Summed negative log-likelihood in nats of every sentence ``<s> w_1 … w_n </s>``
    (its n + 1 predictions, each from a zero state at ``<s>``), and the count."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    model.eval()
    device = _device(model)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    total, count = 0.0, 0
    for i in range(0, len(order), batch_size):
        keys = order[i:i + batch_size]
        batch = collate_sentences([sentences[k] for k in keys], keys).to(device)
        logits, _ = model(batch.inputs, batch.lengths)  # (B, T, V)
        total += float(masked_cross_entropy(logits, batch.targets, batch.lengths, reduction=Reduction.SUM))
        count += batch.tokens
    return total, count


def lm_metrics(nats: float, count: int, level: Level) -> dict[str, float]:
    """perplexity = exp(loss) for words, bits_per_char = loss / ln 2 for characters;
    loss is the mean in nats per scored token, count the tokens scored."""
    if count < 1:
        raise ValueError("nothing was scored")
    loss = nats / count
    head = {"perplexity": math.exp(loss)} if level is Level.WORD else {"bits_per_char": loss / math.log(2)}
    return {**head, "loss": loss, "count": count}


def evaluate(model: nn.Module, data: Tensor | list[Tensor], level: Level, regime: Regime,
             batch_size: int = 1, bptt: int = 256) -> dict[str, float]:
    """:func:`lm_metrics` of ``data``: a stream of ids from :func:`encode_stream`
    (STREAM: ``batch_size`` rows, chunks of ``bptt``) or sentences from
    :func:`encode_sentences` (SENTENCES: ``batch_size`` sentences a batch)."""
    if regime is Regime.STREAM:
        nats, count = stream_loss(model, data, batch_size, bptt)
    else:
        nats, count = sentence_loss(model, data, batch_size)
    return lm_metrics(nats, count, level)


# ---------------------------------------------------------------- the demo's helpers

@torch.no_grad()
def bits_per_symbol(model: nn.Module, ids: Tensor, batch_size: int = 16, bptt: int = 256) -> float:
    """Average negative log2-probability of each symbol after the first: :func:`stream_loss` in bits."""
    nats, count = stream_loss(model, ids, batch_size, bptt)
    return nats / count / math.log(2)


# ---------------------------------------------------------------- sampling

def filter_logits(scores: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """scores (V,) with every symbol outside the k best, and outside the nucleus, set to -inf.

    The nucleus (Holtzman et al. 2020) is the smallest set of most probable symbols
    whose probability under softmax(scores) reaches ``top_p``: a symbol is kept when
    the symbols ranked above it hold less than ``top_p`` (the best one always is).
    """
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {top_k}")
        kth = scores.topk(min(top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1]; got {top_p}")
        probs, order = scores.softmax(-1).sort(descending=True)  # (V,), (V,)
        above = probs.cumsum(0) - probs  # (V,) mass of the symbols ranked higher
        drop = torch.zeros_like(above, dtype=torch.bool).scatter(0, order, above >= top_p)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


@torch.no_grad()
def sample(model: nn.Module, prime: list[int], length: int, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, stop: int | None = None,
           generator: torch.Generator | None = None) -> list[int]:
    """Feed ``prime``, then draw up to ``length`` symbols one at a time, each fed back in.

    The state is kept across the prime and the generated text. Each draw is from
    softmax(logits / temperature), restricted by :func:`filter_logits` to the
    ``top_k`` best and the ``top_p`` nucleus. Drawing ``stop`` (e.g. ``</s>``) ends
    the text; it is the last symbol returned.
    """
    if not prime:
        raise ValueError("prime must hold at least one symbol")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    if length < 0:
        raise ValueError(f"length must be >= 0; got {length}")
    model.eval()
    device = _device(model)
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


# ---------------------------------------------------------------- the demo's training loop
