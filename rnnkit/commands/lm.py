"""`rnnkit lm train|eval|generate`: word- and character-level language models on
the common engine: recurrent stacks (LSTM, GRU, Elman) or the fixed-window NPLM
baseline of Bengio et al. 2003, trained on one stream with truncated BPTT and
the state carried (``--regime stream``) or on sentence batches (``--regime sentences``).

The model directory (OUT/model) holds the weights, config.json and the
vocabulary: eval and generate need nothing else.
"""

from __future__ import annotations

import argparse
import enum
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from rnnkit.batch import BatchingConfig
from rnnkit.checkpoint import load_weights, read_config
from rnnkit.commands.common import (
    common_parent,
    eval_parent,
    maybe_launch,
    print_metrics,
    run_config,
    setup,
    thread_count,
)
from rnnkit.data.text import Layout, Level, read_text
from rnnkit.loader import SequenceLoader, StreamLoader
from rnnkit.runner import TrainingJob, run_training
from rnnkit.tasks.lm import (
    OBJECTIVES,
    CellKind,
    LanguageModel,
    LMConfig,
    Regime,
    build_vocab,
    collate_sentences,
    count_unknown,
    encode_sentences,
    encode_stream,
    evaluate,
    sample,
    start_symbol,
)
from rnnkit.tasks.nplm import NPLM, NPLMConfig
from rnnkit.vocab import EOS, UNK, Vocab

DEFAULT_BPTT = 20  # stream chunk length when --bptt is not given (Zaremba's small model)
REPLACEMENT = "\ufffd"  # how a character model's <unk> is printed


class Architecture(enum.Enum):
    RNN = "rnn"  # embeddings -> recurrent stack -> softmax
    NPLM = "nplm"  # Bengio et al. 2003: the previous n - 1 embeddings -> tanh layer -> softmax


ARCHITECTURES = {Architecture.RNN: (LMConfig, LanguageModel), Architecture.NPLM: (NPLMConfig, NPLM)}


def _read(path: Path, level: Level, regime: Regime) -> list[list[str]]:
    """STREAM: one token list for the whole file; SENTENCES: one per non-blank line. ``</s>`` ends each line."""
    layout = Layout.STREAM if regime is Regime.STREAM else Layout.LINES
    return read_text(path, level, layout).sequences


def _encode(sequences: list[list[str]], vocab: Vocab, regime: Regime):
    return encode_stream(sequences[0], vocab) if regime is Regime.STREAM else encode_sentences(sequences, vocab)


def _model_config(args: argparse.Namespace, vocab: Vocab, regime: Regime) -> LMConfig | NPLMConfig:
    if Architecture(args.model) is Architecture.NPLM:
        return NPLMConfig(vocab_size=len(vocab), order=args.order, embed_size=args.embed, hidden_size=args.hidden,
                          direct=args.direct, dropout=args.dropout, pad_id=vocab.id(start_symbol(regime)))
    return LMConfig(vocab_size=len(vocab), embed_size=args.embed, hidden_size=args.hidden, num_layers=args.layers,
                    dropout=args.dropout, tie_weights=args.tie_weights, cell=CellKind(args.cell),
                    init_range=args.init_range)


def _check_train_flags(args: argparse.Namespace, regime: Regime) -> None:
    if args.dev is None and (args.schedule == "plateau" or args.patience is not None):
        raise ValueError("--schedule plateau and --patience need --dev data to measure")
    if regime is Regime.STREAM and args.nproc > 1:
        raise ValueError("--nproc > 1 needs --regime sentences (the stream regime is one ordered stream)")
    if regime is Regime.STREAM and args.max_tokens is not None:
        raise ValueError("--max-tokens batches sentences: use it with --regime sentences")
    for name in ("batch_size", "eval_batch_size", "eval_bptt", "min_count"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    level, regime, architecture = Level(args.level), Regime(args.regime), Architecture(args.model)
    _check_train_flags(args, regime)
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    run = run_config(args)
    train = _read(args.train, level, regime)
    vocab = build_vocab(train, regime, args.min_count, args.max_vocab)
    dev = _encode(_read(args.dev, level, regime), vocab, regime) if args.dev else None
    config = _model_config(args, vocab, regime)
    model = ARCHITECTURES[architecture][1](config)
    if regime is Regime.STREAM:
        bptt = args.bptt or DEFAULT_BPTT
        loader = StreamLoader(encode_stream(train[0], vocab), args.batch_size, bptt)
        batches = len(loader.epoch(0))
        run = replace(run, fit=replace(run.fit, bptt=None, carry_state=True))  # each batch is one chunk
    else:
        sentences = encode_sentences(train, vocab)
        batching = BatchingConfig(max_tokens=args.max_tokens, batch_size=None if args.max_tokens else args.batch_size,
                                  seed=args.seed)
        loader = SequenceLoader(sentences, [len(s) - 1 for s in sentences], collate_sentences, batching,
                                world.rank, world.size)
        batches = len(loader.sampler)
    eval_batch = args.eval_batch_size or (1 if regime is Regime.STREAM else 64)
    spec = {"level": level.value, "regime": regime.value, "model": architecture.value, "config": config.to_dict(),
            "training": {"batch_size": args.batch_size, "bptt": args.bptt or (DEFAULT_BPTT if regime is Regime.STREAM
                                                                             else None),
                         "eval_batch_size": eval_batch}}
    job = TrainingJob(model, OBJECTIVES[regime], loader, batches, {"task": "lm", "lm": spec}, {"tokens": vocab},
                      evaluate=(lambda m: evaluate(m, dev, level, regime, eval_batch, args.eval_bptt))
                      if dev is not None else None,
                      metric="loss" if dev is not None else None, minimize=True)
    if world.is_main:
        print(f"vocabulary: {len(vocab)} symbols; {sum(map(len, train)):,} training tokens; "
              f"{sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr)
    fit = run_training(run, job, world)
    if world.is_main and fit.metrics:
        print_metrics(fit.metrics, as_json=False)
    return 0


def load_model(directory: Path) -> tuple[nn.Module, dict, Vocab]:
    """A trained model directory: the model (weights loaded), its ``lm`` config record and vocabulary."""
    ck = read_config(directory)
    if ck.config.get("task") != "lm":
        raise ValueError(f"{directory} holds a {ck.config.get('task')!r} model, not a language model")
    spec = ck.config["lm"]
    config_class, model_class = ARCHITECTURES[Architecture(spec["model"])]
    model = model_class(config_class.from_dict(spec["config"]))
    load_weights(directory, model)
    if "tokens" not in ck.vocabs:
        raise ValueError(f"{directory} has no vocabulary (vocab-tokens.json)")
    return model, spec, ck.vocabs["tokens"]


def _check_level(spec: dict, level: str | None, directory: Path) -> Level:
    model_level = Level(spec["level"])
    if level is not None and Level(level) is not model_level:
        raise ValueError(f"{directory} is a {model_level.value}-level model; --level {level} was given")
    return model_level


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, spec, vocab = load_model(args.model)
    level, regime = _check_level(spec, args.level, args.model), Regime(spec["regime"])
    if args.batch_size is not None and args.batch_size < 1 or args.bptt < 1:
        raise ValueError(f"--batch-size and --bptt must be >= 1; got {args.batch_size}, {args.bptt}")
    sequences = _read(args.data, level, regime)
    batch = args.batch_size or spec["training"]["eval_batch_size"]
    metrics = evaluate(model.to(args.device), _encode(sequences, vocab, regime), level, regime, batch, args.bptt)
    metrics["unknown"] = count_unknown(sequences, vocab)
    print_metrics(metrics, args.json)
    return 0


def prime_tokens(text: str, level: Level, regime: Regime) -> list[str]:
    """The prime's tokens (words or characters); a line end is ``</s>``. A sentence
    model continues one sentence, so its prime is one line (a final newline is dropped)."""
    lines = text.replace("\r\n", "\n").split("\n")
    if regime is Regime.SENTENCES:
        lines = text.rstrip("\r\n").split("\n")
        if len(lines) > 1:
            raise ValueError("a sentence-regime model continues one sentence: the prime must be one line")
    tokens = []
    for i, line in enumerate(lines):
        tokens.extend(line.split() if level is Level.WORD else line)
        if i < len(lines) - 1:
            tokens.append(EOS)
    return tokens


def render(tokens: list[str], level: Level) -> str:
    """Tokens as text: ``</s>`` is a line end; words are joined by spaces; a character
    model's ``<unk>`` is one replacement character U+FFFD."""
    lines, line = [], []
    for t in tokens:
        if t == EOS:
            lines.append(line)
            line = []
        else:
            line.append(REPLACEMENT if t == UNK and level is Level.CHAR else t)
    lines.append(line)
    joiner = " " if level is Level.WORD else ""
    return "\n".join(joiner.join(words) for words in lines)


def _generate(args: argparse.Namespace, argv: list[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, spec, vocab = load_model(args.model)
    level, regime = _check_level(spec, None, args.model), Regime(spec["regime"])
    text = sys.stdin.read() if args.prime == "-" else args.prime
    prime = prime_tokens(text, level, regime)
    generator = torch.Generator().manual_seed(args.seed)
    stop = vocab.id(EOS) if level is Level.WORD else None
    ids = sample(model.to(args.device), vocab.encode([start_symbol(regime), *prime]), args.length,
                 temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, stop=stop, generator=generator)
    words = vocab.decode(ids)
    if words and words[-1] == EOS and level is Level.WORD:
        words = words[:-1]  # the sentence is complete
    print(render(prime + words, level))
    sys.stdout.flush()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    lm = sub.add_parser("lm", help="word- and character-level language models (LSTM, GRU, Elman, NPLM)")
    actions = lm.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", parents=[common_parent()], help="train on a text file")
    train.add_argument("--train", type=Path, required=True, help="UTF-8 text: words split by spaces, or characters")
    train.add_argument("--dev", type=Path, help="development text, scored at each epoch's end")
    train.add_argument("--level", choices=[v.value for v in Level], default="word")
    train.add_argument("--regime", choices=[r.value for r in Regime], default="stream",
                       help="stream: one stream, truncated BPTT, state carried; sentences: one line a sequence")
    train.add_argument("--model", choices=[a.value for a in Architecture], default="rnn",
                       help="rnn: a recurrent stack; nplm: Bengio et al. 2003's fixed-window model")
    train.add_argument("--cell", choices=[c.value for c in CellKind], default="lstm", help="rnn: the recurrence")
    train.add_argument("--embed", type=int, default=200, help="embedding width E")
    train.add_argument("--hidden", type=int, default=200, help="hidden width H of each layer")
    train.add_argument("--layers", type=int, default=2, help="rnn: stacked layers")
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--tie-weights", action="store_true", help="rnn: share input and output embeddings (E == H)")
    train.add_argument("--init-range", type=float, default=None, help="rnn: every parameter from U(-r, r)")
    train.add_argument("--order", type=int, default=5, help="nplm: n, predicting from the n - 1 previous symbols")
    train.add_argument("--direct", action="store_true", help="nplm: direct connections embeddings -> output")
    train.add_argument("--batch-size", type=int, default=20, help="stream rows, or sentences per batch")
    train.add_argument("--max-tokens", type=int, default=None, help="sentences: a token budget per batch instead")
    train.add_argument("--min-count", type=int, default=1, help="rarer training symbols become <unk>")
    train.add_argument("--max-vocab", type=int, default=None, help="keep at most this many symbols")
    train.add_argument("--eval-batch-size", type=int, default=None,
                       help="dev scoring: stream rows (default 1, exact) or sentences per batch (default 64)")
    train.add_argument("--eval-bptt", type=int, default=256, help="dev scoring: stream chunk length")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent()], help="perplexity or bits per character of a text")
    ev.add_argument("--data", type=Path, required=True)
    ev.add_argument("--level", choices=[v.value for v in Level], default=None, help="checked against the model's")
    ev.add_argument("--batch-size", type=int, default=None, help="stream rows or sentences per batch")
    ev.add_argument("--bptt", type=int, default=256, help="stream chunk length (memory only)")
    ev.set_defaults(run=_eval)
    gen = actions.add_parser("generate", help="sample text, continuing a prime")
    gen.add_argument("--model", type=Path, required=True, help="a trained model directory (OUT/model)")
    gen.add_argument("--prime", default="", help="text to continue ('-': read it from stdin)")
    gen.add_argument("--length", type=int, default=100, help="most symbols drawn (word models stop at </s>)")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None, help="nucleus sampling: the smallest set holding p")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--threads", type=thread_count, default=None, help="torch intra-op threads (default: all)")
    gen.set_defaults(run=_generate)
