"""`rnnkit asr train|eval|transcribe`: speech recognition from manifests of recordings
(``audio path<TAB>transcript``; any sample rate, mono or stereo, integer or float PCM).
The pipeline is :mod:`rnnkit.tasks.asr`; this module turns flags into its configs.

Models (``--model``): ``blstm`` (default; deep bidirectional LSTM), ``lstmp`` (projected
LSTM with peepholes), ``cnn-lstm`` (CLDNN), ``lstm`` (unidirectional, streams) and ``dnn``
(framewise baseline), trained with CTC over ``--units phones`` or ``chars``, or framewise
(``--objective framewise --alignments FILE``, the hybrid system) on the frame labels that
``rnnkit asr align`` writes with a trained CTC model.
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
from rnnkit.data.errors import DataError, read_lines
from rnnkit.features import SpecAugmentConfig
from rnnkit.settings import COUNT, NONNEGATIVE, REAL, rule
from rnnkit.tasks.acoustic import AcousticConfig, Architecture
from rnnkit.tasks.asr import Decoding, Objective, SpeechData, load_recognizer, training_job
from rnnkit.tasks.speech_data import Units, read_corpus, to_input_rate, write_alignments
from rnnkit.tasks.words import word_files


def _speeds(text: str) -> tuple[float, ...]:
    """--speed-perturb: comma-separated factors, e.g. 0.9,1.1."""
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be speed factors such as 0.9,1.1; got {text!r}") from None


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    data = SpeechData(train=args.train, dev=args.dev, units=Units(args.units), batch_frames=args.batch_frames,
                      holdout=args.holdout, seed=args.seed, skip_bad=args.skip_bad, speeds=args.speed_perturb,
                      spec_augment=SpecAugmentConfig() if args.spec_augment else None, lm_order=args.lm_order,
                      word_lm_order=args.word_lm_order,
                      objective=Objective(args.objective), alignments=args.alignments)
    config = AcousticConfig(num_units=0, architecture=Architecture(args.model), hidden=args.hidden,
                            layers=args.layers, proj=args.proj, stack=args.stack, dropout=args.dropout,
                            context=args.context)
    run = start_run(args)
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    return run_job(args, training_job(data, config, world, args.resumed), world, run)


def _decoding(args: argparse.Namespace, beam: int, words: bool = False) -> Decoding:
    weight, bonus = (args.word_lm_weight, args.word_bonus) if words else (args.lm_weight, args.bonus)
    return Decoding(beam=beam, lm_weight=weight, bonus=bonus, nbest=getattr(args, "nbest", 1),
                    use_lm=not args.no_lm, prior_scale=args.prior_scale, words=words)


def _recognizer(args: argparse.Namespace):
    recognizer, ck = load_recognizer(args.model, args.lm, args.lexicon, args.word_lm)
    if recognizer.word_level is not None and recognizer.word_level.dropped:
        print(f"{recognizer.word_level.dropped} words of the lexicon use characters the model lacks: left out",
              file=sys.stderr)
    return recognizer, ck


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    recognizer, ck = _recognizer(args)
    corpus, _ = read_corpus(args.data, recognizer.kind, recognizer.units, recognizer.fbank,
                            recognizer.model.config.stack, args.skip_bad)
    if corpus.skipped:
        print(corpus.describe(), file=sys.stderr)
    decodings = {"": _decoding(args, 1)}
    if args.beam > 1 and recognizer.hybrid is None:
        decodings["beam_"] = _decoding(args, args.beam)
    if recognizer.word_level is not None:
        decodings["words_"] = _decoding(args, args.beam, words=True)
    print_metrics(recognizer.evaluate(corpus, decodings), args.json)
    return 0


def _transcribe(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    recognizer, _ = _recognizer(args)
    if args.words and recognizer.word_level is None:
        raise ValueError(f"--words: {args.model} has no lexicon (a character CTC model has one; or give --lexicon)")
    results = recognizer.transcribe(args.files, _decoding(args, args.beam, args.words))
    for file, hyps in zip(args.files, results):
        if args.nbest == 1:
            print(f"{file}\t{hyps[0][0]}")
        else:
            for rank, (text, h) in enumerate(hyps, 1):
                print(f"{file}\t{rank}\t{h.score:.3f}\t{text}")
    sys.stdout.flush()
    return 0


def _align(args: argparse.Namespace, argv: list[str]) -> int:
    """Frame labels by forced alignment: a line per utterance, its audio's path and the label
    of each 10 ms input frame (the blank written as BLANK), for framewise training."""
    setup_inference(args)
    recognizer, _ = load_recognizer(args.model)
    if recognizer.hybrid is not None:
        raise ValueError(f"--model: {args.model} is a framewise model; alignments come from a CTC model")
    stack = recognizer.model.config.stack
    corpus, _ = read_corpus(args.data, recognizer.kind, recognizer.units, recognizer.fbank, stack, args.skip_bad)
    frames = []
    for u, alignment in zip(corpus.utterances, recognizer.align(corpus)):
        if alignment is None:
            raise DataError(args.data, u.line, f"{u.audio}: its frames cannot hold its transcript")
        frames.append(to_input_rate(alignment.frames, stack, len(u.static)))
    write_alignments(args.out, corpus.utterances, frames, recognizer.units)
    print(f"{len(corpus.utterances)} alignments written to {args.out}", file=sys.stderr)
    return 0


def _lm(args: argparse.Namespace, argv: list[str]) -> int:
    """A lexicon and a word n-gram for decoding a character model into words (--lexicon, --word-lm)."""
    texts = [line for path in args.text for line in read_lines(path) if line.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in word_files(texts, args.order).items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(args.out / name)
    return 0


def _decode_flags(p: argparse.ArgumentParser, beam: int) -> None:
    p.add_argument("--beam", type=COUNT, default=beam, help="prefix beam search's width (1: greedy)")
    p.add_argument("--lm", type=Path, default=None,
                   help="an ARPA n-gram over the model's units (default: the one fitted on the training transcripts)")
    p.add_argument("--no-lm", action="store_true", help="beam search without a language model")
    p.add_argument("--lm-weight", type=NONNEGATIVE, default=None,
                   help="α: the language model's weight (default: 0.5 for CTC, 1.0 for a framewise model's bigram)")
    p.add_argument("--bonus", type=REAL, default=None,
                   help="β: a bonus per unit against the LM's short bias (default: 1.0 for CTC, 0 framewise)")
    p.add_argument("--word-lm-weight", type=NONNEGATIVE, default=None,
                   help="decoding into words: the word n-gram's weight (default 0.7)")
    p.add_argument("--word-bonus", type=REAL, default=None, help="decoding into words: a bonus per word (default 0)")
    p.add_argument("--lexicon", type=Path, default=None,
                   help="character models: the words to decode into, one per line (default: the training words)")
    p.add_argument("--word-lm", type=Path, default=None,
                   help="character models: an ARPA word n-gram (default: the one fitted on the training transcripts)")
    p.add_argument("--prior-scale", type=NONNEGATIVE, default=1.0,
                   help="framewise models: posteriors are divided by the label priors to this power")


def register(sub: argparse._SubParsersAction) -> None:
    asr = sub.add_parser("asr", help="speech recognition: CTC acoustic models, beam search with a language model")
    actions = asr.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", parents=[common_parent()], help="train a recognizer")
    train.add_argument("--train", type=Path, required=True, help="manifest: audio path<TAB>transcript per line")
    train.add_argument("--dev", type=Path, default=None, help="default: --holdout of the training utterances")
    train.add_argument("--units", choices=[u.value for u in Units], default="phones",
                       help="phones: whitespace-separated symbols; chars: the transcript's characters")
    train.add_argument("--objective", choices=[o.value for o in Objective], default="ctc",
                       help="ctc, or framewise cross-entropy on --alignments (the hybrid system)")
    train.add_argument("--alignments", type=Path, default=None,
                       help="framewise: the training utterances' frame labels, from rnnkit asr align")
    train.add_argument("--model", choices=[a.value for a in Architecture], default="blstm",
                       help="blstm, lstmp, cnn-lstm, lstm (unidirectional, streams), dnn (framewise baseline)")
    train.add_argument("--hidden", type=rule(AcousticConfig, "hidden"), default=256,
                       help="LSTM cells per direction (dnn: units per layer)")
    train.add_argument("--layers", type=rule(AcousticConfig, "layers"), default=3,
                       help="recurrent (dnn: hidden) layers")
    train.add_argument("--proj", type=rule(AcousticConfig, "proj"), default=0,
                       help="lstmp: the projection's width (0: half of --hidden)")
    train.add_argument("--stack", type=rule(AcousticConfig, "stack"), default=3,
                       help="frames stacked into one: the model runs at 1/STACK of the frame rate")
    train.add_argument("--dropout", type=rule(AcousticConfig, "dropout"), default=0.2, help="between layers")
    train.add_argument("--context", type=rule(AcousticConfig, "context"), default=5,
                       help="dnn: frames either side of the one it labels")
    train.add_argument("--batch-frames", type=rule(SpeechData, "batch_frames"), default=8000,
                       help="input frames per batch, padding included")
    train.add_argument("--speed-perturb", type=_speeds, default=(), metavar="FACTORS",
                       help="also hear each training utterance at these speeds, one per epoch (e.g. 0.9,1.1)")
    train.add_argument("--spec-augment", action="store_true", help="SpecAugment's frequency and time masks")
    train.add_argument("--lm-order", type=rule(SpeechData, "lm_order"), default=4,
                       help="order of the units' n-gram fitted on the training transcripts")
    train.add_argument("--word-lm-order", type=rule(SpeechData, "word_lm_order"), default=3,
                       help="character units: order of the word n-gram fitted on the training transcripts")
    train.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable, empty or too-short utterances (counted) instead of stopping")
    train.set_defaults(run=_train, clip_norm=5.0)
    ev = actions.add_parser("eval", parents=[eval_parent()], help="error rates on a manifest (greedy and beam)")
    ev.add_argument("--data", type=Path, required=True, help="manifest to score")
    ev.add_argument("--skip-bad", action="store_true", help="skip bad utterances (counted) instead of stopping")
    _decode_flags(ev, 16)
    ev.set_defaults(run=_eval)
    al = actions.add_parser("align", help="forced alignment: each frame's label, from a trained CTC model")
    al.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    al.add_argument("--data", type=Path, required=True, help="manifest to align")
    al.add_argument("--out", type=Path, required=True, help="alignments: audio path<TAB>a label per 10 ms frame")
    al.add_argument("--skip-bad", action="store_true", help="skip bad utterances (counted) instead of stopping")
    al.add_argument("--threads", type=COUNT, default=None, help="torch threads (default: every core)")
    al.set_defaults(run=_align)
    lm = actions.add_parser("lm", help="a lexicon and a word n-gram from text, for --lexicon and --word-lm")
    lm.add_argument("--text", type=Path, action="append", required=True, help="a sentence per line (repeatable)")
    lm.add_argument("--order", type=rule(SpeechData, "word_lm_order"), default=3, help="the word n-gram's order")
    lm.add_argument("--out", type=Path, required=True, help="folder for lexicon.txt and words.arpa")
    lm.set_defaults(run=_lm)
    tr = actions.add_parser("transcribe", help="transcribe audio files: a line per file")
    tr.add_argument("--model", type=Path, required=True, help="a training run's --out directory or its model/")
    tr.add_argument("files", type=Path, nargs="+", help="audio files (wav, flac, ...)")
    tr.add_argument("--nbest", type=COUNT, default=1, help="print the N best (file, rank, score, text)")
    tr.add_argument("--words", action="store_true",
                    help="character models: decode into the lexicon's words with the word n-gram")
    tr.add_argument("--threads", type=COUNT, default=None, help="torch threads (default: every core)")
    _decode_flags(tr, 16)
    tr.set_defaults(run=_transcribe)
