"""`rnnkit classify train|eval|predict`: many-to-one sequence classification of text
(``label<TAB>text``) or real-valued series (``.ts``) on the common engine, and
its logistic-regression baselines (``--model bow-logreg`` for text,
``--model stats-logreg`` for series). The model directory (OUT/model) holds
everything eval and predict need."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.batch import BatchingConfig
from rnnkit.callbacks import best_epoch
from rnnkit.checkpoint import load_weights, read_config, save_model_dir
from rnnkit.commands.common import (
    common_parent,
    eval_parent,
    maybe_launch,
    print_metrics,
    run_config,
    setup,
    thread_count,
)
from rnnkit.data.errors import DataError
from rnnkit.layers import CellKind
from rnnkit.loader import SequenceLoader
from rnnkit.runner import TrainingJob, run_training
from rnnkit.tasks.classify import (
    Classifier,
    ClassifierConfig,
    Format,
    ModelKind,
    Pool,
    classification_metrics,
    collate,
    make_objective,
    predict_log_probs,
)
from rnnkit.tasks.classify_data import (
    Cases,
    TextConfig,
    check_cases,
    feature_stats,
    label_ids,
    label_vocab,
    model_inputs,
    read_cases,
    read_unlabelled,
    read_unlabelled_texts,
    word_vocab,
)
from rnnkit.tasks.linear_baselines import BagOfWords, LogRegConfig, SeriesStats
from rnnkit.vocab import Vocab

EXTENSIONS = {".tsv": Format.TSV, ".ts": Format.TS}


def _format(path: Path, given: str | None, default: Format | None = None) -> Format:
    """--format, else the file's extension, else ``default``."""
    if given is not None:
        return Format(given)
    fmt = EXTENSIONS.get(Path(path).suffix.lower(), default)
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the extension {Path(path).suffix!r} "
                         f"(.tsv or .ts); name it with --format tsv|ts")
    return fmt


@dataclass
class Loaded:
    """A trained model directory, ready to score cases."""

    kind: ModelKind
    fmt: Format  # what it reads
    labels: Vocab  # its classes
    scores: Callable[[Cases], Tensor]  # cases -> (N, K) class scores (log-probabilities)


def _load(directory: Path, device: str = "cpu") -> Loaded:
    ck = read_config(directory)
    config = ck.config
    if config.get("task") != "classify":
        raise ValueError(f"{directory} holds a {config.get('task')!r} model, not a classify one")
    kind, fmt, text = ModelKind(config["model"]), Format(config["format"]), TextConfig(**config["text"])
    labels = ck.vocabs["labels"]
    if kind is ModelKind.RNN:
        classifier = ClassifierConfig.from_dict(config["classifier"])
        model = Classifier(classifier)
        load_weights(directory, model)
        model.to(device)

        def scores(cases: Cases) -> Tensor:
            inputs = model_inputs(cases, classifier, ck.vocabs.get("words"), text)
            return predict_log_probs(model, inputs, device=device)

        return Loaded(kind, fmt, labels, scores)
    if kind is ModelKind.BOW_LOGREG:
        bow = BagOfWords(ck.vocabs["ngrams"], len(labels), text, config["max_n"])
        load_weights(directory, bow)

        def bow_scores(cases: Cases) -> Tensor:
            check_cases(cases, fmt)
            return bow.log_probs(cases.texts)

        return Loaded(kind, fmt, labels, bow_scores)
    stats = SeriesStats(config["num_features"], len(labels))
    load_weights(directory, stats)

    def stats_scores(cases: Cases) -> Tensor:
        check_cases(cases, fmt, stats.num_features)
        return stats.log_probs(cases.series)

    return Loaded(kind, fmt, labels, stats_scores)


def _text_config(args: argparse.Namespace) -> TextConfig:
    return TextConfig(lowercase=args.lowercase, min_freq=args.min_freq)


def _train_baseline(args: argparse.Namespace, kind: ModelKind, fmt: Format) -> int:
    wants = Format.TSV if kind is ModelKind.BOW_LOGREG else Format.TS
    if fmt is not wants:
        other = "bow-logreg" if fmt is Format.TSV else "stats-logreg"
        raise ValueError(f"--model {kind.value} reads {wants.value} data; {args.train} is {fmt.value} "
                         f"(use --model {other})")
    train = read_cases(args.train, fmt)
    dev = read_cases(args.dev, _format(args.dev, args.format, fmt)) if args.dev else None
    labels, text, logreg = label_vocab(train), _text_config(args), LogRegConfig(C=args.C)
    y = label_ids(train, labels)
    config = {"task": "classify", "model": kind.value, "format": fmt.value, "text": asdict(text),
              "logreg": asdict(logreg)}
    vocabs = {"labels": labels}
    model: nn.Module
    if kind is ModelKind.BOW_LOGREG:
        model = BagOfWords.fit(train.texts, y, len(labels), text, logreg)
        config["max_n"] = model.max_n
        vocabs["ngrams"] = model.ngrams
    else:
        model = SeriesStats.fit(train.series, y, len(labels), logreg)
        config["num_features"] = model.num_features
    save_model_dir(args.out / "model", model, config, vocabs)
    if dev is not None:
        print_metrics(classification_metrics(_load(args.out / "model").scores(dev), label_ids(dev, labels)), False)
    return 0


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    if args.bptt is not None:
        raise ValueError("--bptt does not apply to classify: every sequence is one example, read whole")
    fmt, kind = _format(args.train, args.format), ModelKind(args.model)
    if kind is not ModelKind.RNN:
        return _train_baseline(args, kind, fmt)
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    train = read_cases(args.train, fmt)
    dev = read_cases(args.dev, _format(args.dev, args.format, fmt)) if args.dev else None
    labels, text = label_vocab(train), _text_config(args)
    vocabs = {"labels": labels}
    if fmt is Format.TSV:
        vocabs["words"] = word_vocab(train, text)
        inputs = {"vocab_size": len(vocabs["words"]), "embed_size": args.embed}
    else:
        mean, std = feature_stats(train)
        inputs = {"num_features": len(mean), "mean": mean, "std": std}
    classifier = ClassifierConfig(num_classes=len(labels), **inputs, cell=CellKind(args.cell),
                                  hidden_size=args.hidden, num_layers=args.layers, bidirectional=args.bidirectional,
                                  dropout=args.dropout, pool=Pool(args.pool), attention_size=args.attention_size)
    x = model_inputs(train, classifier, vocabs.get("words"), text)
    examples = list(zip(x, label_ids(train, labels)))
    loader = SequenceLoader(examples, [len(s) for s in x], collate,
                            BatchingConfig(batch_size=args.batch_size, seed=args.seed), world.rank, world.size)
    evaluate = None
    if dev is not None:
        dev_x, dev_y = model_inputs(dev, classifier, vocabs.get("words"), text), label_ids(dev, labels)

        def evaluate(model: nn.Module) -> dict[str, float]:
            return classification_metrics(predict_log_probs(model, dev_x, device=args.device), dev_y)

    config = {"task": "classify", "model": ModelKind.RNN.value, "format": fmt.value, "text": asdict(text),
              "classifier": classifier.to_dict()}
    job = TrainingJob(Classifier(classifier), make_objective(classifier.pool), loader, len(loader.sampler), config,
                      vocabs, evaluate=evaluate, metric="accuracy" if dev is not None else None, minimize=False)
    fit = run_training(run_config(args), job, world)
    best = best_epoch(fit.history, "accuracy", minimize=False)
    if world.is_main and best is not None:
        print_metrics(fit.history[best], as_json=False)  # the dev scores of the saved model (its epoch)
    return 0


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load(args.model, args.device)
    cases = read_cases(args.data, _format(args.data, args.format, model.fmt))
    print_metrics(classification_metrics(model.scores(cases), label_ids(cases, model.labels)), args.json)
    return 0


def _predict(args: argparse.Namespace, argv: list[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load(args.model, args.device)
    if args.data is not None:
        cases = read_unlabelled(args.data, _format(args.data, args.format, model.fmt))
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
    train.add_argument("--dev", type=Path, default=None, help="scored each epoch; the best epoch is kept")
    _data_flags(train)
    train.add_argument("--model", choices=[m.value for m in ModelKind], default=ModelKind.RNN.value,
                       help="rnn, or a logistic-regression baseline: bow-logreg (text), stats-logreg (.ts)")
    g = train.add_argument_group("rnn")
    g.add_argument("--cell", choices=[c.value for c in CellKind], default=CellKind.LSTM.value)
    g.add_argument("--layers", type=int, default=1)
    g.add_argument("--hidden", type=int, default=64, help="units per direction")
    g.add_argument("--bidirectional", action="store_true")
    g.add_argument("--dropout", type=float, default=0.0, help="on embeddings, between layers and on the summary")
    g.add_argument("--pool", choices=[p.value for p in Pool], default=Pool.LAST.value,
                   help="the summary the output layer sees; every-step scores each step against the label")
    g.add_argument("--attention-size", type=int, default=64)
    g.add_argument("--embed", type=int, default=100, help="word embedding width (text)")
    g.add_argument("--batch-size", type=int, default=32, help="sequences per batch and per process")
    t = train.add_argument_group("text")
    t.add_argument("--lowercase", action="store_true")
    t.add_argument("--min-freq", type=int, default=1, help="rarer training words become <unk> (rnn)")
    b = train.add_argument_group("baselines")
    b.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent()], help="accuracy, loss, count and macro F1 on a file")
    ev.add_argument("--data", type=Path, required=True, help="labelled .tsv or .ts file")
    _data_flags(ev)
    ev.set_defaults(run=_eval)
    pr = actions.add_parser("predict", help="one predicted label per line")
    pr.add_argument("--model", type=Path, required=True, help="a trained model directory (OUT/model)")
    pr.add_argument("--data", type=Path, default=None,
                    help="text lines or label<TAB>text (default: stdin), or a .ts file")
    _data_flags(pr)
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--threads", type=thread_count, default=None, help="torch intra-op threads (default: all)")
    pr.set_defaults(run=_predict)
