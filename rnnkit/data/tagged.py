"""Tagged sentences (POS, NER, chunking): CoNLL-U, CoNLL column files and word/TAG lines, read and written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rnnkit.data.errors import DataError, read_lines

CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str]  # one per token
    line: int  # 1-based line where the sentence starts (its comments included, for CoNLL-U)


def conllu_column(column: str | int) -> int:
    """The 0-based index of a CoNLL-U column given by name (any case) or index: ``conllu_column("UPOS") == 3``."""
    if isinstance(column, int) and not isinstance(column, bool) and 0 <= column < len(CONLLU_COLUMNS):
        return column
    if isinstance(column, str) and column.lower() in CONLLU_COLUMNS:
        return CONLLU_COLUMNS.index(column.lower())
    raise ValueError(f"unknown CoNLL-U column {column!r}; expected 0..9 or one of {', '.join(CONLLU_COLUMNS)}")


def _blocks(lines: list[str]) -> list[list[tuple[int, str]]]:
    """Blank-line separated blocks of (line number, text)."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for n, text in enumerate(lines, 1):
        if text.strip():
            blocks[-1].append((n, text))
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _conllu(path: str | Path, col: int) -> list[tuple[TaggedSentence, list[int]]]:
    """Sentences with the line number of each of their tokens."""
    out = []
    for block in _blocks(read_lines(path)):
        sentence, token_lines = TaggedSentence([], [], block[0][0]), []
        for n, text in block:
            if text.startswith("#"):
                continue
            fields = text.split("\t")
            if len(fields) != 10:
                raise DataError(path, n, f"expected 10 tab-separated fields, got {len(fields)}")
            if "-" in fields[0] or "." in fields[0]:
                continue  # a multiword token (3-4) or an empty node (5.1): not a word of the sentence
            if not fields[0].isdigit():
                raise DataError(path, n, f"bad token id {fields[0]!r}")
            if fields[col] in ("_", ""):
                raise DataError(path, n, f"missing tag in column {CONLLU_COLUMNS[col]}")
            sentence.tokens.append(fields[1])
            sentence.tags.append(fields[col])
            token_lines.append(n)
        if sentence.tokens:  # a block of comments alone holds no sentence
            out.append((sentence, token_lines))
    return out


def read_conllu(path: str | Path, column: str | int = "upos") -> list[TaggedSentence]:
    """Sentences of a CoNLL-U file: tokens from FORM, tags from ``column`` (a name or 0-based index).

    Comments, multiword-token lines (``3-4``) and empty nodes (``5.1``) are not tokens.

    Example:
        >>> [s.tags for s in read_conllu("en_ewt-ud-dev.conllu", "xpos")][:1]
        [['UH', ',', 'PRP', 'VBP', ...]]
    """
    return [sentence for sentence, _ in _conllu(path, conllu_column(column))]


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1, sep: str | None = None
               ) -> list[TaggedSentence]:
    """Sentences of a CoNLL column file (``EU NNP B-NP B-ORG`` lines, blank lines between sentences).

    Columns are split on ``sep`` (default: any whitespace); ``-DOCSTART-`` lines are skipped.
    Every token line must have as many columns as the first one.

    Example:
        >>> read_conll("eng.train")[0]  # CoNLL-2003: token first, NER tag last
        TaggedSentence(tokens=['EU', 'rejects', ...], tags=['B-ORG', 'O', ...], line=3)
    """
    sentences, width = [], None
    for block in _blocks(read_lines(path)):
        sentence = None
        for n, text in block:
            fields = text.split(sep)
            if fields[0] == "-DOCSTART-":
                continue
            width = width or len(fields)
            if len(fields) != width:
                raise DataError(path, n, f"expected {width} columns, got {len(fields)}")
            for what, c in (("token", token_column), ("tag", tag_column)):
                if not (-width <= c < width and fields[c]):
                    raise DataError(path, n, f"missing {what}: column {c} of {width} is absent or empty")
            if token_column % width == tag_column % width:
                raise DataError(path, n, f"the token and the tag would be the same column ({width} column"
                                         f"{'s' if width > 1 else ''} per line): a CoNLL file needs a tag column")
            sentence = sentence or TaggedSentence([], [], n)
            sentence.tokens.append(fields[token_column])
            sentence.tags.append(fields[tag_column])
        if sentence is not None:  # None when the block held only -DOCSTART-
            sentences.append(sentence)
    return sentences


def read_slash(path: str | Path, sep: str = "/") -> list[TaggedSentence]:
    """One sentence per line of space-separated ``word/TAG`` items, split at the last ``sep``.

    Blank lines hold no sentence and are skipped (the records' ``line`` shows where each came from).

    Example:
        >>> read_slash("wsj.pos")[0].tokens[:3], read_slash("wsj.pos")[0].tags[:3]  # "1/2/CD" -> "1/2", "CD"
        (['Pierre', 'Vinken', ','], ['NNP', 'NNP', ','])
    """
    sentences = []
    for n, text in enumerate(read_lines(path), 1):
        if not text.strip():
            continue
        sentence = TaggedSentence([], [], n)
        for item in text.split():
            word, found, tag = item.rpartition(sep)
            if not (found and word and tag):
                raise DataError(path, n, f"item {item!r} is not word{sep}TAG")
            sentence.tokens.append(word)
            sentence.tags.append(tag)
        sentences.append(sentence)
    return sentences


def _write(dst: str | Path | TextIO, text: str) -> None:
    if isinstance(dst, (str, Path)):
        Path(dst).write_text(text, encoding="utf-8", newline="\n")
    else:
        dst.write(text)


def _tags(sentences: Sequence[TaggedSentence], tags: Sequence[Sequence[str]] | None, token_sep: str | None,
          tag_sep: str) -> Sequence[Sequence[str]]:
    """``tags`` (default: the sentences' own), checked: one per token, each writable (tokens unchecked if no sep)."""
    tags = [s.tags for s in sentences] if tags is None else tags
    if len(tags) != len(sentences):
        raise ValueError(f"{len(sentences)} sentences but {len(tags)} tag lists")
    for s, t in zip(sentences, tags):
        if len(t) != len(s.tokens):
            raise ValueError(f"the sentence of line {s.line} has {len(s.tokens)} tokens but {len(t)} tags")
        for item, sep in [(x, tag_sep) for x in t] + [(w, token_sep) for w in s.tokens if token_sep is not None]:
            if not item or any(c.isspace() for c in item) or (sep and sep in item):
                raise ValueError(f"{item!r} (sentence of line {s.line}) cannot be written: empty or holds a separator")
    return tags


def write_conll(dst: str | Path | TextIO, sentences: Sequence[TaggedSentence],
                tags: Sequence[Sequence[str]] | None = None, sep: str = "\t") -> None:
    """Write ``token<sep>tag`` lines, a blank line after each sentence; ``tags`` replace the sentences' own."""
    tags = _tags(sentences, tags, sep, sep)
    _write(dst, "".join("".join(f"{w}{sep}{t}\n" for w, t in zip(s.tokens, ts)) + "\n"
                        for s, ts in zip(sentences, tags)))


def write_slash(dst: str | Path | TextIO, sentences: Sequence[TaggedSentence],
                tags: Sequence[Sequence[str]] | None = None, sep: str = "/") -> None:
    """Write one line of ``word/TAG`` items per sentence (a tag may not contain ``sep``; a word may)."""
    tags = _tags(sentences, tags, "", sep)
    _write(dst, "".join(" ".join(f"{w}{sep}{t}" for w, t in zip(s.tokens, ts)) + "\n"
                        for s, ts in zip(sentences, tags)))


def write_conllu(src_path: str | Path, dst: str | Path | TextIO, predicted_tags: Sequence[Sequence[str]],
                 column: str | int = "upos") -> None:
    """Copy the CoNLL-U file ``src_path`` to ``dst`` with ``column`` of each token line set to the predicted tags;
    comments, multiword tokens, empty nodes and the other columns are kept as they are."""
    col = conllu_column(column)
    parsed, lines = _conllu(src_path, col), read_lines(src_path)
    _tags([s for s, _ in parsed], predicted_tags, None, "\t")
    for (_, token_lines), tags in zip(parsed, predicted_tags):
        for n, tag in zip(token_lines, tags):
            fields = lines[n - 1].split("\t")
            fields[col] = tag
            lines[n - 1] = "\t".join(fields)
    _write(dst, "\n".join(lines) + "\n")
