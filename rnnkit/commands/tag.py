"""`rnnkit tag train|eval|predict`: POS tagging, NER, slot filling.

Models (``--model``): ``bilstm-crf`` (default), ``bilstm`` (softmax output),
and the baselines ``hmm`` (supervised HMM) and ``crf`` (CRF over sparse features).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from rnnkit.batch import BatchingConfig
from rnnkit.checkpoint import load_weights, read_config, save_model_dir
from rnnkit.commands.common import common_parent, eval_parent, maybe_launch, print_metrics, run_config, setup
from rnnkit.data.tagged import (
    TaggedSentence,
    read_conll,
    read_conllu,
    read_slash,
    write_conll,
    write_conllu,
    write_slash,
)
from rnnkit.feature_crf import FeatureCRF
from rnnkit.hmm import HMMTagger
from rnnkit.loader import SequenceLoader
from rnnkit.metrics import is_span_scheme, tagging_metrics
from rnnkit.runner import TrainingJob, run_training
from rnnkit.tasks.tagger import NeuralTagger, Tagger, TaggerConfig, TaggerEncoder, TaggerVocabs, objective
from rnnkit.vocab import Vocab

FORMATS = ("conllu", "conll", "slash", "text")
NEURAL = {"bilstm-crf": True, "bilstm": False}  # model name -> CRF output layer
BASELINES = ("hmm", "crf")


def data_format(path: Path | None, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower() if path else ""
    return {".conllu": "conllu", ".conll": "conll"}.get(suffix, "slash")


def read_tagged(path: Path, fmt: str, column: str | None) -> list[TaggedSentence]:
    if fmt == "conllu":
        return read_conllu(path, int(column) if column and column.isdigit() else (column or "upos"))
    if fmt == "conll":
        return read_conll(path, tag_column=int(column) if column else -1)
    if fmt == "slash":
        return read_slash(path)
    raise ValueError(f"--format {fmt} holds no tags; use conllu, conll or slash")


def _read_plain(text: str) -> list[TaggedSentence]:
    return [TaggedSentence(line.split(), [], n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def load_tagger(directory: Path):
    ck = read_config(directory)
    if ck.config.get("task") != "tag":
        raise ValueError(f"{directory} is not a tagger (task {ck.config.get('task')!r})")
    name = ck.config["model"]
    if name == "hmm":
        return HMMTagger.load(directory / "hmm.json"), ck
    if name == "crf":
        return FeatureCRF(directory / "crf.model"), ck
    config = TaggerConfig(**ck.config["tagger"])
    vocabs = TaggerVocabs(ck.vocabs["words"], ck.vocabs["chars"], ck.vocabs["tags"])
    model = Tagger(config, vocabs.tags.symbols)
    load_weights(directory, model)
    return NeuralTagger(model, vocabs, config), ck


def tag_all(tagger, sentences: list[list[str]]) -> list[list[str]]:
    if isinstance(tagger, NeuralTagger):
        return tagger.tag(sentences)
    return [tagger.tag(s) for s in sentences]


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    if args.model not in NEURAL and args.model not in BASELINES:
        raise ValueError(f"unknown --model {args.model!r}; choose from {', '.join([*NEURAL, *BASELINES])}")
    fmt = data_format(args.train, args.format)
    train = read_tagged(args.train, fmt, args.column)
    dev = read_tagged(args.dev, data_format(args.dev, args.format), args.column) if args.dev else None
    known = Vocab(sorted({w for s in train for w in s.tokens}))
    header = {"task": "tag", "model": args.model, "format": fmt, "column": args.column}
    if args.model in BASELINES:
        args.out.mkdir(parents=True, exist_ok=True)
        model_dir = args.out / "model"
        model_dir.mkdir(exist_ok=True)
        words, tags = [s.tokens for s in train], [s.tags for s in train]
        if args.model == "hmm":
            tagger = HMMTagger().fit(words, tags)
            tagger.save(model_dir / "hmm.json")
        else:
            tagger = FeatureCRF(model_dir / "crf.model").fit(words, tags)
        save_model_dir(model_dir, torch.nn.Module(), header, {"known": known})
        if dev:
            print_metrics(tagging_metrics([s.tags for s in dev], tag_all(tagger, [s.tokens for s in dev]),
                                          [s.tokens for s in dev], set(known.symbols)), as_json=False)
        return 0
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    vocabs = TaggerVocabs.build([s.tokens for s in train], [s.tags for s in train], lowercase=True,
                                min_freq=args.min_freq)
    config = TaggerConfig(num_words=len(vocabs.words), num_chars=len(vocabs.chars), num_tags=len(vocabs.tags),
                          word_dim=args.word_dim, char_dim=args.char_dim, char_hidden=args.char_hidden,
                          hidden=args.hidden, layers=args.layers, dropout=args.dropout, crf=NEURAL[args.model],
                          bio_constraints=args.bio_constraints, sparse_embeddings=args.sparse_embeddings)
    model = Tagger(config, vocabs.tags.symbols)
    encoder = TaggerEncoder(vocabs, config.lowercase)
    examples = [encoder.example(s.tokens, s.tags) for s in train]
    loader = SequenceLoader(examples, [len(s.tokens) for s in train], encoder.collate,
                            BatchingConfig(batch_size=args.batch_size, seed=args.seed), world.rank, world.size)
    span = is_span_scheme(set(vocabs.tags.symbols))
    metric = "f1" if span else "accuracy"

    def evaluate(m: Tagger) -> dict[str, float]:
        predicted = NeuralTagger(m, vocabs, config).tag([s.tokens for s in dev])
        return tagging_metrics([s.tags for s in dev], predicted, [s.tokens for s in dev], set(known.symbols))

    job = TrainingJob(model, objective, loader, len(loader.sampler),
                      {**header, "tagger": config.to_dict()},
                      {"words": vocabs.words, "chars": vocabs.chars, "tags": vocabs.tags, "known": known},
                      evaluate=evaluate if dev else None, metric=metric if dev else None, minimize=False)
    fit = run_training(run_config(args), job, world)
    if world.is_main and fit.history:
        best = max(fit.history, key=lambda h: h[metric])
        print(f"best dev {metric}: {best[metric]:.4f} (epoch {best['epoch']})")
    return 0


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    tagger, ck = load_tagger(args.model)
    fmt = data_format(args.data, args.format or ck.config.get("format"))
    data = read_tagged(args.data, fmt, args.column or ck.config.get("column"))
    predicted = tag_all(tagger, [s.tokens for s in data])
    metrics = tagging_metrics([s.tags for s in data], predicted, [s.tokens for s in data],
                              set(ck.vocabs["known"].symbols))
    print_metrics(metrics, args.json)
    return 0


def _predict(args: argparse.Namespace, argv: list[str]) -> int:
    tagger, ck = load_tagger(args.model)
    fmt = args.format or (data_format(args.data, None) if args.data and args.data.suffix in (".conllu", ".conll")
                          else "text")
    if fmt == "text":
        text = args.data.read_text(encoding="utf-8") if args.data else sys.stdin.read()
        sentences = _read_plain(text)
    else:
        if args.data is None:
            raise ValueError(f"--format {fmt} needs --data FILE (standard input is read as plain text)")
        sentences = read_tagged(args.data, fmt, args.column or ck.config.get("column"))
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
    train.add_argument("--dev", type=Path, default=None)
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
    pr.add_argument("--model", type=Path, required=True)
    pr.add_argument("--data", type=Path, default=None, help="default: standard input")
    pr.set_defaults(run=_predict)


