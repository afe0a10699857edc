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
)
from rnnkit.data.tagged import TaggedSentence, write_conll, write_conllu, write_slash
from rnnkit.metrics import tagging_metrics
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


def _read_plain(text: str) -> list[TaggedSentence]:
    return [TaggedSentence(line.split(), [], n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    if args.model not in NEURAL and args.model not in BASELINES:
        raise ValueError(f"unknown --model {args.model!r}; choose from {', '.join([*NEURAL, *BASELINES])}")
    data = TagData(train=args.train, dev=args.dev, format=_format(args.format), column=args.column,
                   batch_size=args.batch_size, min_freq=args.min_freq, holdout=args.holdout, seed=args.seed)
    if args.model in BASELINES:
        metrics = train_baseline(data, Baseline(args.model), args.out / "model")
        if metrics:
            print_metrics(metrics, as_json=False)
        return 0
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    config = TaggerConfig(num_words=0, num_chars=0, num_tags=0, word_dim=args.word_dim, char_dim=args.char_dim,
                          char_hidden=args.char_hidden, hidden=args.hidden, layers=args.layers, dropout=args.dropout,
                          crf=NEURAL[args.model], bio_constraints=args.bio_constraints,
                          sparse_embeddings=args.sparse_embeddings)
    job = training_job(data, config, world)
    fit = run_job(args, job, world)
    if world.is_main and fit.history and job.metric:
        best = max(fit.history, key=lambda h: h[job.metric])
        print(f"best dev {job.metric}: {best[job.metric]:.4f} (epoch {best['epoch']})")
    return 0


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
        text = args.data.read_text(encoding="utf-8") if args.data else sys.stdin.read()
        sentences = _read_plain(text)
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
    train.add_argument("--train", type=Path, required=True)
    train.add_argument("--dev", type=Path, default=None, help="default: --holdout of the training sentences")
    train.add_argument("--model", default="bilstm-crf", help=f"one of {', '.join([*NEURAL, *BASELINES])}")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--word-dim", type=int, default=100)
    train.add_argument("--char-dim", type=int, default=30, help="0: no character features")
    train.add_argument("--char-hidden", type=int, default=50)
    train.add_argument("--hidden", type=int, default=100)
    train.add_argument("--layers", type=int, default=1)
    train.add_argument("--dropout", type=float, default=0.5)
    train.add_argument("--min-freq", type=int, default=2, help="rarer words are <unk> (chars still see them)")
    train.add_argument("--bio-constraints", action="store_true", help="forbid invalid BIO transitions")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent(), fmt], help="metrics on tagged data")
    ev.add_argument("--data", type=Path, required=True)
    ev.set_defaults(run=_eval)
    pr = actions.add_parser("predict", parents=[fmt], help="tag text (one sentence per line) or a CoNLL file")
    pr.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    pr.add_argument("--data", type=Path, default=None, help="default: standard input")
    pr.set_defaults(run=_predict)


