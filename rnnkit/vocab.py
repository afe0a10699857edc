"""Vocabulary: symbols <-> integer ids, with special symbols and a frequency cut-off."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PAD, UNK, BOS, EOS, BLANK = "<pad>", "<unk>", "<s>", "</s>", "<blank>"


@dataclass
class Vocab:
    """An ordered list of symbols; the specials come first, so <pad> is id 0 when present.

    Build with :meth:`build`; ``vocab[symbol]`` gives an id (the <unk> id for
    an unknown symbol when the vocabulary has <unk>, else KeyError).

    Example:
        >>> v = Vocab.build(["a b a", "c a"], tokenize=str.split, specials=(PAD, UNK))
        >>> v.encode("a z".split()), v.decode([2, 3])
        ([2, 1], ['a', 'b'])
    """

    symbols: list[str]
    specials: tuple[str, ...] = ()
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {s: i for i, s in enumerate(self.symbols)}
        if len(self.index) != len(self.symbols):
            raise ValueError("Vocab symbols must be unique")

    @classmethod
    def build(cls, items: Iterable[Sequence[str] | str], *, tokenize=None,
              specials: Sequence[str] = (PAD, UNK), min_freq: int = 1,
              max_size: int | None = None) -> Vocab:
        """Count the symbols of ``items`` (sequences of symbols, or strings split by
        ``tokenize``; a plain string without ``tokenize`` is split into characters)
        and keep those seen at least ``min_freq`` times, most frequent first, ties
        in order of first appearance."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1; got {min_freq}")
        counts: Counter[str] = Counter()
        for item in items:
            counts.update(tokenize(item) if tokenize is not None else item)
        kept = [s for s, n in counts.most_common() if n >= min_freq and s not in specials]
        if max_size is not None:
            kept = kept[:max(0, max_size - len(specials))]
        return cls(list(specials) + kept, tuple(specials))

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.index

    def __getitem__(self, symbol: str) -> int:
        i = self.index.get(symbol)
        if i is not None:
            return i
        if UNK in self.index:
            return self.index[UNK]
        raise KeyError(f"{symbol!r} is not in the vocabulary, which has no {UNK}")

    def id(self, special: str) -> int:
        """The id of a special symbol; KeyError naming it if the vocabulary lacks it."""
        if special not in self.index:
            raise KeyError(f"the vocabulary has no {special}")
        return self.index[special]

    def encode(self, symbols: Iterable[str]) -> list[int]:
        return [self[s] for s in symbols]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.symbols[i] for i in ids]

    def to_dict(self) -> dict:
        return {"symbols": self.symbols, "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(list(d["symbols"]), tuple(d["specials"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
