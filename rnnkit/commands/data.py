"""`rnnkit data NAME`: fetch and prepare a real corpus; `rnnkit data list`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.data import speech_corpus
from rnnkit.data.corpora import CORPORA, cache_root, fetch

SPEECH = "speech-espeak"  # synthesized, not fetched: rnnkit.data.speech_corpus


def _speech(force: bool) -> dict[str, Path]:
    out = cache_root() / SPEECH
    if (out / ".prepared").exists() and not force:
        return {p.name.removesuffix(".tsv"): p for p in sorted(out.glob("*.tsv"))}
    paths = speech_corpus.build(out, speech_corpus.bible_sentences())
    (out / ".prepared").write_text("espeak-ng, sword-text-web\n")
    return paths


def _data(args: argparse.Namespace, argv: list[str]) -> int:
    if args.name == "list":
        for c in CORPORA.values():
            print(f"{c.name:16s} {c.about} [{c.requirement}; licence: {c.licence}]")
        print(f"{SPEECH:16s} English speech synthesized by espeak-ng from the World English Bible, 84 voices, "
              "split by voice; words and CMU phones [espeak-ng, sword-text-web; licence: public domain text]")
        print(f"cache: {cache_root()} (set RNNKIT_DATA to change)")
        return 0
    if args.name == SPEECH:
        for name, path in _speech(args.force).items():
            print(f"{name}\t{path}")
        return 0
    for split, path in fetch(args.name, force=args.force).items():
        print(f"{split}\t{path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and prepare a real corpus (`rnnkit data list` names them)")
    p.add_argument("name", help="a corpus name, or 'list'")
    p.add_argument("--force", action="store_true", help="download and prepare again")
    p.set_defaults(run=_data)
