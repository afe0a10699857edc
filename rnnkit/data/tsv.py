"""Tab-separated two-field files: ``source<TAB>target`` pairs (translation, transduction) and ``label<TAB>text``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.errors import DataError, read_lines


@dataclass
class Pair:
    source: str
    target: str
    line: int  # 1-based


@dataclass
class Labelled:
    label: str
    text: str
    line: int  # 1-based


def read_fields(path: str | Path, names: tuple[str, str]) -> list[tuple[int, str, str]]:
    """(line, first, second) for each non-blank line of exactly two non-empty TAB-separated fields.

    Blank lines are skipped (each record keeps its line number); quotes are ordinary characters.
    ``names`` name the fields in errors: ``("label", "text")`` gives
    "expected 2 tab-separated fields (label<TAB>text), got 3".
    """
    rows = []
    for n, text in enumerate(read_lines(path), 1):
        if "\0" in text:
            raise DataError(path, n, "a NUL byte: this is not a text file")
        if "\r" in text:
            raise DataError(path, n, "a carriage return inside the line (\\r not followed by a line end)")
        if not text.strip():
            continue
        fields = text.split("\t")  # fields of any length; quotes are ordinary characters
        if len(fields) != 2:
            raise DataError(path, n, f"expected 2 tab-separated fields ({names[0]}<TAB>{names[1]}), got {len(fields)}")
        for name, value in zip(names, fields):
            if not value.strip():
                raise DataError(path, n, f"empty {name} field")
        rows.append((n, fields[0], fields[1]))
    return rows


def read_pairs(path: str | Path) -> list[Pair]:
    """``source<TAB>target`` lines, e.g. ``Go.<TAB>Va !`` -> ``Pair("Go.", "Va !", line=1)``."""
    return [Pair(a, b, n) for n, a, b in read_fields(path, ("source", "target"))]


def read_labelled(path: str | Path) -> list[Labelled]:
    """``label<TAB>text`` lines, e.g. ``pos<TAB>a fine film`` -> ``Labelled("pos", "a fine film", line=1)``."""
    return [Labelled(a, b, n) for n, a, b in read_fields(path, ("label", "text"))]
