"""`rnnkit classify train|eval|predict`: many-to-one sequence classification of text
(``label<TAB>text``) or real-valued series (``.ts``) on the common engine, and
its logistic-regression baselines (``--model bow-logreg`` for text,
``--model stats-logreg`` for series). The pipeline is :mod:`rnnkit.tasks.classify`;
this module turns flags into its configs. The model directory (OUT/model) holds
everything eval and predict need."""

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
    thread_count,
)
from rnnkit.data.errors import DataError
from rnnkit.layers import CellKind
from rnnkit.settings import SettingError, rule
from rnnkit.tasks.classify import (
    DEFAULTS,
    ClassifierConfig,
    ClassifyData,
    ModelKind,
    Pool,
    classification_metrics,
    load_classifier,
    train_baseline,
    training_job,
)
from rnnkit.tasks.classify_data import (
    Format,
    TextConfig,
    data_format,
    label_ids,
    read_cases,
    read_unlabelled,
    read_unlabelled_texts,
)
from rnnkit.tasks.linear_baselines import LogRegConfig


def _format(given: str | None) -> Format | None:
    return None if given is None else Format(given)


def _apply_defaults(args: argparse.Namespace) -> None:
    """The flags not given take the defaults for the training file's kind of data."""
    defaults = DEFAULTS[data_format(args.train, _format(args.format))]
    for flag, value in (("cell", defaults.cell.value), ("pool", defaults.pool.value), ("hidden", defaults.hidden_size),
                        ("dropout", defaults.dropout), ("lr", defaults.lr), ("min_freq", defaults.min_freq),
                        ("bidirectional", defaults.bidirectional)):
        if getattr(args, flag) is None:
            setattr(args, flag, value)


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    if args.bptt is not None:
        raise SettingError("bptt", "does not apply to classify: every sequence is one example, read whole")
    _apply_defaults(args)
    data = ClassifyData(train=args.train, dev=args.dev, format=_format(args.format),
                        text=TextConfig(lowercase=args.lowercase, min_freq=args.min_freq),
                        batch_size=args.batch_size, holdout=args.holdout, seed=args.seed)
    config = ClassifierConfig(num_classes=0, embed_size=args.embed, cell=CellKind(args.cell), hidden_size=args.hidden,
                              num_layers=args.layers, bidirectional=args.bidirectional, dropout=args.dropout,
                              pool=Pool(args.pool), attention_size=args.attention_size)
    baseline = LogRegConfig(C=args.C)
    run = start_run(args)
    kind = ModelKind(args.model)
    if kind is not ModelKind.RNN:
        metrics = train_baseline(data, kind, baseline, args.out / "model")
        print(f"model saved to {args.out / 'model'}", file=sys.stderr)
        if metrics:
            print_metrics(metrics, False)
        return 0
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    return run_job(args, training_job(data, config, world, args.resumed), world, run)


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    model = load_classifier(args.model, args.device)
    cases = read_cases(args.data, data_format(args.data, _format(args.format), model.fmt))
    print_metrics(classification_metrics(model.scores(cases), label_ids(cases, model.labels)), args.json)
    return 0


def _predict(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    model = load_classifier(args.model, args.device)
    if args.data is not None:
        cases = read_unlabelled(args.data, data_format(args.data, _format(args.format), model.fmt))
    elif model.fmt is Format.TSV:
        text = sys.stdin.read()
        if not text.strip():
            raise DataError("<stdin>", None, "no text to classify")
        cases = read_unlabelled_texts("<stdin>", text.splitlines())
    else:
        raise ValueError(f"{args.model} reads .ts series: give them with --data FILE")
    for k in model.scores(cases).argmax(1).tolist():
        print(model.labels.symbols[k])
    sys.stdout.flush()
    return 0


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=[f.value for f in Format], default=None,
                   help="tsv (label<TAB>text) or ts (sktime .ts); default: from the extension "
                        "(eval and predict fall back on the model's)")


def register(sub: argparse._SubParsersAction) -> None:
    classify = sub.add_parser("classify", help="many-to-one classification of text or real-valued series")
    actions = classify.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", parents=[common_parent()], help="train a classifier or a baseline")
    train.add_argument("--train", type=Path, required=True, help="label<TAB>text .tsv or .ts file")
    train.add_argument("--dev", type=Path, default=None, help="scored each epoch; the best epoch is kept "
                                                              "(default: --holdout of the training cases)")
    _data_flags(train)
    train.add_argument("--model", choices=[m.value for m in ModelKind], default=ModelKind.RNN.value,
                       help="rnn, or a logistic-regression baseline: bow-logreg (text), stats-logreg (.ts)")
    g = train.add_argument_group("rnn")
    g.add_argument("--cell", choices=[c.value for c in CellKind], default=None, help="default: gru for series, lstm "
                                                                                    "for text")
    g.add_argument("--layers", type=rule(ClassifierConfig, "num_layers"), default=1, help="stacked recurrent layers")
    g.add_argument("--hidden", type=rule(ClassifierConfig, "hidden_size"), default=None,
                   help="units per direction (default: 64 series, 100 text)")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None, help="default: yes")
    g.add_argument("--dropout", type=rule(ClassifierConfig, "dropout"), default=None,
                   help="on embeddings, between layers and on the summary (default: 0 series, 0.5 text)")
    g.add_argument("--pool", choices=[p.value for p in Pool], default=None,
                   help="the summary the output layer sees; every-step scores each step against the label "
                        "(default: last for series, max for text)")
    g.add_argument("--attention-size", type=rule(ClassifierConfig, "attention_size"), default=64,
                   help="width of the attention's hidden layer (--pool attention)")
    g.add_argument("--embed", type=rule(ClassifierConfig, "embed_size"), default=100,
                   help="word embedding width (text)")
    g.add_argument("--batch-size", type=rule(ClassifyData, "batch_size"), default=32,
                   help="sequences per batch and per process")
    t = train.add_argument_group("text")
    t.add_argument("--lowercase", action="store_true", help="lowercase before splitting into words")
    t.add_argument("--min-freq", type=rule(TextConfig, "min_freq"), default=None,
                   help="rarer training words become <unk> (default 2)")
    b = train.add_argument_group("baselines")
    b.add_argument("--C", type=rule(LogRegConfig, "C"), default=1.0,
                   help="inverse L2 strength of the logistic regression")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent()], help="accuracy, loss, count and macro F1 on a file")
    ev.add_argument("--data", type=Path, required=True, help="labelled .tsv or .ts file")
    _data_flags(ev)
    ev.set_defaults(run=_eval)
    pr = actions.add_parser("predict", help="one predicted label per line")
    pr.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    pr.add_argument("--data", type=Path, default=None,
                    help="text lines or label<TAB>text (default: stdin), or a .ts file")
    _data_flags(pr)
    pr.add_argument("--device", default="cpu", help="cpu or cuda")
    pr.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    pr.set_defaults(run=_predict)
