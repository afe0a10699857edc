"""`rnnkit demo`: what the toolkit can do, on real data, in about four minutes: binary
addition that generalises to longer numbers, a part-of-speech tagger next to its
baselines, a character-level language model on Python's standard library, and a speech
recognizer trained on a small synthesized corpus and tested on voices it never heard."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.batch import BatchingConfig
from rnnkit.commands.common import AUTO, seed_everything, thread_count
from rnnkit.commands.process import keep_freed_memory, set_threads
from rnnkit.commands.threads import AdaptiveThreads
from rnnkit.data import speech_corpus
from rnnkit.data.corpora import cache_root, fetch
from rnnkit.data.pysource import load_python_sources
from rnnkit.data.tagged import read_slash
from rnnkit.data.tsv import read_fields
from rnnkit.decode import sample
from rnnkit.hmm import HMMTagger
from rnnkit.layers import RNN
from rnnkit.loader import SequenceLoader, StreamLoader
from rnnkit.metrics import tagging_metrics
from rnnkit.ngram import NGram
from rnnkit.optim import OptimizerConfig
from rnnkit.runner import RunConfig, run_training
from rnnkit.settings import NATURAL, POSITIVE
from rnnkit.tasks.acoustic import AcousticConfig
from rnnkit.tasks.asr import Decoding, SpeechData, load_recognizer
from rnnkit.tasks.asr import training_job as asr_training_job
from rnnkit.tasks.binary_addition import Adder, AdderConfig, sum_accuracy, train_adder
from rnnkit.tasks.lm import LanguageModel, LMConfig, bits_per_symbol, stream_objective
from rnnkit.tasks.speech_data import read_corpus
from rnnkit.tasks.tagger import NeuralTagger, Tagger, TaggerConfig, TaggerEncoder, TaggerVocabs
from rnnkit.tasks.tagger import objective as tagger_objective
from rnnkit.tdnn import TDNN
from rnnkit.train import FitConfig, fit
from rnnkit.vocab import UNK, Vocab

DEFAULT_SENTENCE = "The old man the boats , said the surprised editor ."


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    tag_seconds: float = 70.0  # training budget of the POS tagger
    sentence: str = DEFAULT_SENTENCE  # tagged at the end
    lm_seconds: float = 60.0  # training budget of the character language model
    prime: str = "def "  # text the sample starts from
    sample_length: int = 400
    temperature: float = 0.7
    test_chars: int = 200_000  # held-out characters scored
    adaptive_threads: bool = False  # --threads auto: each batch on 1 thread or all, whichever is faster
    speech_seconds: float = 50.0  # training budget of the speech recognizer
    speech_train: int = 500  # synthesized training utterances (the test set: 40 of voices never heard)


def _threads(config: DemoConfig) -> list[AdaptiveThreads]:
    return [AdaptiveThreads()] if config.adaptive_threads else []


def binary_addition(config: DemoConfig, say) -> dict:
    say("== Binary addition: train on 8-bit numbers, test on longer ones ==")
    results = {}
    for name, layer in (("Elman RNN, 16 units", RNN(2, 16)), ("TDNN, window 4 (baseline)", TDNN(2, 16, window=4))):
        g = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        start = time.perf_counter()
        model = train_adder(Adder(layer), AdderConfig(), g)
        acc = {bits: sum_accuracy(model, bits, 1000, g) for bits in (8, 16, 32)}
        say(f"  {name:27s} exact sums: 8-bit {acc[8]:6.1%}  16-bit {acc[16]:6.1%}  32-bit {acc[32]:6.1%}"
            f"   ({time.perf_counter() - start:.0f} s)")
        results[name] = acc
    return results


def pos_tagger(config: DemoConfig, say) -> dict:
    say("\n== Part-of-speech tagging, English (OANC, 48 Penn tags) ==")
    paths = fetch("oanc-pos")
    train, test = read_slash(paths["train"]), read_slash(paths["test"])
    words, tags = [s.tokens for s in train], [s.tags for s in train]
    known = {w for s in words for w in s}
    say(f"  {sum(map(len, words)):,} training tokens, {sum(len(s.tokens) for s in test):,} test tokens "
        f"(fetched with `rnnkit data oanc-pos`)")
    counts: dict[str, Counter] = defaultdict(Counter)
    for ws, ts in zip(words, tags):
        for w, t in zip(ws, ts):
            counts[w][t] += 1
    top = Counter(t for ts in tags for t in ts).most_common(1)[0][0]
    gold, test_words = [s.tags for s in test], [s.tokens for s in test]
    mft = [[counts[w].most_common(1)[0][0] if w in counts else top for w in ws] for ws in test_words]
    hmm = HMMTagger().fit(words, tags)
    results = {"most_frequent_tag": tagging_metrics(gold, mft, test_words, known),
               "hmm": tagging_metrics(gold, [hmm.tag(ws) for ws in test_words], test_words, known)}
    vocabs = TaggerVocabs.build(words, tags, lowercase=True)
    torch.manual_seed(config.seed)
    tconfig = TaggerConfig(len(vocabs.words), len(vocabs.chars), len(vocabs.tags), crf=False, dropout=0.25)
    model, encoder = Tagger(tconfig, vocabs.tags.symbols), TaggerEncoder(vocabs, lowercase=True)
    examples = [encoder.example(ws, ts) for ws, ts in zip(words, tags)]
    loader = SequenceLoader(examples, [len(ws) for ws in words], encoder.collate,
                            BatchingConfig(batch_size=32, seed=config.seed))
    start = time.perf_counter()
    fit_state = fit(model, tagger_objective, loader, torch.optim.Adam(model.parameters(), lr=0.01),
                    FitConfig(epochs=1, max_minutes=config.tag_seconds / 60, clip_norm=5.0), _threads(config))
    elapsed = time.perf_counter() - start
    neural = NeuralTagger(model, vocabs, tconfig)
    results["bilstm"] = tagging_metrics(gold, neural.tag(test_words), test_words, known)
    say(f"  BiLSTM + character BiLSTM, {fit_state.step} updates in {elapsed:.0f} s "
        f"({fit_state.epoch + fit_state.batch / len(loader.sampler):.0%} of an epoch)")
    for name, label in (("most_frequent_tag", "most frequent tag"), ("hmm", "HMM (baseline)"),
                        ("bilstm", "BiLSTM tagger")):
        m = results[name]
        say(f"  {label:18s} test accuracy {m['accuracy']:.2%}   unknown words {m['unknown_accuracy']:.2%}")
    sentence = config.sentence.split()
    say(f"  HMM:    {' '.join(f'{w}/{t}' for w, t in zip(sentence, hmm.tag(sentence)))}")
    say(f"  BiLSTM: {' '.join(f'{w}/{t}' for w, t in zip(sentence, neural.tag([sentence])[0]))}")
    return results


def char_language_model(config: DemoConfig, say) -> dict:
    say("\n== Character-level LSTM on Python's standard library (char-rnn) ==")
    corpus = load_python_sources()
    vocab = Vocab.build([corpus.train], specials=(UNK,), min_freq=20)
    train = torch.tensor(vocab.encode(corpus.train))
    test = torch.tensor(vocab.encode(corpus.test[:config.test_chars]))
    say(f"  corpus: {len(train):,} training characters from {corpus.train_files} files; "
        f"{len(test):,} held-out characters from {corpus.test_files} other files; {len(vocab)} symbols")
    baselines = {}
    for order in (3, 5):
        ngram = NGram(order, len(vocab)).fit(train.numpy())
        baselines[order] = ngram.bits_per_symbol(test.numpy())
    torch.manual_seed(config.seed)
    model = LanguageModel(LMConfig(vocab_size=len(vocab), embed_size=64, hidden_size=256))
    batch_size, bptt = 64, 64
    loader = StreamLoader(train, batch_size, bptt)  # truncated BPTT, state carried from chunk to chunk
    start = time.perf_counter()
    fit_state = fit(model, stream_objective, loader, torch.optim.Adam(model.parameters(), lr=3e-3),
                    FitConfig(epochs=1, max_minutes=config.lm_seconds / 60, carry_state=True, clip_norm=5.0),
                    _threads(config))
    elapsed = time.perf_counter() - start
    seen = fit_state.step * batch_size * bptt
    bpc = bits_per_symbol(model, test)
    n = torch.get_num_threads()
    threads = f"1 or {n} threads, chosen per batch" if config.adaptive_threads and n > 1 else \
        f"{n} thread{'s' if n > 1 else ''}"
    say(f"  LSTM 1x256, truncated BPTT {bptt}, batch {batch_size}, Adam: "
        f"{seen:,} characters in {elapsed:.0f} s ({seen / elapsed:,.0f} chars/s, {threads})")
    say(f"  held-out bits per character: LSTM {bpc:.3f} | Witten-Bell 3-gram {baselines[3]:.3f} | "
        f"5-gram {baselines[5]:.3f}")
    g = torch.Generator().manual_seed(config.seed)
    ids = sample(model, vocab.encode(config.prime), config.sample_length,
                 temperature=config.temperature, generator=g)
    text = config.prime + "".join(vocab.decode(ids))
    say(f"  sample (temperature {config.temperature}, prime {config.prime!r}):\n")
    say("\n".join("    | " + line for line in text.splitlines()))
    return {"bits_per_char": bpc, "ngram3_bits_per_char": baselines[3], "ngram5_bits_per_char": baselines[5],
            "chars_trained": seen, "seconds": elapsed}


DEMO_BOOKS = ("john", "ruth", "jonah", "mark")  # the speech demo's sentences: short books read in seconds
DEMO_TEST = 40


def speech_demo_corpus(train: int) -> dict[str, Path]:
    """The demo's corpus (built once, cached): ``train`` utterances of espeak-ng's training
    voices and DEMO_TEST of its test voices, from a few books of the World English Bible."""
    out = cache_root() / "speech-demo"
    stamp = f"espeak-ng, {' '.join(DEMO_BOOKS)}; {train} + {DEMO_TEST} utterances\n"
    if (out / ".prepared").exists() and (out / ".prepared").read_text() == stamp:
        return {p.name.removesuffix(".tsv"): p for p in sorted(out.glob("*.tsv"))}
    sentences = speech_corpus.bible_sentences(cache_root() / "web-sentences-demo.txt", DEMO_BOOKS)
    paths = speech_corpus.build(out, sentences, train=train, dev=0, test=DEMO_TEST, flite=0)
    (out / ".prepared").write_text(stamp)
    return paths


def speech_recognition(config: DemoConfig, say) -> dict:
    say("\n== Speech recognition: CTC phones, tested on voices never heard in training ==")
    start = time.perf_counter()
    paths = speech_demo_corpus(config.speech_train)
    say(f"  corpus: {config.speech_train} training and {DEMO_TEST} test utterances synthesized by espeak-ng "
        f"({time.perf_counter() - start:.0f} s; `rnnkit data speech-espeak` builds the full one)")
    torch.manual_seed(config.seed)
    acoustic = AcousticConfig(num_units=0, hidden=128, layers=2, stack=3, dropout=0.0)
    job = asr_training_job(SpeechData(train=paths["train.phones"], holdout=0.0, batch_frames=3000, seed=config.seed),
                           acoustic)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunConfig(out=Path(tmp), seed=config.seed, log_every=10**9, optimizer=OptimizerConfig(lr=3e-3),
                        fit=FitConfig(epochs=200, max_minutes=config.speech_seconds / 60, clip_norm=5.0))
        start = time.perf_counter()
        fit_state = run_training(run, job, callbacks=_threads(config))
        elapsed = time.perf_counter() - start
        recognizer, _ = load_recognizer(Path(tmp))
    say(f"  deep BLSTM 2x128, 3 frames stacked: {fit_state.epoch} epochs, {fit_state.step} updates in {elapsed:.0f} s")
    corpus, _ = read_corpus(paths["test.phones"], recognizer.kind, recognizer.units, recognizer.fbank,
                            acoustic.stack)
    metrics = recognizer.evaluate(corpus, {"": Decoding(), "beam_": Decoding(beam=16)})
    say(f"  phone error rate on unseen voices: greedy {metrics['per']:.1%} | beam 16 + phone 4-gram "
        f"{metrics['beam_per']:.1%}")
    first = corpus.utterances[0]
    [[best]] = recognizer.decode(recognizer.log_probs([first.static]), Decoding(beam=16))
    voice, words = first.audio.parent.name, read_fields(paths["test"], ("audio path", "words"))[0][2]
    say(f"  {voice} said \"{words}\":\n    {first.transcript}\n  heard:\n    {recognizer.text(best)}")
    return {**metrics, "seconds": elapsed, "epochs": fit_state.epoch}


def run_demo(config: DemoConfig, say=print) -> dict:
    seed_everything(config.seed)
    return {"binary_addition": binary_addition(config, say), "pos": pos_tagger(config, say),
            "char_lm": char_language_model(config, say), "speech": speech_recognition(config, say)}


def _demo(args: argparse.Namespace, argv: list[str]) -> int:
    set_threads(args.threads if isinstance(args.threads, int) else None)
    keep_freed_memory()
    run_demo(DemoConfig(seed=args.seed, tag_seconds=args.tag_seconds, sentence=args.sentence,
                        lm_seconds=args.lm_seconds, prime=args.prime, adaptive_threads=args.threads == AUTO,
                        speech_seconds=args.speech_seconds))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="binary addition, a POS tagger, a character LSTM, a speech recognizer")
    demo.add_argument("--seed", type=NATURAL, default=0, help="seeds both models' training")
    demo.add_argument("--threads", type=thread_count, default=None,
                      help="a count (default: every core), or auto: each batch on 1 thread or all, the faster")
    demo.add_argument("--sentence", default=DEFAULT_SENTENCE, help="an English sentence to tag (tokens by spaces)")
    demo.add_argument("--tag-seconds", type=POSITIVE, default=70.0, help="tagger training budget")
    demo.add_argument("--lm-seconds", type=POSITIVE, default=60.0, help="language-model training budget")
    demo.add_argument("--prime", default="def ", help="text the generated sample starts from")
    demo.add_argument("--speech-seconds", type=POSITIVE, default=50.0, help="speech recognizer training budget")
    demo.set_defaults(run=_demo)



