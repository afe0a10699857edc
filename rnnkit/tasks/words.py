"""The word level of a character recognizer: its lexicon (the words it may write, spelled in
its character units) and its word n-gram, both fitted on the training transcripts and kept
in the model directory (``lexicon.txt``, ``words.arpa``), or brought by the user (a word
list, any ARPA file over words, e.g. one built by KenLM's ``lmplz``).

A lexicon file holds a word per line (its first whitespace-separated field; blank lines are
skipped); a word spelled with a character the model lacks cannot be written and is left out
(counted). The word LM's label 0 is the end of a sentence (``</s>``), label i the lexicon's
word i - 1 (:class:`rnnkit.decode.Lexicon`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.arpa import ArpaLM, write_arpa
from rnnkit.data.errors import DataError, read_lines
from rnnkit.decode import Lexicon
from rnnkit.ngram import NGram
from rnnkit.vocab import Vocab

LEXICON_FILE = "lexicon.txt"
WORD_LM_FILE = "words.arpa"
SPACE = " "  # the character unit between words


def training_words(transcripts: Sequence[str]) -> list[str]:
    """The distinct words of the transcripts, sorted."""
    return sorted({w for t in transcripts for w in t.split()})


def lexicon_text(words: Sequence[str]) -> str:
    return "".join(f"{w}\n" for w in words)


def word_lm_text(transcripts: Sequence[str], words: Sequence[str], order: int) -> str:
    """The word n-gram (interpolated Witten-Bell) fitted on the transcripts, each followed by
    the end of sentence: ARPA text over ``words``."""
    index = {w: i + 1 for i, w in enumerate(words)}
    stream = np.array([i for t in transcripts for i in [*(index[w] for w in t.split()), 0]], dtype=np.int64)
    out = io.StringIO()
    write_arpa(NGram(order, len(words) + 1).fit(stream), ["</s>", *words], out, end_id=0)
    return out.getvalue()


def word_files(texts: Sequence[str], order: int) -> dict[str, str]:
    """A character recognizer's lexicon and word n-gram fitted on ``texts`` (transcripts, or
    any sentences of the domain): the model directory's two files."""
    words = training_words(texts)
    return {LEXICON_FILE: lexicon_text(words), WORD_LM_FILE: word_lm_text(texts, words, order)}


@dataclass(frozen=True)
class WordLevel:
    """What word decoding needs: the lexicon and its word LM (None: words unscored)."""

    lexicon: Lexicon
    lm: ArpaLM | None
    space: int  # the separator's character unit
    dropped: int  # the file's words that the units cannot spell


def read_lexicon(path: Path, units: Vocab) -> tuple[list[str], list[list[int]], int]:
    """(words, their spellings in ``units``, the count of words left out) from a lexicon file."""
    words, spellings, dropped, seen = [], [], 0, set()
    for line in read_lines(path):
        fields = line.split()
        if not fields or fields[0] in seen:
            continue
        word = fields[0]
        if any(c not in units for c in word):
            dropped += 1
            continue
        seen.add(word)
        words.append(word)
        spellings.append([units[c] for c in word])
    if not words:
        raise DataError(path, None, "no word of this lexicon is spelled in the model's characters")
    return words, spellings, dropped


def load_word_level(lexicon: Path, lm: Path | None, units: Vocab) -> WordLevel:
    """The lexicon file, spelled in ``units`` (which must hold the space), and the ARPA word LM ``lm``."""
    if SPACE not in units:
        raise ValueError("word decoding needs a character model whose units hold the space")
    words, spellings, dropped = read_lexicon(lexicon, units)
    word_lm = ArpaLM(lm, ["</s>", *words], end_id=0) if lm is not None else None
    return WordLevel(Lexicon(words, spellings), word_lm, units[SPACE], dropped)
