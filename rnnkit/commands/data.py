"""`rnnkit data NAME`: fetch and prepare a real corpus; `rnnkit data list`."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rnnkit.data import bible, digit_strips, series_corpora, speech_corpus
from rnnkit.data.corpora import CORPORA, cache_root, fetch
from rnnkit.settings import COUNT

SPEECH = "speech-espeak"  # synthesized, not fetched: rnnkit.data.speech_corpus
BIBLE = "bible-es-en"  # from Debian's packages: rnnkit.data.bible
STRIPS = "digit-strips"  # composed from scikit-learn's digits: rnnkit.data.digit_strips


def _speech(force: bool, utterances: int) -> dict[str, Path]:
    out = cache_root() / SPEECH
    stamp = f"espeak-ng and flite, sword-text-web; {utterances} training utterances\n"
    sentences = speech_corpus.bible_sentences(cache_root() / "web-sentences.txt")
    if not ((out / ".prepared").exists() and (out / ".prepared").read_text() == stamp) or force:
        if out.exists():
            shutil.rmtree(out)
        speech_corpus.build(out, sentences, train=utterances)
        (out / ".prepared").write_text(stamp)
    if not (out / speech_corpus.LM_TEXT).exists():
        speech_corpus.write_lm_text(out, sentences)
    paths = {p.name.removesuffix(".tsv"): p for p in sorted(out.glob("*.tsv"))}
    return paths | {"lm-text": out / speech_corpus.LM_TEXT}


def _bible(force: bool) -> dict[str, Path]:
    out = cache_root() / BIBLE
    stamp = f"{bible.PACKAGES}; test {bible.TEST_BOOKS}; dev {bible.DEV_BOOKS}\n"
    if not ((out / ".prepared").exists() and (out / ".prepared").read_text() == stamp) or force:
        bible.prepare(out)
        (out / ".prepared").write_text(stamp)
    return {p.stem: p for p in sorted(out.glob("*.tsv"))}


def _strips(force: bool) -> dict[str, Path]:
    out = cache_root() / STRIPS
    stamp = f"{digit_strips.SIZES}; canvas {digit_strips.CANVAS}, training strips up to {digit_strips.TRAIN_MAX}\n"
    if not ((out / ".prepared").exists() and (out / ".prepared").read_text() == stamp) or force:
        if out.exists():
            shutil.rmtree(out)
        digit_strips.prepare(out)
        (out / ".prepared").write_text(stamp)
    return {p.stem: p for p in sorted(out.glob("*.tsv"))}


def _data(args: argparse.Namespace, argv: list[str]) -> int:
    if args.name == "list":
        for c in CORPORA.values():
            print(f"{c.name:16s} {c.about} [{c.requirement}; licence: {c.licence}]")
        print(f"{SPEECH:16s} English speech synthesized by espeak-ng from the World English Bible, 84 voices, "
              "split by voice; words and CMU phones [espeak-ng, sword-text-web; licence: public domain text]")
        print(f"{BIBLE:16s} Spanish-English verse pairs, Reina-Valera 1909 and World English Bible, split by book "
              "[sword-text-sparv, sword-text-web; licence: public domain]")
        for source in series_corpora.SOURCES.values():
            print(f"{source.name:16s} {source.about}, season {source.season} [licence: {source.licence}]")
        print(f"{STRIPS:16s} strips of 1-8 handwritten digits (scikit-learn's 8x8 digits) and their digit strings "
              "[scikit-learn; licence: BSD]")
        print(f"cache: {cache_root()} (set RNNKIT_DATA to change)")
        return 0
    built = {SPEECH: lambda: _speech(args.force, args.utterances), BIBLE: lambda: _bible(args.force),
             STRIPS: lambda: _strips(args.force)}
    if args.name in series_corpora.SOURCES:
        out = cache_root() / "series"
        path = out / f"{args.name}.csv"
        if not path.exists() or args.force:
            series_corpora.prepare(args.name, out)
        print(f"{args.name}\t{path}")
        return 0
    if args.name in built:
        for name, path in built[args.name]().items():
            print(f"{name}\t{path}")
        return 0
    for split, path in fetch(args.name, force=args.force).items():
        print(f"{split}\t{path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and prepare a real corpus (`rnnkit data list` names them)")
    p.add_argument("name", help="a corpus name, or 'list'")
    p.add_argument("--force", action="store_true", help="download and prepare again")
    p.add_argument("--utterances", type=COUNT, default=4000,
                   help=f"{SPEECH}: training utterances to synthesize (dev and test: 300 each, flite: 200)")
    p.set_defaults(run=_data)
