"""Sequence-to-sequence data: ``source<TAB>target`` files, each side cut into symbols
(characters, whitespace-separated words, or sentencepiece subwords trained on that side of
the training file), numbered by a vocabulary per side, and batched by source length.

Every vocabulary starts ``<pad> <unk> <s> </s>`` (ids 0-3, :mod:`rnnkit.seq2seq`). A symbol
the training data never had is read as ``<unk>`` (at inference too: never an error). A side
longer than ``max_length`` symbols is cut to that length, and the pipeline's notes name the
lines. A target gives the decoder ``<s> y_1 … y_n`` as inputs and ``y_1 … y_n </s>`` as
targets.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.batch import Batch, pad_sequences
from rnnkit.data.tsv import Pair
from rnnkit.seq2seq import BOS_ID, EOS_ID, PAD_ID
from rnnkit.vocab import BOS, EOS, PAD, UNK, Vocab

SPECIALS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3


class Units(enum.Enum):
    CHAR = "char"  # every character, the space included (runs of whitespace read as one space)
    WORD = "word"  # whitespace-separated tokens (e.g. "h e l l o" for G2P's letters)
    SUBWORD = "subword"  # sentencepiece's unigram pieces, trained on the side's training text


class Tokenizer:
    """A side's text <-> symbols, by its units (a subword side holds its sentencepiece model)."""

    def __init__(self, units: Units, model: bytes | None = None):
        self.units, self.model = units, model
        self.sp = None
        if units is Units.SUBWORD:
            if model is None:
                raise ValueError("subword units need a sentencepiece model")
            import sentencepiece
            self.sp = sentencepiece.SentencePieceProcessor(model_proto=model)

    @classmethod
    def fit(cls, units: Units, texts: Sequence[str], vocab_size: int, seed: int = 0) -> Tokenizer:
        """A tokenizer for ``texts``: subword units train a unigram model of at most
        ``vocab_size`` pieces (fewer where the text has fewer)."""
        if units is not Units.SUBWORD:
            return cls(units)
        import sentencepiece
        out = io.BytesIO()
        sentencepiece.set_random_generator_seed(seed + 1)
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=out, vocab_size=vocab_size, model_type="unigram",
            character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2, bos_id=-1, eos_id=-1,
            unk_id=0, pad_id=-1)
        return cls(units, out.getvalue())

    def split(self, text: str) -> list[str]:
        if self.units is Units.CHAR:
            return list(" ".join(text.split()))
        if self.units is Units.WORD:
            return text.split()
        return self.sp.encode(text, out_type=str)

    def join(self, symbols: Sequence[str]) -> str:
        if self.units is Units.CHAR:
            return "".join(symbols)
        if self.units is Units.WORD:
            return " ".join(symbols)
        return self.sp.decode(list(symbols))


@dataclass(frozen=True)
class Side:
    """One side's tokenizer and vocabulary."""

    tokenizer: Tokenizer
    vocab: Vocab

    @classmethod
    def fit(cls, units: Units, texts: Sequence[str], vocab_size: int, min_freq: int) -> Side:
        tokenizer = Tokenizer.fit(units, texts, vocab_size)
        vocab = Vocab.build([tokenizer.split(t) for t in texts], specials=SPECIALS, min_freq=min_freq)
        return cls(tokenizer, vocab)

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(self.tokenizer.split(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.join(self.vocab.decode([i for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)]))


def encode_pairs(pairs: Sequence[Pair], source: Side, target: Side, max_length: int,
                 path: Path) -> tuple[list[tuple[list[int], list[int]]], str | None]:
    """(source ids, target ids) of each pair, each side cut to ``max_length``; and a note
    naming the lines cut (None if none was)."""
    examples, cut = [], []
    for p in pairs:
        s, t = source.encode(p.source), target.encode(p.target)
        if len(s) > max_length or len(t) > max_length:
            cut.append(p.line)
            s, t = s[:max_length], t[:max_length]
        examples.append((s, t))
    note = None
    if cut:
        shown = ", ".join(map(str, cut[:10])) + (", ..." if len(cut) > 10 else "")
        note = f"warning: {path}: {len(cut)} lines longer than {max_length} symbols cut to it (lines {shown})"
    return examples, note


def collate(examples: list[tuple[list[int], list[int]]], indices: list[int]) -> Batch:
    """Sources (B, S) with lengths; decoder inputs <s> y (B, T) in ``extra``; targets y </s>
    (B, T) with their lengths."""
    sources, lengths = pad_sequences([torch.tensor(s, dtype=torch.long) for s, _ in examples], value=PAD_ID)
    inputs, _ = pad_sequences([torch.tensor([BOS_ID, *t], dtype=torch.long) for _, t in examples], value=PAD_ID)
    targets, target_lengths = pad_sequences([torch.tensor([*t, EOS_ID], dtype=torch.long) for _, t in examples],
                                            value=PAD_ID)
    return Batch(sources, lengths, targets, target_lengths, torch.tensor(indices), extra={"inputs": inputs},
                 extra_rows=("inputs",))
