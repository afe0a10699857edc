"""`rnnkit seq2seq train|eval|translate`: encoder-decoder models on ``source<TAB>target``
files (grapheme-to-phoneme, translation, any transduction). The pipeline is
:mod:`rnnkit.tasks.seq2seq`; this module turns flags into its configs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.attention import Scoring
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
from rnnkit.data.tsv import read_pairs
from rnnkit.decode.seq2seq import SamplingConfig, SearchConfig
from rnnkit.layers import CellKind
from rnnkit.plots import attention_heatmap, score_by_length
from rnnkit.seq2seq import Seq2SeqConfig
from rnnkit.settings import COUNT, SettingError, rule
from rnnkit.tasks.seq2seq import (
    ModelKind,
    Seq2SeqData,
    SourceKind,
    Translator,
    bleu_by_length,
    evaluate,
    load_translator,
    training_job,
)
from rnnkit.tasks.seq2seq_baselines import Baseline, train_baseline
from rnnkit.tasks.seq2seq_data import Units

NO_ATTENTION = "none"
MODELS = [*(k.value for k in ModelKind), *(b.value for b in Baseline)]


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    if args.bptt is not None:
        raise SettingError("bptt", "does not apply to seq2seq: every pair is read whole")
    source = SourceKind(args.source)
    if args.attention is None:
        args.attention = NO_ATTENTION if source is SourceKind.IMAGE else Scoring.GENERAL.value
    data = Seq2SeqData(train=args.train, dev=args.dev, units=Units(args.units), source=source,
                       vocab_size=args.vocab_size,
                       min_freq=args.min_freq, max_length=args.max_length, batch_tokens=args.batch_tokens,
                       batch_images=args.batch_images,
                       holdout=args.holdout, seed=args.seed, label_smoothing=args.label_smoothing,
                       sampling=args.scheduled_sampling)
    attention = None if args.attention == NO_ATTENTION else Scoring(args.attention)
    config = Seq2SeqConfig(source_vocab=0, target_vocab=0, embed_size=args.embed, hidden_size=args.hidden,
                           encoder_layers=args.layers, bidirectional=args.bidirectional,
                           decoder_hidden=args.decoder_hidden, decoder_layers=args.decoder_layers,
                           cell=CellKind(args.cell), attention=attention, input_feeding=args.input_feeding,
                           feed_context=attention is None and args.feed_context, reverse_source=args.reverse_source,
                           dropout=args.dropout, tie_embeddings=args.tie_embeddings)
    run = start_run(args)
    if args.model in {b.value for b in Baseline}:
        train_baseline(Baseline(args.model), args.train, data.units, args.out / "model")
        print(f"model saved to {args.out / 'model'}", file=sys.stderr)
        return 0
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    return run_job(args, training_job(data, config, world, args.resumed, ModelKind(args.model)), world, run)


def _plot_attention(translator, lines, results, folder: Path) -> None:
    """A heatmap per line of its best output's attention, folder/LINE.png."""
    source = getattr(translator, "source", None)
    if source is None or not hasattr(source, "side") or translator.model.config.attention is None:
        raise SettingError("attention_plots", "needs a text model with attention")
    for n, (line, hyps) in enumerate(zip(lines, results), 1):
        if not line.strip():
            continue
        best = hyps[0][1]
        outputs = [*translator.target.vocab.decode(best.tokens), "</s>"]
        attention_heatmap(best.attention.numpy(), source.side.tokenizer.split(line), outputs,
                          folder / f"{n:04d}.png", title=hyps[0][0])
    print(f"attention of {sum(bool(line.strip()) for line in lines)} lines drawn in {folder}", file=sys.stderr)


def _plot_length(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    labels = args.label or [str(m) for m in args.model]
    if len(labels) != len(args.model):
        raise SettingError("label", f"give one per --model ({len(args.model)}), or none")
    pairs = read_pairs(args.data)
    curves = {}
    for label, model in zip(labels, args.model):
        translator, _ = load_translator(model)
        _to(translator, args.device)
        curves[label] = bleu_by_length(translator, pairs, _search(args), args.width)
        print(f"{label}: " + "  ".join(f"{x:.0f} words {y:.1f}" for x, y in curves[label]), file=sys.stderr)
    print(score_by_length(curves, args.out))
    return 0


def _to(translator, device: str) -> None:
    if hasattr(translator, "model"):  # baselines have no weights
        translator.model.to(device)


def _search(args: argparse.Namespace, drawn: bool = False) -> SearchConfig:
    """The search flags' config; drawing (``drawn``) takes NBEST samples, as many as asked."""
    nbest = getattr(args, "nbest", 1)
    return SearchConfig(beam=max(args.beam, nbest) if drawn else args.beam, nbest=nbest, max_ratio=args.max_ratio,
                        max_extra=args.max_extra, length_penalty=args.length_penalty)


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    translator, _ = load_translator(args.model)
    _to(translator, args.device)
    print_metrics(evaluate(translator, read_pairs(args.data), _search(args), args.data), args.json)
    return 0


def _translate(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    translator, _ = load_translator(args.model)
    _to(translator, args.device)
    sampling = None if args.temperature is None else SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed)
    if sampling is not None and not isinstance(translator, Translator):
        raise SettingError("temperature", "a baseline has nothing to draw from")
    search = _search(args, drawn=sampling is not None)
    lines = sys.stdin.read().splitlines()
    if not any(line.strip() for line in lines):
        raise DataError("<stdin>", None, "no lines to translate")
    results = translator.decode(lines, search, sampling=sampling) if sampling else translator.decode(lines, search)
    if args.attention_plots is not None:
        _plot_attention(translator, lines, results, args.attention_plots)
    for line, hyps in zip(lines, results):
        if not line.strip():
            print("")  # a blank line stays blank
        elif args.nbest == 1:
            print(hyps[0][0])
        else:
            for rank, (text, g) in enumerate(hyps, 1):
                print(f"{rank}\t{g.score:.4f}\t{text}")
    sys.stdout.flush()
    return 0


def _search_flags(p: argparse.ArgumentParser, beam: int) -> None:
    g = p.add_argument_group("search")
    g.add_argument("--beam", type=rule(SearchConfig, "beam"), default=beam, help="beam width (1: greedy)")
    g.add_argument("--max-ratio", type=rule(SearchConfig, "max_ratio"), default=2.0,
                   help="an output has at most MAX_RATIO x source length + MAX_EXTRA symbols")
    g.add_argument("--max-extra", type=rule(SearchConfig, "max_extra"), default=10, help="see --max-ratio")
    g.add_argument("--length-penalty", type=rule(SearchConfig, "length_penalty"), default=1.0,
                   help="hypotheses rank by log-probability / length^ALPHA (0: plain log-probability)")


def register(sub: argparse._SubParsersAction) -> None:
    s2s = sub.add_parser("seq2seq", help="encoder-decoder with attention: G2P, translation, transduction")
    actions = s2s.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", parents=[common_parent()], help="train an encoder-decoder")
    train.add_argument("--train", type=Path, required=True, help="source<TAB>target lines")
    train.add_argument("--dev", type=Path, default=None, help="default: --holdout of the training sources")
    train.add_argument("--units", choices=[u.value for u in Units], default="word",
                       help="both sides' symbols: char, word (whitespace-separated) or subword (sentencepiece)")
    train.add_argument("--source", choices=[k.value for k in SourceKind], default="text",
                       help="image: the source field is an image file, encoded into one vector (one-to-many)")
    train.add_argument("--model", choices=MODELS, default="seq2seq",
                       help="the encoder-decoder, or a baseline: per-position (images), copy, phonetisaurus (G2P)")
    train.add_argument("--vocab-size", type=rule(Seq2SeqData, "vocab_size"), default=0,
                       help="subword: pieces per side (fewer where the text has fewer); default: about one per "
                            "200 words of the side, 1k-32k")
    train.add_argument("--min-freq", type=rule(Seq2SeqData, "min_freq"), default=1,
                       help="rarer symbols are read as <unk>")
    train.add_argument("--max-length", type=rule(Seq2SeqData, "max_length"), default=250,
                       help="symbols per side; a longer side is cut, with a warning naming its line")
    train.add_argument("--batch-tokens", type=rule(Seq2SeqData, "batch_tokens"), default=3000,
                       help="symbols per batch (the longer side, padding included)")
    train.add_argument("--batch-images", type=rule(Seq2SeqData, "batch_images"), default=64,
                       help="--source image: images per batch")
    train.add_argument("--label-smoothing", type=rule(Seq2SeqData, "label_smoothing"), default=0.1,
                       help="the training loss's ε")
    train.add_argument("--scheduled-sampling", type=rule(Seq2SeqData, "sampling"), default=0.0,
                       help="the chance that a decoder step reads its own best guess instead of the true symbol")
    g = train.add_argument_group("model")
    g.add_argument("--attention", choices=[NO_ATTENTION, *(s.value for s in Scoring)], default=None,
                   help="none (Sutskever, Cho), additive (Bahdanau), dot or general (Luong; the default for text)")
    g.add_argument("--cell", choices=[c.value for c in CellKind], default="lstm", help="encoder and decoder")
    g.add_argument("--embed", type=rule(Seq2SeqConfig, "embed_size"), default=0,
                   help="embedding width (default: --hidden's rule)")
    g.add_argument("--hidden", type=rule(Seq2SeqConfig, "hidden_size"), default=0,
                   help="encoder units per layer and direction; default: the widest of 64-512 with at most "
                        "10 parameters per training target symbol")
    g.add_argument("--layers", type=rule(Seq2SeqConfig, "encoder_layers"), default=2, help="encoder layers")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True, help="encoder")
    g.add_argument("--decoder-hidden", type=rule(Seq2SeqConfig, "decoder_hidden"), default=0,
                   help="decoder units (0: the encoder's output width)")
    g.add_argument("--decoder-layers", type=rule(Seq2SeqConfig, "decoder_layers"), default=1, help="decoder layers")
    g.add_argument("--input-feeding", action=argparse.BooleanOptionalAction, default=True,
                   help="feed each step's attentional state into the next (Luong)")
    g.add_argument("--feed-context", action="store_true",
                   help="without attention: the encoder's summary at every step and to the output (Cho 2014)")
    g.add_argument("--reverse-source", action="store_true", help="read the source backwards (Sutskever 2014)")
    g.add_argument("--dropout", type=rule(Seq2SeqConfig, "dropout"), default=0.2,
                   help="on embeddings, between layers, before the output")
    g.add_argument("--tie-embeddings", action="store_true", help="the target embedding is the output matrix")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent()],
                            help="bleu, chrf, exact, wer (outputs matching no reference), per (symbol edits), count")
    ev.add_argument("--data", type=Path, required=True, help="source<TAB>target lines (a source may repeat: "
                                                              "each target is a reference)")
    _search_flags(ev, 5)
    ev.set_defaults(run=_eval)
    tr = actions.add_parser("translate", help="stdin to stdout, a line out per line in")
    tr.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    tr.add_argument("--nbest", type=rule(SearchConfig, "nbest"), default=1,
                    help="print the N best as rank<TAB>score<TAB>output lines")
    tr.add_argument("--temperature", type=rule(SamplingConfig, "temperature"), default=None,
                    help="draw outputs (NBEST of them) from softmax(logits / T) instead of searching")
    tr.add_argument("--top-k", type=rule(SamplingConfig, "top_k"), default=None, help="draw from the K best only")
    tr.add_argument("--top-p", type=rule(SamplingConfig, "top_p"), default=None, help="draw from the nucleus P")
    tr.add_argument("--seed", type=rule(SamplingConfig, "seed"), default=0, help="the draws' seed")
    tr.add_argument("--attention-plots", type=Path, default=None, metavar="FOLDER",
                    help="also draw each line's attention (its best output) as FOLDER/LINE.png")
    tr.add_argument("--device", default="cpu", help="cpu or cuda")
    tr.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    _search_flags(tr, 5)
    tr.set_defaults(run=_translate)
    pl = actions.add_parser("plot-length", help="BLEU against source length, a line per model (Bahdanau's figure)")
    pl.add_argument("--model", type=Path, action="append", required=True, help="a model; give several to compare")
    pl.add_argument("--label", action="append", default=None, help="each model's name in the legend")
    pl.add_argument("--data", type=Path, required=True, help="source<TAB>target lines")
    pl.add_argument("--out", type=Path, required=True, help="the PNG to write")
    pl.add_argument("--width", type=COUNT, default=10, help="words per length group")
    pl.add_argument("--device", default="cpu", help="cpu or cuda")
    pl.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: every core)")
    _search_flags(pl, 5)
    pl.set_defaults(run=_plot_length)
