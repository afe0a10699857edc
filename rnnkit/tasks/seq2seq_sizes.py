"""The sizes a seq2seq model gets when only its data is given: subword pieces per side and
the embedding and hidden widths, both growing with the training corpus.

- Pieces: about one per ``WORDS_PER_PIECE`` whitespace words of the side's training text,
  the nearest of ``PIECES`` (1k-32k, in doublings). Small corpora want small vocabularies:
  Sennrich & Zhang (2019, "Revisiting low-resource NMT") gain several BLEU by shrinking
  the vocabulary under about a million words.
- Widths (embedding = hidden per encoder direction): the widest of ``WIDTHS`` whose model
  has at most ``PARAMS_PER_SYMBOL`` parameters per target symbol of the training data
  (the end symbols included); the narrowest if none fits.

:func:`rnnkit.tasks.seq2seq.training_job` applies both to what its configs leave 0 (their
defaults: ``--vocab-size``, ``--embed`` and ``--hidden`` not given) and says what it chose.
On this project's data (RESULTS.md) they give 256 wide for CMUdict's 121k words, 128 wide
with 4k pieces for the 28k Bible verses, and 64 for the 6k digit strips.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import nn

from rnnkit.seq2seq import Seq2SeqConfig

PIECES = (1000, 2000, 4000, 8000, 16000, 32000)
WORDS_PER_PIECE = 200
WIDTHS = (64, 128, 256, 512)
PARAMS_PER_SYMBOL = 10


def default_pieces(texts: Sequence[str]) -> int:
    """Subword pieces for one side's training ``texts``: the nearest of PIECES (on a log
    scale) to its word count over WORDS_PER_PIECE."""
    words = sum(len(t.split()) for t in texts)
    wanted = math.log(max(words / WORDS_PER_PIECE, 1.0))
    return min(PIECES, key=lambda p: abs(math.log(p) - wanted))


def sized(config: Seq2SeqConfig, target_symbols: int, build: Callable[[Seq2SeqConfig], nn.Module]) -> Seq2SeqConfig:
    """``config`` with each width left 0 (embed_size, hidden_size) set to the widest of
    WIDTHS whose model, ``build(config)``, has at most PARAMS_PER_SYMBOL parameters per
    training target symbol. The vocabulary sizes must be set already."""
    if config.embed_size and config.hidden_size:
        return config
    budget = PARAMS_PER_SYMBOL * target_symbols
    chosen = replace(config, embed_size=config.embed_size or WIDTHS[0], hidden_size=config.hidden_size or WIDTHS[0])
    for width in WIDTHS[1:]:
        candidate = replace(config, embed_size=config.embed_size or width, hidden_size=config.hidden_size or width)
        if count_parameters(build(candidate)) > budget:
            break
        chosen = candidate
    return chosen


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(build: Callable[[Seq2SeqConfig], nn.Module]) -> Callable[[Seq2SeqConfig], nn.Module]:
    """``build`` allocating no memory: the model's parameters on the meta device."""
    def meta_build(config: Seq2SeqConfig) -> nn.Module:
        with torch.device("meta"):
            return build(config)
    return meta_build
