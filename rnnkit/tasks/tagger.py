"""Sequence labelling (POS, NER, slot filling): a BiLSTM tagger over word
embeddings and a character-level BiLSTM representation of each word, with a
softmax or a linear-chain CRF output layer (Huang et al. 2015; Lample et al.
2016; seed 000)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from rnnkit.batch import Batch, pad_sequences
from rnnkit.crf import CRF, bio_constraints
from rnnkit.layers import LSTM
from rnnkit.losses import Reduction, masked_cross_entropy
from rnnkit.metrics import is_span_scheme
from rnnkit.train import StepOutput
from rnnkit.vocab import PAD, UNK, Vocab


@dataclass(frozen=True)
class TaggerConfig:
    num_words: int  # word vocabulary size (with <pad>, <unk>)
    num_chars: int  # character vocabulary size (with <pad>, <unk>)
    num_tags: int  # K
    word_dim: int = 100  # word embedding width
    char_dim: int = 30  # character embedding width; 0: no character features
    char_hidden: int = 50  # character LSTM units per direction
    hidden: int = 100  # word BiLSTM units per direction
    layers: int = 1  # stacked word BiLSTM layers
    dropout: float = 0.5  # on the word representations and the BiLSTM outputs
    crf: bool = True  # a linear-chain CRF output layer (else a per-token softmax)
    bio_constraints: bool = False  # forbid invalid BIO transitions in the CRF
    lowercase: bool = True  # look words up lower-cased (the characters keep the case)
    sparse_embeddings: bool = False  # sparse gradients for the word table (only used rows are updated)

    def to_dict(self) -> dict:
        return asdict(self)


class Tagger(nn.Module):
    """(words (B, T), lengths (B,), chars of the batch's word types) -> emissions (B, T, K).

    The character BiLSTM runs once per distinct word of the batch: ``chars``
    (U, C) with ``char_lengths`` (U,), and ``types`` (B, T) gives each token's
    row in it. Its final forward and backward states, concatenated, are
    appended to the word embedding.
    """

    def __init__(self, config: TaggerConfig, tags: list[str]):
        super().__init__()
        c = self.config = config
        self.embed = nn.Embedding(c.num_words, c.word_dim, padding_idx=0, sparse=c.sparse_embeddings)  # (V, E)
        width = c.word_dim
        if c.char_dim:
            self.char_embed = nn.Embedding(c.num_chars, c.char_dim, padding_idx=0)
            self.char_rnn = LSTM(c.char_dim, c.char_hidden, bidirectional=True)
            width += 2 * c.char_hidden
        self.rnn = LSTM(width, c.hidden, c.layers, bidirectional=True, dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(2 * c.hidden, c.num_tags)
        constraints = bio_constraints(tags) if c.bio_constraints and is_span_scheme(set(tags)) else ()
        self.crf = CRF(c.num_tags, *constraints) if c.crf else None

    def emissions(self, batch: Batch) -> Tensor:
        x = self.embed(batch.inputs)  # (B, T, E)
        if self.config.char_dim:
            extra = batch.extra
            chars = self.char_embed(extra["chars"])  # (U, C, Ec)
            _, (h, _) = self.char_rnn(chars, extra["char_lengths"])  # h: (2, U, Hc)
            words = torch.cat([h[0], h[1]], dim=1)  # (U, 2Hc)
            x = torch.cat([x, words[extra["types"]]], dim=2)  # (B, T, E + 2Hc)
        h, _ = self.rnn(self.drop(x), batch.lengths)  # (B, T, 2H)
        return self.out(self.drop(h))  # (B, T, K)

    def forward(self, batch: Batch) -> Tensor:
        """The training loss, summed over tokens (softmax) or sequences (CRF negative log-likelihood)."""
        e = self.emissions(batch)
        if self.crf is None:
            return masked_cross_entropy(e, batch.targets, batch.lengths, reduction=Reduction.SUM)
        return self.crf.nll(e, batch.targets.clamp(min=0), batch.lengths, Reduction.SUM)

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[list[int]]:
        e = self.emissions(batch)
        if self.crf is not None:
            return self.crf.decode(e, batch.lengths)
        best = e.argmax(-1)
        return [best[b, :n].tolist() for b, n in enumerate(batch.lengths.tolist())]


@dataclass
class TaggerVocabs:
    words: Vocab
    chars: Vocab
    tags: Vocab  # no specials: tag i is class i

    @classmethod
    def build(cls, sentences: list[list[str]], tags: list[list[str]], lowercase: bool,
              min_freq: int = 2) -> TaggerVocabs:
        """Words seen fewer than ``min_freq`` times are <unk> (so <unk> is learned)."""
        words = Vocab.build([[w.lower() if lowercase else w for w in s] for s in sentences],
                            specials=(PAD, UNK), min_freq=min_freq)
        chars = Vocab.build(["".join(s) for s in sentences], specials=(PAD, UNK))
        return cls(words, chars, Vocab(sorted({t for ts in tags for t in ts})))


class TaggerEncoder:
    """Turns sentences (and tags) into Batches for a Tagger."""

    def __init__(self, vocabs: TaggerVocabs, lowercase: bool, max_word_length: int = 30):
        self.vocabs, self.lowercase, self.max_word_length = vocabs, lowercase, max_word_length

    def example(self, words: list[str], tags: list[str] | None) -> tuple[list[str], Tensor, Tensor | None]:
        ids = torch.tensor(self.vocabs.words.encode(w.lower() if self.lowercase else w for w in words))
        tag_ids = None
        if tags is not None:
            unknown = [t for t in tags if t not in self.vocabs.tags]
            if unknown:
                raise ValueError(f"tag {unknown[0]!r} was not seen in training (known: {len(self.vocabs.tags)})")
            tag_ids = torch.tensor(self.vocabs.tags.encode(tags))
        return words, ids, tag_ids

    def collate(self, examples: list[tuple[list[str], Tensor, Tensor | None]], indices: list[int]) -> Batch:
        words, lengths = pad_sequences([ids for _, ids, _ in examples])  # (B, T)
        targets = None
        if examples[0][2] is not None:
            targets, _ = pad_sequences([t for _, _, t in examples], value=-100)  # (B, T)
        types: dict[str, int] = {}
        index = torch.zeros_like(words)  # (B, T)
        for b, (tokens, _, _) in enumerate(examples):
            for t, w in enumerate(tokens):
                index[b, t] = types.setdefault(w[:self.max_word_length], len(types))
        chars, char_lengths = pad_sequences([torch.tensor(self.vocabs.chars.encode(w)) for w in types])  # (U, C)
        extra = {"chars": chars, "char_lengths": char_lengths, "types": index}
        return Batch(words, lengths, targets, indices=torch.tensor(indices), extra=extra)


class NeuralTagger:
    """A trained Tagger with its vocabularies: tags lists of words, in length-sorted batches."""

    def __init__(self, model: Tagger, vocabs: TaggerVocabs, config: TaggerConfig):
        self.model, self.vocabs, self.config = model, vocabs, config
        self.encoder = TaggerEncoder(vocabs, config.lowercase)

    def tag(self, sentences: list[list[str]], batch_size: int = 64) -> list[list[str]]:
        self.model.eval()
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out: list[list[str]] = [[] for _ in sentences]
        for start in range(0, len(order), batch_size):
            idx = [i for i in order[start:start + batch_size] if sentences[i]]
            if not idx:
                continue
            batch = self.encoder.collate([self.encoder.example(sentences[i], None) for i in idx], idx)
            for i, tags in zip(idx, self.model.predict(batch)):
                out[i] = self.vocabs.tags.decode(tags)
        return out


def objective(model: nn.Module, batch: Batch, state) -> StepOutput:
    """The engine's view of a Tagger (called through DistributedDataParallel when there is one)."""
    return StepOutput(model(batch), batch.tokens, None)
