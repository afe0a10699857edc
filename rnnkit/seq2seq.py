"""Encoder-decoder networks (Sutskever et al. 2014, Cho et al. 2014) with attention
(Bahdanau et al. 2015, Luong et al. 2015): a source sequence in, a target sequence of
another length out, ended by the end symbol.

The encoder is any rnnkit layer (deep, bidirectional) over the embedded source, padded with
lengths; its outputs are the attention's memory and its top layer's final states (both
directions) the summary a bridge turns into the decoder's initial state,
h0 = tanh(W_h s) (and c0 = W_c s for an LSTM) for every decoder layer. Any other encoder
giving a summary (and optionally a memory) works: :class:`VectorEncoder`'s single vector
makes the one-to-many case.

The decoder's step is the specification (:meth:`Decoder.step`); from the previous target
symbol y(t-1) and its state::

    x(t) = [E y(t-1); h̃(t-1) if input feeding; s if feed_context]
    o(t) = the decoder stack's output after x(t)
    c(t) = attention(o(t), memory)          (or c(t) = s with feed_context, none without either)
    h̃(t) = tanh(W_c [c(t); o(t)])            (h̃(t) = o(t) without a context)
    p(y(t) | y(<t), x) = softmax(W_o h̃(t) + b_o)

Teacher forcing runs the decoder stack over the whole target at once (rnnkit's fused
layers) and attends for every step in one product whenever no step depends on the one
before through h̃ (no input feeding, no scheduled sampling); otherwise it loops over
:meth:`Decoder.step`. The tests prove both equal the loop.

Dimensions: B batch, S source, T target steps, E embedding, H encoder hidden (per
direction), D directions, M = D·H memory, Z summary, Hd decoder hidden, V vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from rnnkit.attention import Attention, Memory, Scoring
from rnnkit.kernels import gemm
from rnnkit.layers import LAYERS, CellKind, Recurrent
from rnnkit.scan import reverse_padded
from rnnkit.settings import COUNT, FRACTION, NATURAL, SettingError, check, setting

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3  # every seq2seq vocabulary starts <pad>, <unk>, <s>, </s>


@dataclass(frozen=True)
class Seq2SeqConfig:
    source_vocab: int = setting(rule=NATURAL)  # V_s; 0 for a non-text encoder (VectorEncoder)
    target_vocab: int = setting(rule=NATURAL)  # V_t, the specials included; 0 until the data sets it
    embed_size: int = setting(0, NATURAL)  # E, source and target embeddings; 0: the data's (training_job)
    hidden_size: int = setting(0, NATURAL)  # H, each encoder layer per direction; 0: the data's
    encoder_layers: int = setting(2, COUNT)
    bidirectional: bool = True  # the encoder reads both ways
    decoder_hidden: int = setting(0, NATURAL)  # Hd; 0: D·H, the memory's width
    decoder_layers: int = setting(1, COUNT)
    cell: CellKind = CellKind.LSTM  # encoder and decoder recurrence
    attention: Scoring | None = Scoring.GENERAL  # None: no attention (Sutskever, Cho)
    input_feeding: bool = True  # feed h̃(t-1) into step t (Luong); attention only
    feed_context: bool = False  # no attention: the summary at every step and to the output (Cho 2014)
    reverse_source: bool = False  # read the source backwards (Sutskever 2014)
    dropout: float = setting(0.2, FRACTION)  # embeddings, between layers, before the output
    tie_embeddings: bool = False  # the target embedding is the output matrix (needs E == Hd)

    def __post_init__(self) -> None:
        check(self)
        for name, kind in (("cell", CellKind), ("attention", Scoring)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                object.__setattr__(self, name, kind(value))
        if self.feed_context and self.attention is not None:
            raise SettingError("feed_context", "is the no-attention decoder's context; with attention the "
                                               "context is attention's", type(self).__name__)
        if self.tie_embeddings and self.embed_size and self.hidden_size and self.embed_size != self.out_hidden:
            raise SettingError("tie_embeddings", f"needs embed_size == the decoder's width; got {self.embed_size} "
                                                 f"and {self.out_hidden}", type(self).__name__)

    @property
    def memory_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def out_hidden(self) -> int:
        """Hd."""
        return self.decoder_hidden or self.memory_size

    def to_dict(self) -> dict:
        return {**asdict(self), "cell": self.cell.value, "attention": self.attention and self.attention.value}


@dataclass
class Encoded:
    """What an encoder gives the decoder."""

    summary: Tensor  # (B, Z): the bridge's input
    memory: Tensor | None = None  # (B, S, M): what attention reads, zero past each length
    lengths: Tensor | None = None  # (B,) source lengths in [1, S]


class Encoder(Protocol):
    memory_size: int  # M
    summary_size: int  # Z

    def __call__(self, source: Tensor, lengths: Tensor | None) -> Encoded: ...


class RecurrentEncoder(nn.Module):
    """Embedding + an rnnkit layer over source ids (B, S) with lengths (B,)."""

    def __init__(self, c: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(c.source_vocab, c.embed_size, padding_idx=PAD_ID)  # (V_s, E)
        self.rnn: Recurrent = LAYERS[c.cell](c.embed_size, c.hidden_size, c.encoder_layers,
                                             bidirectional=c.bidirectional, dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.reverse = c.reverse_source
        self.memory_size = self.summary_size = c.memory_size

    def forward(self, source: Tensor, lengths: Tensor | None) -> Encoded:
        if lengths is None:
            lengths = torch.full((source.shape[0],), source.shape[1], dtype=torch.long, device=source.device)
        x = self.drop(self.embed(source))  # (B, S, E)
        if self.reverse:
            x = reverse_padded(x, lengths)
        y, state = self.rnn(x, lengths)  # y: (B, S, M)
        h = state[0] if isinstance(state, tuple) else state  # (L·D, B, H)
        D = self.rnn.num_directions
        summary = torch.cat(list(h[-D:]), dim=1)  # (B, D·H): the top layer's final states
        if self.reverse:
            y = reverse_padded(y, lengths)  # attention reads the source's own order
        return Encoded(summary, y, lengths)


class VectorEncoder(nn.Module):
    """An encoder of fixed-size inputs (B, *shape) into one summary vector (B, Z), no
    memory: the one-to-many case. ``body`` maps the input to (B, Z)."""

    def __init__(self, body: nn.Module, summary_size: int):
        super().__init__()
        self.body, self.summary_size, self.memory_size = body, summary_size, 0

    def forward(self, source: Tensor, lengths: Tensor | None = None) -> Encoded:
        return Encoded(self.body(source))


@dataclass
class DecoderState:
    """The decoder's state between steps."""

    rnn: list[tuple[Tensor, ...]]  # each layer's cell state, tensors (N, ·)
    feed: Tensor | None  # (N, Hd) h̃(t-1) with input feeding, else None
    summary: Tensor  # (N, Z) the encoder's summary (feed_context reads it)
    memory: Memory | None  # the attention's memory

    def select(self, index: Tensor, same_sources: bool = False) -> DecoderState:
        """Rows ``index`` (N',) of every tensor: beam search's reordering. With
        ``same_sources`` each new row reads the same source as the row it replaces (a beam
        reordered within its source), so the source's summary and memory stay as they are."""
        rnn = [tuple(s[index] for s in layer) for layer in self.rnn]
        feed = None if self.feed is None else self.feed[index]
        if same_sources:
            return DecoderState(rnn, feed, self.summary, self.memory)
        return DecoderState(rnn, feed, self.summary[index], None if self.memory is None else self.memory.select(index))

    def stacked(self) -> Tensor | tuple[Tensor, ...]:
        """The stack's state as its layer takes it: each tensor (L, N, ·)."""
        parts = tuple(torch.stack(parts) for parts in zip(*self.rnn))
        return parts if len(parts) > 1 else parts[0]


class Decoder(nn.Module):
    """The target side: embedding, a unidirectional stack, attention, the output layer."""

    def __init__(self, c: Seq2SeqConfig, summary_size: int, memory_size: int):
        super().__init__()
        Hd = c.out_hidden
        self.config = c
        if c.attention is not None and memory_size == 0:
            raise SettingError("attention", "needs an encoder that gives a memory (this one gives a vector)")
        self.embed = nn.Embedding(c.target_vocab, c.embed_size, padding_idx=PAD_ID)  # (V, E)
        self.feeds = c.attention is not None and c.input_feeding
        width = c.embed_size + (Hd if self.feeds else 0) + (summary_size if c.feed_context else 0)
        self.rnn: Recurrent = LAYERS[c.cell](width, Hd, c.decoder_layers, dropout=c.dropout)
        sizes = self.rnn.cells[0].state_sizes  # (Hd,) or an LSTM's (Hd, Hd)
        self.bridge = nn.ModuleList(nn.Linear(summary_size, c.decoder_layers * n) for n in sizes)  # W_h (, W_c)
        self.attention = None if c.attention is None else Attention(c.attention, Hd, memory_size)
        context = memory_size if c.attention is not None else summary_size if c.feed_context else 0
        self.combine = gemm.Linear(context + Hd, Hd) if context else None  # W_c
        self.drop = nn.Dropout(c.dropout)
        self.out = gemm.Linear(Hd, c.target_vocab)  # W_o, b_o
        if c.tie_embeddings:
            self.out.weight = self.embed.weight

    def start(self, encoded: Encoded) -> DecoderState:
        """The state before the first step: the bridge's initial states, no h̃ yet (zeros)."""
        s = encoded.summary  # (B, Z)
        L, B = self.config.decoder_layers, s.shape[0]
        parts = []
        dtype = self.rnn.cells[0].weight_ih.dtype  # the state's, under autocast too
        for k, bridge in enumerate(self.bridge):
            init = bridge(s).view(B, L, -1).to(dtype)  # (B, L, n_k)
            parts.append(torch.tanh(init) if k == 0 else init)  # h: tanh; an LSTM's cell: linear
        rnn = [tuple(p[:, layer] for p in parts) for layer in range(L)]
        memory = None if self.attention is None else self.attention.prepare(encoded.memory, encoded.lengths)
        feed = s.new_zeros(B, self.config.out_hidden) if self.feeds else None
        return DecoderState(rnn, feed, s, memory)

    def _inputs(self, prev: Tensor, state: DecoderState) -> Tensor:
        x = [self.drop(self.embed(prev))]  # (N, [T,] E)
        if self.feeds:
            x.append(state.feed)
        if self.config.feed_context:
            x.append(state.summary if prev.dim() == 1 else state.summary.unsqueeze(1).expand(-1, prev.shape[1], -1))
        return torch.cat(x, dim=-1)

    def _output(self, o: Tensor, state: DecoderState) -> tuple[Tensor, Tensor, Tensor | None]:
        """(logits, h̃, attention weights) from the stack's output o (N, [T,] Hd)."""
        tilde, alpha = self._tilde(o, state)
        return self.out(self.drop(tilde)), tilde, alpha

    def _tilde(self, o: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None]:
        """(h̃, attention weights) from the stack's output o (N, [T,] Hd)."""
        alpha = None
        if self.attention is not None:
            context, alpha = self.attention(o, state.memory)
        elif self.config.feed_context:
            context = state.summary if o.dim() == 2 else state.summary.unsqueeze(1).expand(-1, o.shape[1], -1)
        else:
            context = None
        tilde = o if context is None else torch.tanh(self.combine(torch.cat([context, o], dim=-1)))  # h̃
        return tilde, alpha

    def _upper(self, x: Tensor, state: DecoderState, rnn: list[tuple[Tensor, ...]]) -> Tensor:
        """The layers above the first for one step, on the first's output x (N, Hd), with the
        layer's dropout before each; their new states are appended to ``rnn``."""
        for layer, cell in enumerate(self.rnn.cells[1:], start=1):
            if self.rnn.dropout > 0:
                x = nn.functional.dropout(x, self.rnn.dropout, self.training)
            x, st = cell(x, state.rnn[layer])  # (N, Hd)
            rnn.append(st)
        return x

    def step(self, prev: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One step: prev (N,) the previous symbols -> logits (N, V), the next state, and the
        attention weights (N, S) (None without attention). The stack's cells run one step
        each, with the layer's dropout between them."""
        x, st = self.rnn.cells[0](self._inputs(prev, state), state.rnn[0])  # (N, Hd)
        rnn = [st]
        logits, tilde, alpha = self._output(self._upper(x, state, rnn), state)
        return logits, DecoderState(rnn, tilde if self.feeds else None, state.summary, state.memory), alpha

    def forward(self, inputs: Tensor, lengths: Tensor, state: DecoderState, sampling: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: inputs (B, T) = <s> y_1 … y_{T-1} with lengths (B,) -> logits (B, T, V)
        and the attention weights (B, T, S) (None without attention). With ``sampling`` = p
        > 0 (scheduled sampling, Bengio et al. 2015), each step after the first reads the
        decoder's own best guess at the step before instead of the true symbol, with
        probability p per sequence and step."""
        if not self.feeds and sampling == 0:  # no step reads the one before: the stack runs over all of it
            o, _ = self.rnn(self._inputs(inputs, state), lengths, state.stacked())  # (B, T, Hd)
            logits, _, alpha = self._output(o, state)
            return logits, alpha
        if sampling == 0:
            return self._fed_back(inputs, state)
        steps, alphas, prev = [], [], inputs[:, 0]
        for t in range(inputs.shape[1]):
            if t > 0:
                own = torch.rand(prev.shape, generator=generator, device=prev.device) < sampling  # (B,)
                prev = torch.where(own, steps[-1].detach().argmax(-1), inputs[:, t])
            logits, state, alpha = self.step(prev, state)
            steps.append(logits)
            alphas.append(alpha)
        return torch.stack(steps, 1), None if alphas[0] is None else torch.stack(alphas, 1)

    def _fed_back(self, inputs: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing with input feeding: the steps of :meth:`step`, with what no step
        waits for done for all steps at once: the first layer's input projection of the
        embeddings before the loop, the output layer after it. Only h̃'s share of that
        projection runs per step (the input is [embedding, h̃]: ``feed_context`` is the
        no-attention decoder's)."""
        first, E = self.rnn.cells[0], self.config.embed_size
        w_embed, w_feed = first.weight_ih[:, :E], first.weight_ih[:, E:].contiguous()  # (G, E), (G, Hd)
        known = gemm.linear(self.drop(self.embed(inputs)), w_embed, first.project_bias)  # (B, T, G)
        tildes, alphas = [], []
        for t in range(inputs.shape[1]):
            xp = known[:, t] + gemm.linear(state.feed, w_feed)  # (B, G)
            x, st = first.recur(xp, state.rnn[0])  # (B, Hd)
            rnn = [st]
            tilde, alpha = self._tilde(self._upper(x, state, rnn), state)  # h̃ (B, Hd)
            state = DecoderState(rnn, tilde, state.summary, state.memory)
            tildes.append(tilde)
            alphas.append(alpha)
        return self.out(self.drop(torch.stack(tildes, 1))), torch.stack(alphas, 1)  # (B, T, V), (B, T, S)


class Seq2Seq(nn.Module):
    """An encoder and a decoder. ``model(source, source_lengths, inputs, input_lengths) ->
    (logits (B, T, V), attention weights (B, T, S) or None)`` under teacher forcing;
    decoding (:mod:`rnnkit.decode.seq2seq`) calls :meth:`encode` and the decoder's
    ``start`` and ``step``.

    Example:
        >>> model = Seq2Seq(Seq2SeqConfig(source_vocab=10, target_vocab=12, embed_size=8, hidden_size=8))
        >>> logits, alpha = model(torch.randint(4, 10, (2, 5)), torch.tensor([5, 3]),
        ...                       torch.randint(4, 12, (2, 4)), torch.tensor([4, 2]))
        >>> logits.shape, alpha.shape
        (torch.Size([2, 4, 12]), torch.Size([2, 4, 5]))
    """

    def __init__(self, config: Seq2SeqConfig, encoder: nn.Module | None = None):
        super().__init__()
        for name in ("embed_size", "hidden_size"):
            if not getattr(config, name):
                raise SettingError(name, "0 (the data's width) is for the training job to set: give a width",
                                   type(config).__name__)
        self.config = config
        self.encoder = encoder if encoder is not None else RecurrentEncoder(config)
        self.decoder = Decoder(config, self.encoder.summary_size, self.encoder.memory_size)

    def encode(self, source: Tensor, lengths: Tensor | None) -> DecoderState:
        return self.decoder.start(self.encoder(source, lengths))

    def forward(self, source: Tensor, source_lengths: Tensor | None, inputs: Tensor, input_lengths: Tensor,
                sampling: float = 0.0, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        return self.decoder(inputs, input_lengths, self.encode(source, source_lengths), sampling, generator)
