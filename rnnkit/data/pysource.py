"""Python's standard-library sources as a character corpus, in the spirit of char-rnn
on Linux source (Karpathy 2015); the files are on every machine with Python."""

from __future__ import annotations

import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}


@dataclass(frozen=True)
class SourceSplit:
    train: str  # training text: files concatenated in path order
    test: str  # held-out files, never seen in training
    train_files: int
    test_files: int


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def python_files(root: Path | None = None) -> list[Path]:
    """Every .py file under ``root`` (default: the standard library), tests excluded, sorted."""
    root = root or stdlib_root()
    return sorted(p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts))


def held_out(path: Path, root: Path, fraction: float) -> bool:
    """A file is held out by a hash of its relative path: stable across machines."""
    return zlib.crc32(str(path.relative_to(root)).encode()) % 1000 < fraction * 1000


def load_python_sources(root: Path | None = None, *, test_fraction: float = 0.05,
                        max_chars: int | None = None) -> SourceSplit:
    """Split the sources by file into train and held-out text.

    ``max_chars`` caps each side (the corpus is ~12 MB). Files that are not
    valid UTF-8 are skipped (the standard library has none).
    """
    root = root or stdlib_root()
    train, test = [], []
    for path in python_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        (test if held_out(path, root, test_fraction) else train).append(text)
    train_text, test_text = "".join(train), "".join(test)
    if max_chars is not None:
        train_text, test_text = train_text[:max_chars], test_text[:max_chars]
    return SourceSplit(train_text, test_text, len(train), len(test))
