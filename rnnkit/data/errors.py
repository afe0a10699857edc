"""The error every reader raises on bad input, naming the file and line, and a safe line reader."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A problem with an input file, located to its 1-based line (or to the whole file).

    Example:
        >>> str(DataError("train.conllu", 12, "expected 10 tab-separated fields, got 9"))
        'train.conllu:12: expected 10 tab-separated fields, got 9'
        >>> str(DataError("x.tsv", None, "no such file"))
        'x.tsv: no such file'
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # keep pickling (e.g. across DataLoader workers) working
        return type(self), (self.path, self.line, self.message)


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, without their endings; ``lines[i]`` is line ``i + 1``.

    Lines end at ``\\n``; a ``\\r`` before it (Windows files) is dropped, as is a leading
    byte-order mark. Raises DataError for a missing or unreadable file, invalid UTF-8
    (naming the line and byte offset of the bad bytes) and a file with nothing but blanks.

    Example:
        >>> read_lines("a.txt")  # a file holding b"one\\r\\ntwo\\n"
        ['one', 'two']
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except OSError as e:
        raise DataError(path, None, f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start:e.end].hex(" ")
        raise DataError(path, line, f"invalid UTF-8 (bytes {bad}) at byte offset {e.start} of the file") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DataError(path, None, "empty file")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return [line.removesuffix("\r") for line in lines]
