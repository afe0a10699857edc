"""Recurrent language models: next-symbol prediction, scored as perplexity or bits per
character, and generation by sampling (:func:`rnnkit.decode.sample`: draw from the output
distribution, feed the draw back, repeat).

Two training regimes on the common engine (:mod:`rnnkit.train`):

- STREAM: the text is one stream of symbols, ``</s>`` ending each line, cut into
  B contiguous rows; truncated BPTT over chunks of k steps with each row's state
  carried from chunk to chunk (Mikolov's RNNLM; Zaremba et al. 2014).
- SENTENCES: every line is a sentence ``<s> w_1 … w_n </s>`` scored on its own
  from a zero state, batched by length with the padding masked out (the
  DyNet benchmark's regime).

A language model is called as ``model(ids (B, T), lengths (B,) | None, state) ->
(logits (B, T, V), state)``, or with ``targets`` (B, T) as ``model(ids, lengths, state,
targets) -> (summed cross-entropy of the scored steps, state)``: the training, the
scoring and the sampling go through these two calls only, for :class:`LanguageModel`
here and the fixed-window NPLM of :mod:`rnnkit.tasks.nplm` alike. Both score through
:class:`rnnkit.softmax.SoftmaxOutput`, which never keeps the (B, T, V) logits.

:func:`training_job` is the pipeline: text files and configs -> a training job.

Dimensions: B batch, T time, E embedding, H hidden, L layers, V vocabulary.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.batch import Batch, BatchingConfig, pad_sequences
from rnnkit.checkpoint import Checkpoint, load_weights, read_config
from rnnkit.checks import valid_mask
from rnnkit.data.split import hold_out, hold_out_tail
from rnnkit.data.text import Layout, Level, read_text
from rnnkit.distributed import SINGLE, World
from rnnkit.layers import LAYERS, CellKind, LayerState, Recurrent
from rnnkit.loader import SequenceLoader, StreamLoader
from rnnkit.runner import TrainingJob
from rnnkit.settings import COUNT, FRACTION, NATURAL, POSITIVE, SettingError, check, setting
from rnnkit.softmax import SoftmaxOutput
from rnnkit.tasks.nplm import NPLM, NPLMConfig
from rnnkit.train import StepOutput
from rnnkit.vocab import BOS, EOS, UNK, Vocab


class Regime(enum.Enum):
    STREAM = "stream"  # one stream, truncated BPTT, state carried across chunks
    SENTENCES = "sentences"  # one sequence per line, <s> ... </s>, padded and masked


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int = setting(rule=NATURAL)  # V, including special symbols; 0 until the data sets it
    embed_size: int = setting(64, COUNT)  # E, width of the symbol embeddings
    hidden_size: int = setting(256, COUNT)  # H, width of each recurrent layer
    num_layers: int = setting(1, COUNT)  # L, stacked recurrent layers
    dropout: float = setting(0.0, FRACTION)  # on embeddings, between layers and before the softmax
    tie_weights: bool = False  # share the embedding and output matrices (needs E == H)
    cell: CellKind = CellKind.LSTM  # the recurrence of every layer
    init_range: float | None = setting(None, POSITIVE)  # all parameters from U(-r, r) (Zaremba: 0.1); None: layers' own

    def __post_init__(self) -> None:
        check(self)
        if self.tie_weights and self.embed_size != self.hidden_size:
            raise SettingError("tie_weights", f"needs embed_size == hidden_size; got {self.embed_size} and "
                               f"{self.hidden_size}", type(self).__name__)

    def to_dict(self) -> dict:
        return {**asdict(self), "cell": self.cell.value}

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        return cls(**{**d, "cell": CellKind(d["cell"])})


class LanguageModel(nn.Module):
    """Embedding -> recurrent stack -> softmax layer.

    ``model(ids, lengths=None, state=None) -> (logits (B, T, V), state)`` with
    ids (B, T) integer symbols; with ``targets`` (B, T), the summed cross-entropy of the
    scored steps (each row's first ``lengths``, or all) instead of the logits. ``rnn`` is
    any rnnkit recurrent layer taking E inputs (default: a stack of the config's cell
    and size).

    Example:
        >>> lm = LanguageModel(LMConfig(vocab_size=100))
        >>> ids = torch.randint(0, 100, (2, 7))
        >>> logits, state = lm(ids)                                    # (2, 7, 100)
        >>> loss, state = lm(ids[:, :-1], targets=ids[:, 1:])          # summed over 2 × 6 steps
    """

    def __init__(self, config: LMConfig, rnn: Recurrent | None = None):
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.embed_size)  # (V, E)
        self.rnn = rnn or LAYERS[c.cell](c.embed_size, c.hidden_size, c.num_layers, dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.out = SoftmaxOutput(self.rnn.output_size, c.vocab_size)  # (V, H)
        if c.tie_weights:
            if c.embed_size != self.rnn.output_size:
                raise ValueError(f"tie_weights needs embed_size == hidden size; "
                                 f"got {c.embed_size} and {self.rnn.output_size}")
            self.out.weight = self.embed.weight
        if c.init_range is not None:
            for p in self.parameters():
                nn.init.uniform_(p, -c.init_range, c.init_range)

    def forward(self, ids: Tensor, lengths: Tensor | None = None, state: LayerState | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, LayerState]:
        """Logits (B, T, V), or given targets (B, T) the summed cross-entropy of the scored steps."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        h, state = self.rnn(x, lengths, state)  # (B, T, H)
        h = self.drop(h)
        if targets is None:
            return self.out.logits(h), state  # (B, T, V)
        h, targets = scored_steps(h, targets, lengths)  # (N, H), (N,)
        return self.out(h, targets), state


def scored_steps(h: Tensor, targets: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """The scored rows of h (B, T, H) and targets (B, T): every step, or each row's first
    ``lengths`` (B,). Returns (N, H), (N,)."""
    if lengths is None:
        return h.flatten(0, 1), targets.flatten()
    mask = valid_mask(lengths.to(h.device), h.shape[1])  # (B, T)
    return h[mask], targets[mask]


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

def stream_objective(model: nn.Module, batch: Batch, state) -> StepOutput:
    """Summed cross-entropy of a chunk of full rows, from the carried state."""
    loss, state = model(batch.inputs, None, state, batch.targets)
    return StepOutput(loss, batch.targets.numel(), state)


def sentence_objective(model: nn.Module, batch: Batch, state) -> StepOutput:
    """Summed cross-entropy over each sentence's own steps; padding is never scored."""
    loss, state = model(batch.inputs, batch.lengths, state, batch.targets)
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
        loss, state = model(x, lengths, state, y)
        total += float(loss)
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
        loss, _ = model(batch.inputs, batch.lengths, None, batch.targets)
        total += float(loss)
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



# ---------------------------------------------------------------- the pipeline

ARCHITECTURES = {LMConfig: LanguageModel, NPLMConfig: NPLM}  # a model config -> the model it builds
NAMES = {LMConfig: "rnn", NPLMConfig: "nplm"}  # how config.json names them (``--model``)


@dataclass(frozen=True)
class LMData:
    """The text a language model trains on, and how it is cut into batches."""

    train: Path  # UTF-8 text: words split by spaces, or characters
    dev: Path | None = None  # scored at each epoch's end; None: held out of train (holdout)
    level: Level = Level.WORD
    regime: Regime = Regime.STREAM
    batch_size: int = setting(20, COUNT)  # STREAM: stream rows, over all processes; SENTENCES: sentences
    bptt: int = setting(20, COUNT)  # STREAM: steps per batch (the truncated BPTT length)
    max_tokens: int | None = setting(None, COUNT)  # SENTENCES: a token budget per batch instead of batch_size
    min_count: int = setting(1, COUNT)  # rarer training symbols become <unk>
    max_vocab: int | None = setting(None, COUNT)  # keep at most this many symbols
    eval_batch_size: int | None = setting(None, COUNT)  # dev scoring: stream rows (default 1, exact) or sentences (64)
    eval_bptt: int = setting(256, COUNT)  # dev scoring: stream chunk length (memory only)
    holdout: float = setting(0.1, FRACTION)  # without dev: the fraction of train held out (see rnnkit.data.split)
    seed: int = setting(0, NATURAL)  # batch order and the held-out part

    def __post_init__(self) -> None:
        check(self)
        if self.regime is Regime.STREAM and self.max_tokens is not None:
            raise SettingError("max_tokens", "batches sentences: use it with --regime sentences",
                               type(self).__name__)


def read_corpus(path: Path, level: Level, regime: Regime) -> list[list[str]]:
    """STREAM: one token list for the whole file; SENTENCES: one per non-blank line. ``</s>`` ends each line."""
    layout = Layout.STREAM if regime is Regime.STREAM else Layout.LINES
    return read_text(path, level, layout).sequences


def encode(sequences: list[list[str]], vocab: Vocab, regime: Regime) -> Tensor | list[Tensor]:
    return encode_stream(sequences[0], vocab) if regime is Regime.STREAM else encode_sentences(sequences, vocab)


def _split(sequences: list[list[str]], data: LMData) -> tuple[list[list[str]], list[list[str]] | None, str | None]:
    """(train, dev, a note): the dev file's text, or a part held out of train."""
    if data.dev is not None:
        return sequences, read_corpus(data.dev, data.level, data.regime), None
    if data.holdout == 0:
        return sequences, None, None
    if data.regime is Regime.STREAM:
        tokens = sequences[0]
        cut = hold_out_tail(len(tokens), data.holdout)
        if cut == len(tokens):
            return sequences, None, None
        note = (f"no --dev given: the last {len(tokens) - cut:,} of the {len(tokens):,} tokens of {data.train} "
                f"are held out as dev data (--holdout)")
        return [tokens[:cut]], [tokens[cut:]], note
    split = hold_out(len(sequences), data.holdout, data.seed)
    if not split.dev:
        return sequences, None, None
    return [sequences[i] for i in split.train], [sequences[i] for i in split.dev], \
        split.describe("lines", str(data.train))


def training_job(data: LMData, model: LMConfig | NPLMConfig, world: World = SINGLE,
                 resumed: Checkpoint | None = None) -> TrainingJob:
    """Read and encode the text, build the vocabulary (or take the ``resumed`` checkpoint's),
    the loader (this rank's share) and the model; ``model``'s vocab_size (and an NPLM's pad_id)
    are set from the vocabulary."""
    train, dev, note = _split(read_corpus(data.train, data.level, data.regime), data)
    vocab = resumed.vocabs["tokens"] if resumed else build_vocab(train, data.regime, data.min_count, data.max_vocab)
    extra = {"pad_id": vocab.id(start_symbol(data.regime))} if isinstance(model, NPLMConfig) else {}
    config = replace(model, vocab_size=len(vocab), **extra)
    network = ARCHITECTURES[type(config)](config)
    if data.regime is Regime.STREAM:
        loader = StreamLoader(encode_stream(train[0], vocab), data.batch_size, data.bptt, world.rank, world.size)
        batches = len(loader.epoch(0))
    else:
        sentences = encode_sentences(train, vocab)
        batching = BatchingConfig(max_tokens=data.max_tokens, batch_size=None if data.max_tokens else data.batch_size,
                                  seed=data.seed)
        loader = SequenceLoader(sentences, [len(s) - 1 for s in sentences], collate_sentences, batching,
                                world.rank, world.size)
        batches = len(loader.sampler)
    eval_batch = data.eval_batch_size or (1 if data.regime is Regime.STREAM else 64)
    spec = {"level": data.level.value, "regime": data.regime.value, "model": NAMES[type(config)],
            "config": config.to_dict(),
            "training": {"batch_size": data.batch_size, "bptt": data.bptt if data.regime is Regime.STREAM else None,
                         "eval_batch_size": eval_batch}}
    dev_ids = encode(dev, vocab, data.regime) if dev is not None else None
    notes = [note] if note else []
    notes.append(f"vocabulary: {len(vocab)} symbols; {sum(map(len, train)):,} training tokens; "
                 f"{sum(p.numel() for p in network.parameters()):,} parameters")
    return TrainingJob(network, OBJECTIVES[data.regime], loader, batches, {"task": "lm", "lm": spec},
                       {"tokens": vocab},
                       evaluate=(lambda m: evaluate(m, dev_ids, data.level, data.regime, eval_batch, data.eval_bptt))
                       if dev_ids is not None else None,
                       metric="loss" if dev_ids is not None else None, minimize=True,
                       carry_state=data.regime is Regime.STREAM, notes=notes)


def load_model(directory: Path) -> tuple[nn.Module, dict, Vocab]:
    """A trained model directory: the model (weights loaded), its ``lm`` config record and vocabulary."""
    ck = read_config(directory)
    if ck.config.get("task") != "lm":
        raise ValueError(f"{ck.path} holds a {ck.config.get('task')!r} model, not a language model")
    spec = ck.config["lm"]
    config_class = next(c for c, name in NAMES.items() if name == spec["model"])
    model = ARCHITECTURES[config_class](config_class.from_dict(spec["config"]))
    load_weights(ck.path, model)
    if "tokens" not in ck.vocabs:
        raise ValueError(f"{ck.path} has no vocabulary (vocab-tokens.json)")
    return model, spec, ck.vocabs["tokens"]
