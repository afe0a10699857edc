"""Plain text as tokens: words or characters, one sequence per line or one stream with end-of-line symbols."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from rnnkit.data.errors import read_lines
from rnnkit.vocab import EOS


class Level(Enum):
    WORD = "word"  # tokens are whitespace-separated words
    CHAR = "char"  # tokens are characters, spaces included


class Layout(Enum):
    LINES = "lines"  # one sequence per non-blank line
    STREAM = "stream"  # one sequence for the whole file, EOS after each line when asked


@dataclass
class TextCorpus:
    sequences: list[list[str]]  # LINES: one per non-blank line; STREAM: exactly one
    skipped_blank_lines: int  # blank (whitespace-only) lines that gave no tokens
    lines: list[int]  # 1-based line of each sequence (STREAM: [1])


def read_text(path: str | Path, level: Level = Level.WORD, layout: Layout = Layout.LINES, *,
              add_eos: bool = True) -> TextCorpus:
    """Tokens of a UTF-8 text file.

    LINES: a blank line gives no sequence (counted in ``skipped_blank_lines``); ``add_eos``
    appends EOS to each sequence. STREAM: the lines' tokens in order, EOS after each line when
    ``add_eos`` (so a blank line gives a lone EOS and is not skipped; without ``add_eos`` it is).
    CHAR keeps every character of a line but its ending, spaces included.

    Example:
        >>> read_text("a.txt", Level.WORD, Layout.STREAM).sequences  # a file holding "a b\\n\\nc\\n"
        [['a', 'b', '</s>', '</s>', 'c', '</s>']]
        >>> read_text("a.txt", Level.CHAR, add_eos=False)
        TextCorpus(sequences=[['a', ' ', 'b'], ['c']], skipped_blank_lines=1, lines=[1, 3])
    """
    if not isinstance(level, Level) or not isinstance(layout, Layout):
        raise TypeError(f"level must be a Level and layout a Layout; got {level!r}, {layout!r}")
    eos = [EOS] if add_eos else []
    sequences, lines, skipped = [], [], 0
    for n, text in enumerate(read_lines(path), 1):
        blank = not text.strip()
        if blank and (layout is Layout.LINES or not add_eos):
            skipped += 1
            continue
        tokens = [] if blank else text.split() if level is Level.WORD else list(text)
        sequences.append(tokens + eos)  # a blank line in a stream gives its EOS alone
        lines.append(n)
    if layout is Layout.STREAM:
        return TextCorpus([[t for s in sequences for t in s]], skipped, [1])
    return TextCorpus(sequences, skipped, lines)
