"""`rnnkit lm train|eval|generate`: word- and character-level language models on
the common engine: recurrent stacks (LSTM, GRU, Elman) or the fixed-window NPLM
baseline of Bengio et al. 2003, trained on one stream with truncated BPTT and
the state carried (``--regime stream``) or on sentence batches (``--regime sentences``).
The pipeline is :func:`rnnkit.tasks.lm.training_job`; this module turns flags into its configs.

The model directory (OUT/model) holds the weights, config.json and the
vocabulary: eval and generate need nothing else.
"""

from __future__ import annotations

import argparse
import enum
import sys
from pathlib import Path

import torch

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
from rnnkit.data.text import Level
from rnnkit.decode import sample
from rnnkit.settings import COUNT, NATURAL, POSITIVE, SHARE, rule
from rnnkit.tasks.lm import (
    CellKind,
    LMConfig,
    LMData,
    Regime,
    count_unknown,
    encode,
    evaluate,
    load_model,
    read_corpus,
    start_symbol,
    training_job,
)
from rnnkit.tasks.nplm import NPLMConfig
from rnnkit.vocab import EOS, UNK

DEFAULT_BPTT = 20  # stream chunk length when --bptt is not given (Zaremba's small model)
REPLACEMENT = "\ufffd"  # how a character model's <unk> is printed


class Architecture(enum.Enum):
    RNN = "rnn"  # embeddings -> recurrent stack -> softmax
    NPLM = "nplm"  # Bengio et al. 2003: the previous n - 1 embeddings -> tanh layer -> softmax


def _model_config(args: argparse.Namespace) -> LMConfig | NPLMConfig:
    """The model's settings; its vocabulary size comes from the data (tasks.lm.training_job)."""
    if Architecture(args.model) is Architecture.NPLM:
        return NPLMConfig(vocab_size=0, order=args.order, embed_size=args.embed, hidden_size=args.hidden,
                          direct=args.direct, dropout=args.dropout)
    return LMConfig(vocab_size=0, embed_size=args.embed, hidden_size=args.hidden, num_layers=args.layers,
                    dropout=args.dropout, tie_weights=args.tie_weights, cell=CellKind(args.cell),
                    init_range=args.init_range)


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    regime = Regime(args.regime)
    if regime is Regime.STREAM and args.bptt is None:
        args.bptt = DEFAULT_BPTT  # one meaning in both regimes: an update every --bptt steps
    data = LMData(train=args.train, dev=args.dev, level=Level(args.level), regime=regime, batch_size=args.batch_size,
                  bptt=args.bptt or DEFAULT_BPTT, max_tokens=args.max_tokens, min_count=args.min_freq,
                  max_vocab=args.max_vocab, eval_batch_size=args.eval_batch_size, eval_bptt=args.eval_bptt,
                  holdout=args.holdout, seed=args.seed)
    config = _model_config(args)
    run = start_run(args)
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    return run_job(args, training_job(data, config, world, args.resumed), world, run)


def _check_level(spec: dict, level: str | None, directory: Path) -> Level:
    model_level = Level(spec["level"])
    if level is not None and Level(level) is not model_level:
        raise ValueError(f"{directory} is a {model_level.value}-level model; --level {level} was given")
    return model_level


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    model, spec, vocab = load_model(args.model)
    level, regime = _check_level(spec, args.level, args.model), Regime(spec["regime"])
    if args.batch_size is not None and args.batch_size < 1 or args.bptt < 1:
        raise ValueError(f"--batch-size and --bptt must be >= 1; got {args.batch_size}, {args.bptt}")
    sequences = read_corpus(args.data, level, regime)
    batch = args.batch_size or spec["training"]["eval_batch_size"]
    metrics = evaluate(model.to(args.device), encode(sequences, vocab, regime), level, regime, batch, args.bptt)
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
    setup_inference(args)
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
    train.add_argument("--dev", type=Path, help="development text, scored at each epoch's end "
                                                "(default: --holdout of the training text)")
    train.add_argument("--level", choices=[v.value for v in Level], default="word", help="symbols: words or chars")
    train.add_argument("--regime", choices=[r.value for r in Regime], default="stream",
                       help="stream: one stream, truncated BPTT, state carried; sentences: one line a sequence")
    train.add_argument("--model", choices=[a.value for a in Architecture], default="rnn",
                       help="rnn: a recurrent stack; nplm: Bengio et al. 2003's fixed-window model")
    train.add_argument("--cell", choices=[c.value for c in CellKind], default="lstm", help="rnn: the recurrence")
    train.add_argument("--embed", type=rule(LMConfig, "embed_size"), default=200, help="embedding width E")
    train.add_argument("--hidden", type=rule(LMConfig, "hidden_size"), default=200, help="hidden width H of each layer")
    train.add_argument("--layers", type=rule(LMConfig, "num_layers"), default=2, help="rnn: stacked layers")
    train.add_argument("--dropout", type=rule(LMConfig, "dropout"), default=0.0,
                       help="on embeddings, between layers and before the softmax")
    train.add_argument("--tie-weights", action="store_true", help="rnn: share input and output embeddings (E == H)")
    train.add_argument("--init-range", type=rule(LMConfig, "init_range"), default=None,
                       help="rnn: every parameter from U(-r, r)")
    train.add_argument("--order", type=rule(NPLMConfig, "order"), default=5,
                       help="nplm: n, predicting from the n - 1 previous symbols")
    train.add_argument("--direct", action="store_true", help="nplm: direct connections embeddings -> output")
    train.add_argument("--batch-size", type=rule(LMData, "batch_size"), default=20,
                       help="stream rows (over all --nproc processes), or sentences per batch and process")
    train.add_argument("--max-tokens", type=rule(LMData, "max_tokens"), default=None,
                       help="sentences: a token budget per batch instead")
    train.add_argument("--min-freq", "--min-count", type=rule(LMData, "min_count"), default=1,
                       help="rarer training symbols become <unk>")
    train.add_argument("--max-vocab", type=rule(LMData, "max_vocab"), default=None,
                       help="keep at most this many symbols")
    train.add_argument("--eval-batch-size", type=rule(LMData, "eval_batch_size"), default=None,
                       help="dev scoring: stream rows (default 1, exact) or sentences per batch (default 64)")
    train.add_argument("--eval-bptt", type=rule(LMData, "eval_bptt"), default=256,
                       help="dev scoring: stream chunk length")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent()], help="perplexity or bits per character of a text")
    ev.add_argument("--data", type=Path, required=True, help="text to score")
    ev.add_argument("--level", choices=[v.value for v in Level], default=None, help="checked against the model's")
    ev.add_argument("--batch-size", type=COUNT, default=None, help="stream rows or sentences per batch")
    ev.add_argument("--bptt", type=COUNT, default=256, help="stream chunk length (memory only)")
    ev.set_defaults(run=_eval)
    gen = actions.add_parser("generate", help="sample text, continuing a prime")
    gen.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    gen.add_argument("--prime", default="", help="text to continue ('-': read it from stdin)")
    gen.add_argument("--length", type=COUNT, default=100, help="most symbols drawn (word models stop at </s>)")
    gen.add_argument("--temperature", type=POSITIVE, default=1.0, help="below 1: safer; above 1: more varied")
    gen.add_argument("--top-k", type=COUNT, default=None, help="draw from the k likeliest symbols only")
    gen.add_argument("--top-p", type=SHARE, default=None, help="nucleus sampling: the smallest set holding p")
    gen.add_argument("--seed", type=NATURAL, default=0, help="the draws' seed")
    gen.add_argument("--device", default="cpu", help="cpu or cuda")
    gen.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    gen.set_defaults(run=_generate)
