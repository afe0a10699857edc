"""`rnnkit tag train|eval|predict`: POS tagging, NER, slot filling. The pipeline is
:mod:`rnnkit.tasks.tagger`; this module turns flags into its configs.

Models (``--model``): ``bilstm-crf`` (default), ``bilstm`` (softmax output),
and the baselines ``hmm`` (supervised HMM) and ``crf`` (CRF over sparse features).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.commands.common import (
    common_parent,
    eval_parent,
    maybe_launch,
    print_metrics,
    run_job,
    setup,
    setup_inference,
    start_run,
)
from rnnkit.data.errors import read_lines
from rnnkit.data.tagged import TaggedSentence, write_conll, write_conllu, write_slash
from rnnkit.metrics import tagging_metrics
from rnnkit.settings import rule
from rnnkit.tasks.tagger import (
    Baseline,
    Format,
    TagData,
    TaggerConfig,
    data_format,
    load_tagger,
    read_tagged,
    tag_all,
    train_baseline,
    training_job,
)

FORMATS = [f.value for f in Format] + ["text"]  # text: plain sentences to tag (predict)
NEURAL = {"bilstm-crf": True, "bilstm": False}  # model name -> CRF output layer
BASELINES = [b.value for b in Baseline]


def _format(name: str | None) -> Format | None:
    if name == "text":
        raise ValueError("--format text holds no tags; use conllu, conll or slash")
    return None if name is None else Format(name)


def _read_plain(lines: list[str]) -> list[TaggedSentence]:
    return [TaggedSentence(line.split(), [], n) for n, line in enumerate(lines, 1) if line.strip()]


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    data = TagData(train=args.train, dev=args.dev, format=_format(args.format), column=args.column,
                   batch_size=args.batch_size, min_freq=args.min_freq, holdout=args.holdout, seed=args.seed)
    config = TaggerConfig(num_words=0, num_chars=0, num_tags=0, word_dim=args.embed, char_dim=args.char_dim,
                          char_hidden=args.char_hidden, hidden=args.hidden, layers=args.layers, dropout=args.dropout,
                          crf=NEURAL.get(args.model, True), bio_constraints=args.bio_constraints,
                          sparse_embeddings=args.sparse_embeddings)
    run = start_run(args)
    if args.model in BASELINES:
        metrics = train_baseline(data, Baseline(args.model), args.out / "model")
        print(f"model saved to {args.out / 'model'}", file=sys.stderr)
        if metrics:
            print_metrics(metrics, as_json=False)
        return 0
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    return run_job(args, training_job(data, config, world, args.resumed), world, run)


def _saved_format(ck) -> Format | None:
    return Format(ck.config["format"]) if ck.config.get("format") else None


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    tagger, ck = load_tagger(args.model)
    fmt = data_format(args.data, _format(args.format) or _saved_format(ck))
    data = read_tagged(args.data, fmt, args.column or ck.config.get("column"))
    predicted = tag_all(tagger, [s.tokens for s in data])
    metrics = tagging_metrics([s.tags for s in data], predicted, [s.tokens for s in data],
                              set(ck.vocabs["known"].symbols))
    print_metrics(metrics, args.json)
    return 0


def _predict(args: argparse.Namespace, argv: list[str]) -> int:
    tagger, ck = load_tagger(args.model)
    fmt = args.format or (data_format(args.data, None).value if args.data and args.data.suffix in (".conllu", ".conll")
                          else "text")
    if fmt == "text":
        sentences = _read_plain(read_lines(args.data) if args.data else sys.stdin.read().splitlines())
    else:
        if args.data is None:
            raise ValueError(f"--format {fmt} needs --data FILE (standard input is read as plain text)")
        sentences = read_tagged(args.data, Format(fmt), args.column or ck.config.get("column"))
    predicted = tag_all(tagger, [s.tokens for s in sentences])
    out = sys.stdout
    if fmt == "conllu":
        write_conllu(args.data, out, predicted, args.column or ck.config.get("column") or "upos")
    elif fmt == "conll":
        write_conll(out, sentences, predicted)
    else:
        write_slash(out, sentences, predicted)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    tag = sub.add_parser("tag", help="sequence labelling: POS tagging, NER, slot filling")
    actions = tag.add_subparsers(dest="action", required=True)
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=FORMATS, default=None,
                     help="default: from the extension (.conllu, .conll; otherwise word/TAG)")
    fmt.add_argument("--column", default=None, help="CoNLL-U column name or index, or the CoNLL tag column")
    train = actions.add_parser("train", parents=[common_parent(), fmt], help="train a tagger")
    train.add_argument("--train", type=Path, required=True, help="tagged training file")
    train.add_argument("--dev", type=Path, default=None, help="default: --holdout of the training sentences")
    train.add_argument("--model", choices=[*NEURAL, *BASELINES], default="bilstm-crf",
                       help="bilstm-crf, bilstm (softmax output), or a baseline: hmm, crf (sparse features)")
    train.add_argument("--batch-size", type=rule(TagData, "batch_size"), default=32, help="sentences per batch")
    train.add_argument("--embed", "--word-dim", type=rule(TaggerConfig, "word_dim"), default=100,
                       help="word embedding width")
    train.add_argument("--char-dim", type=rule(TaggerConfig, "char_dim"), default=30,
                       help="character embedding width (0: no character features)")
    train.add_argument("--char-hidden", type=rule(TaggerConfig, "char_hidden"), default=50,
                       help="character BiLSTM units per direction")
    train.add_argument("--hidden", type=rule(TaggerConfig, "hidden"), default=100, help="BiLSTM units per direction")
    train.add_argument("--layers", type=rule(TaggerConfig, "layers"), default=1, help="stacked BiLSTM layers")
    train.add_argument("--dropout", type=rule(TaggerConfig, "dropout"), default=0.5,
                       help="on the word representations and the BiLSTM outputs")
    train.add_argument("--min-freq", type=rule(TagData, "min_freq"), default=2,
                       help="rarer words are <unk> (characters still see them)")
    train.add_argument("--bio-constraints", action="store_true", help="forbid invalid BIO transitions")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent(), fmt], help="metrics on tagged data")
    ev.add_argument("--data", type=Path, required=True, help="tagged file to score")
    ev.set_defaults(run=_eval)
    pr = actions.add_parser("predict", parents=[fmt], help="tag text (one sentence per line) or a CoNLL file")
    pr.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    pr.add_argument("--data", type=Path, default=None, help="default: standard input")
    pr.set_defaults(run=_predict)


