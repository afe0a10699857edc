"""Speech recognition: an acoustic model (:mod:`rnnkit.tasks.acoustic`) trained on a
manifest of recordings and transcripts in phones or characters, either with CTC (decoded
greedily or by prefix beam search with an n-gram language model over the units) or
framewise, on frame labels from a forced alignment (the hybrid system: posteriors over
priors, Viterbi over a phone loop with a phone bigram, :mod:`rnnkit.tasks.hybrid`).

:func:`training_job` is the pipeline: manifests and configs -> a training job whose model
directory also holds the feature statistics and the units' n-gram (``lm.arpa``, fitted on
the training transcripts); :func:`load_recognizer` reads it back as a :class:`Recognizer`,
which transcribes audio files and scores manifests (:func:`error_rates`, through jiwer).
"""

from __future__ import annotations

import enum
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import jiwer
import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.arpa import ArpaLM, write_arpa
from rnnkit.batch import BatchingConfig
from rnnkit.checkpoint import Checkpoint, load_weights, read_config
from rnnkit.data.audio import read_audio
from rnnkit.data.errors import DataError
from rnnkit.data.split import hold_out
from rnnkit.data.tsv import read_fields
from rnnkit.decode import (
    Alignment,
    Hypothesis,
    PrefixLM,
    collapse,
    ctc_align,
    ctc_greedy_decode,
    ctc_lexicon_beam_search,
    ctc_prefix_beam_search,
    viterbi,
)
from rnnkit.distributed import SINGLE, World
from rnnkit.features import FbankConfig, Normalizer, SpecAugmentConfig
from rnnkit.losses import Reduction, ctc_loss
from rnnkit.ngram import NGram
from rnnkit.runner import TrainingJob
from rnnkit.settings import COUNT, FRACTION, NATURAL, check, setting
from rnnkit.tasks.acoustic import AcousticConfig, AcousticModel
from rnnkit.tasks.hybrid import HybridStats
from rnnkit.tasks.speech_data import (
    Corpus,
    FramewiseEncoder,
    SpeechEncoder,
    SpeechLoader,
    Units,
    build_units,
    fit_normalizer,
    from_units,
    read_alignments,
    read_corpus,
    resample,
    static_features,
)
from rnnkit.tasks.words import (
    LEXICON_FILE,
    WORD_LM_FILE,
    WordLevel,
    load_word_level,
    word_files,
)
from rnnkit.train import StepOutput
from rnnkit.vocab import Vocab

LM_FILE = "lm.arpa"
BLANK_ID = 0  # the blank is unit 0; the language model uses it as its end-of-sequence symbol


class Objective(enum.Enum):
    CTC = "ctc"  # alignment-free, over the units and the blank
    FRAMEWISE = "framewise"  # cross-entropy against a unit per frame from a forced alignment (hybrid)


@dataclass(frozen=True)
class SpeechData:
    """The manifests a recognizer trains on, and how they become batches."""

    train: Path
    dev: Path | None = None  # scored at each epoch's end; None: held out of train (holdout)
    units: Units = Units.PHONES
    batch_frames: int = setting(8000, COUNT)  # input frames per batch and process, padding included
    holdout: float = setting(0.1, FRACTION)  # without dev: the fraction of train's utterances held out
    seed: int = setting(0, NATURAL)  # batch order, the held-out part, the augmentation draws
    skip_bad: bool = False  # skip (and count) bad utterances instead of stopping at the first
    speeds: tuple[float, ...] = ()  # speed perturbation: other speeds each utterance is also heard at
    spec_augment: SpecAugmentConfig | None = None  # SpecAugment's masks on the training batches
    lm_order: int = setting(4, COUNT)  # the n-gram over units fitted on the training transcripts
    word_lm_order: int = setting(3, COUNT)  # characters: the word n-gram fitted on the training transcripts
    fbank: FbankConfig = field(default_factory=FbankConfig)
    objective: Objective = Objective.CTC
    alignments: Path | None = None  # framewise: the training utterances' alignments (rnnkit asr align)

    def __post_init__(self) -> None:
        check(self)
        if (self.objective is Objective.FRAMEWISE) != (self.alignments is not None):
            raise ValueError("alignments: framewise training needs the training set's alignments (rnnkit asr align), "
                             "and only framewise training reads them")
        for s in self.speeds:
            if not 0.5 <= s <= 2.0 or s == 1.0:
                raise ValueError(f"speeds: each speed factor must be in [0.5, 2] and not 1; got {s}")


def ctc_objective(model: nn.Module, batch, state) -> StepOutput:
    """CTC's loss summed over the batch; the count is its target units."""
    scores, lengths = model(batch.inputs, batch.lengths)
    loss = ctc_loss(scores.log_softmax(-1), batch.targets, lengths, batch.target_lengths, blank=BLANK_ID,
                    reduction=Reduction.SUM)
    return StepOutput(loss, int(batch.target_lengths.sum()), None)


def framewise_objective(model: nn.Module, batch, state) -> StepOutput:
    """Cross-entropy summed over the frames against their labels; the count is the frames."""
    scores, _ = model(batch.inputs, batch.lengths)  # (B, T, K)
    targets = batch.targets  # (B, T), FramewiseEncoder.IGNORE past each end
    loss = nn.functional.cross_entropy(scores.flatten(0, 1), targets.flatten(), ignore_index=FramewiseEncoder.IGNORE,
                                       reduction="sum")
    return StepOutput(loss, int((targets != FramewiseEncoder.IGNORE).sum()), None)


def error_rates(references: Sequence[str], hypotheses: Sequence[str], units: Units, prefix: str = "") -> dict:
    """Corpus-level error rates through jiwer: ``per`` (phones) or ``cer`` and ``wer``
    (characters): edits over reference units."""
    if units is Units.PHONES:
        return {f"{prefix}per": float(jiwer.wer(list(references), list(hypotheses)))}
    return {f"{prefix}cer": float(jiwer.cer(list(references), list(hypotheses))),
            f"{prefix}wer": float(jiwer.wer(list(references), list(hypotheses)))}


def unit_lm(corpus: Corpus, units: Vocab, order: int) -> str:
    """The units' n-gram fitted on the transcripts, each followed by the end symbol: ARPA text."""
    stream = np.array([i for u in corpus.utterances for i in [*u.labels, BLANK_ID]], dtype=np.int64)
    model = NGram(order, len(units)).fit(stream)
    out = io.StringIO()
    write_arpa(model, units.symbols, out, end_id=BLANK_ID)
    return out.getvalue()


class Search(enum.Enum):
    """The decoding's kind, each with its default (α, β)."""

    UNITS = "units"  # CTC prefix search over the units with the unit n-gram
    WORDS = "words"  # a character CTC model's search over a lexicon's words with the word n-gram
    HYBRID = "hybrid"  # a framewise model's Viterbi over the phone loop with the phone bigram


DEFAULT_WEIGHTS = {Search.UNITS: (0.5, 1.0), Search.WORDS: (0.7, 0.0), Search.HYBRID: (1.0, 0.0)}


@dataclass
class Decoding:
    """How :class:`Recognizer` decodes a CTC model: greedy (beam 1) or the prefix beam search
    with the unit n-gram (weight α, bonus β per unit); with ``words`` (character models), the
    prefix search over the lexicon's words with the word n-gram (β per word). A framewise
    model is always decoded by the hybrid Viterbi search (exact: no beam, one best), the phone
    bigram weighted by α and the priors by ``prior_scale``. None takes the search's default
    (:data:`DEFAULT_WEIGHTS`)."""

    beam: int = 1
    lm_weight: float | None = None  # α
    bonus: float | None = None  # β, per unit (per word with words)
    nbest: int = 1
    use_lm: bool = True
    prior_scale: float = 1.0  # κ: hybrid decoding's posteriors divided by the priors to this power
    words: bool = False  # character models: decode into the lexicon's words

    def weights(self, search: Search) -> tuple[float, float]:
        """(α, β) with the search's defaults filled in."""
        alpha, beta = DEFAULT_WEIGHTS[search]
        return (alpha if self.lm_weight is None else self.lm_weight, beta if self.bonus is None else self.bonus)


class Recognizer:
    """A trained acoustic model with its units, feature settings and language model; with
    ``hybrid`` statistics it is a framewise model, decoded by the hybrid search."""

    def __init__(self, model: AcousticModel, units: Vocab, kind: Units, fbank: FbankConfig, normalizer: Normalizer,
                 lm: PrefixLM | None = None, batch_frames: int = 20000, hybrid: HybridStats | None = None,
                 word_level: WordLevel | None = None):
        self.model, self.units, self.kind, self.fbank = model, units, kind, fbank
        self.encoder = SpeechEncoder(normalizer, fbank.deltas)
        self.lm, self.batch_frames, self.hybrid, self.word_level = lm, batch_frames, hybrid, word_level

    @torch.no_grad()
    def log_probs(self, statics: Sequence[Tensor]) -> list[Tensor]:
        """Each utterance's (T_i, K) log-probabilities, in batches of similar lengths."""
        self.model.eval()
        device = next(self.model.parameters()).device
        order = sorted(range(len(statics)), key=lambda i: len(statics[i]))
        out: list[Tensor | None] = [None] * len(statics)
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and len(statics[order[stop]]) * (stop - start + 1) <= self.batch_frames:
                stop += 1
            idx = order[start:stop]
            feats, counts = self.encoder.inputs([statics[i] for i in idx])
            lp, lengths = self.model.log_probs(feats.to(device), counts.to(device))
            for b, i in enumerate(idx):
                out[i] = lp[b, :int(lengths[b])].cpu()
            start = stop
        return out

    def decode(self, log_probs: Sequence[Tensor], how: Decoding) -> list[list[Hypothesis]]:
        """The ``how.nbest`` best unit sequences of each utterance (a framewise model: the best)."""
        if self.hybrid is not None:
            return self._decode_hybrid(log_probs, how)
        if how.words:
            return self._decode_words(log_probs, how)
        alpha, beta = how.weights(Search.UNITS)
        hyps = []
        for lp in log_probs:
            if how.beam <= 1:
                labels = ctc_greedy_decode(lp[None], [len(lp)], BLANK_ID)[0]
                hyps.append([Hypothesis(labels, float("nan"), float("nan"), 0.0)])
                continue
            lm = self.lm if how.use_lm else None
            hyps.append(ctc_prefix_beam_search(lp[None], [len(lp)], how.beam, blank=BLANK_ID, lm=lm,
                                               alpha=alpha if lm else 0.0, beta=beta if lm else 0.0,
                                               nbest=how.nbest)[0])
        return hyps

    def _decode_words(self, log_probs: Sequence[Tensor], how: Decoding) -> list[list[Hypothesis]]:
        """The lexicon search; an utterance whose surviving hypotheses all end inside a word
        (the lexicon cannot cover it) is decoded by the search over characters instead."""
        if self.word_level is None:
            raise ValueError("word decoding needs a character model with a lexicon")
        alpha, beta = how.weights(Search.WORDS)
        words = self.word_level
        lm = words.lm if how.use_lm else None
        hyps = []
        for lp in log_probs:
            found = ctc_lexicon_beam_search(lp[None], [len(lp)], words.lexicon, words.space, how.beam,
                                            blank=BLANK_ID, lm=lm, alpha=alpha if lm else 0.0, beta=beta,
                                            nbest=how.nbest)[0]
            plain = replace(how, words=False, lm_weight=None, bonus=None)  # the unit search's own weights
            hyps.append(found or self.decode([lp], plain)[0])
        return hyps

    def _decode_hybrid(self, log_probs: Sequence[Tensor], how: Decoding) -> list[list[Hypothesis]]:
        loop = self.hybrid.loop(*how.weights(Search.HYBRID))
        hyps = []
        for lp in log_probs:  # one at a time: Viterbi's cost is T·K² whatever the batch
            path = viterbi(self.hybrid.scaled_likelihoods(lp.double(), how.prior_scale)[None], [len(lp)], loop)[0]
            hyps.append([Hypothesis(collapse(path), math.nan, math.nan, math.nan)])
        return hyps

    def text(self, hypothesis: Hypothesis) -> str:
        return from_units(self.units.decode(hypothesis.labels), self.kind)

    def transcribe(self, files: Sequence[Path], how: Decoding | None = None) -> list[list[tuple[str, Hypothesis]]]:
        how = how or Decoding()
        statics = static_features([read_audio(f, self.fbank.sample_rate) for f in files], self.fbank)
        return [[(self.text(h), h) for h in hyps] for hyps in self.decode(self.log_probs(statics), how)]

    def align(self, corpus: Corpus) -> list[Alignment | None]:
        """Each utterance's best CTC alignment to its transcript, a label per output frame
        (None where its frames cannot hold the transcript)."""
        out = []
        for u, lp in zip(corpus.utterances, self.log_probs([u.static for u in corpus.utterances])):
            out += ctc_align(lp[None], [len(lp)], torch.tensor([u.labels]), [len(u.labels)], BLANK_ID)
        return out

    def evaluate(self, corpus: Corpus, decodings: dict[str, Decoding]) -> dict[str, float]:
        """Error rates of each named decoding (its name prefixes its keys; "" for the first) and the count."""
        lps = self.log_probs([u.static for u in corpus.utterances])
        references = [u.transcript if self.kind is Units.CHARS else " ".join(u.transcript.split())
                      for u in corpus.utterances]
        metrics: dict[str, float] = {"count": len(references)}
        for name, how in decodings.items():
            texts = [self.text(hyps[0]) for hyps in self.decode(lps, how)]
            metrics.update(error_rates([" ".join(r.split()) for r in references], texts, self.kind, name))
        return metrics


def _held_out(corpus: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus | None, str | None]:
    split = hold_out(len(corpus.utterances), fraction, seed)
    if not split.dev:
        return corpus, None, None
    pick = lambda idx: [corpus.utterances[i] for i in idx]  # noqa: E731
    return (Corpus(corpus.path, pick(split.train), corpus.skipped), Corpus(corpus.path, pick(split.dev)),
            split.describe("utterances", str(corpus.path)))


def training_job(data: SpeechData, config: AcousticConfig, world: World = SINGLE,
                 resumed: Checkpoint | None = None) -> TrainingJob:
    """The recognizer's job: units from the training transcripts (or the ``resumed``
    checkpoint's), features computed once, this rank's loader, dev error rate (greedy) each
    epoch. ``config``'s unit count and input size are set here."""
    if resumed:
        units = resumed.vocabs["units"]
    else:
        units = build_units([t for _, _, t in read_fields(data.train, ("audio path", "transcript"))], data.units)
    speeds = tuple(data.speeds)
    train, perturbed = read_corpus(data.train, data.units, units, data.fbank, config.stack, data.skip_bad, speeds)
    framewise = data.objective is Objective.FRAMEWISE
    if framewise:
        aligned = read_alignments(data.alignments, train, units, data.skip_bad)
        lines = {u.line for u in aligned.utterances}
        keep = [i for i, u in enumerate(train.utterances) if u.line in lines]
        train, perturbed = aligned, [[v[i] for i in keep] for v in perturbed]
    note = None
    if data.dev is not None:
        dev, _ = read_corpus(data.dev, data.units, units, data.fbank, config.stack, data.skip_bad)
    else:
        if perturbed:
            raise ValueError("speed perturbation needs a --dev manifest (the held-out part would hear its own "
                             "utterances at other speeds)")
        train, dev, note = _held_out(train, data.holdout, data.seed)
    normalizer = Normalizer(**resumed.config["normalizer"]) if resumed else \
        fit_normalizer([u.static for u in train.utterances], data.fbank.deltas)
    config = AcousticConfig(**{**config.to_dict(), "num_units": len(units), "input_size": data.fbank.size,
                               "block": data.fbank.num_mel + data.fbank.energy})
    model = AcousticModel(config)
    hybrid = None
    if framewise:
        hybrid = HybridStats(**resumed.config["hybrid"]) if resumed else HybridStats.fit(
            [resample(u.frames, -(-len(u.static) // config.stack), config.stack) for u in train.utterances],
            [u.labels for u in train.utterances], len(units))
        encoder = FramewiseEncoder(normalizer, data.fbank.deltas, config.stack, data.spec_augment, data.seed)
    else:
        encoder = SpeechEncoder(normalizer, data.fbank.deltas, data.spec_augment, data.seed)
    loader = SpeechLoader(train, perturbed, encoder, BatchingConfig(max_tokens=data.batch_frames, batch_size=None,
                                                                    seed=data.seed),
                          config.stack, world.rank, world.size)
    files = {} if framewise else {LM_FILE: resumed_lm(resumed) if resumed else unit_lm(train, units, data.lm_order)}
    if data.units is Units.CHARS:
        files.update(resumed_words(resumed, train, data.word_lm_order) if resumed else
                     word_files([u.transcript for u in train.utterances], data.word_lm_order))
    metric = "per" if data.units is Units.PHONES else "cer"

    def evaluate(m: AcousticModel) -> dict[str, float]:
        return Recognizer(m, units, data.units, data.fbank, normalizer, hybrid=hybrid).evaluate(dev, {"": Decoding()})

    notes = [n for n in (note, train.describe(), dev.describe() if dev and data.dev else None) if n]
    notes.append(f"{len(units) - 1} units, {config.architecture.value}: "
                 f"{sum(p.numel() for p in model.parameters()):,} parameters")
    header = {"task": "asr", "model": config.architecture.value, "units": data.units.value,
              "objective": data.objective.value, "acoustic": config.to_dict(), "fbank": data.fbank.__dict__,
              "normalizer": {"mean": list(normalizer.mean), "std": list(normalizer.std)}}
    if hybrid is not None:
        header["hybrid"] = hybrid.to_dict()
    return TrainingJob(model, framewise_objective if framewise else ctc_objective, loader, len(loader.sampler),
                       header, {"units": units}, evaluate=evaluate if dev else None, metric=metric if dev else None,
                       minimize=True, notes=notes, files=files)


def resumed_lm(resumed: Checkpoint) -> str:
    return (resumed.path / LM_FILE).read_text(encoding="utf-8")


def resumed_words(resumed: Checkpoint, train: Corpus, order: int) -> dict[str, str]:
    """The checkpoint's lexicon and word n-gram (fitted anew for one saved before it had them)."""
    files = [resumed.path / name for name in (LEXICON_FILE, WORD_LM_FILE)]
    if not all(f.exists() for f in files):
        return word_files([u.transcript for u in train.utterances], order)
    return {f.name: f.read_text(encoding="utf-8") for f in files}


def load_recognizer(directory: Path, lm: Path | None = None, lexicon: Path | None = None,
                    word_lm: Path | None = None) -> tuple[Recognizer, Checkpoint]:
    """A trained recognizer's model directory (or its run's --out): the recognizer, with the
    directory's unit n-gram or the ARPA file ``lm``, and its record. A character model also
    gets its word level: the directory's lexicon and word n-gram, or the files ``lexicon``
    and ``word_lm`` (the directory's word n-gram goes only with its own lexicon)."""
    ck = read_config(directory)
    if ck.config.get("task") != "asr":
        raise ValueError(f"{ck.path} is not a speech recognizer (task {ck.config.get('task')!r})")
    config = AcousticConfig(**ck.config["acoustic"])
    model = AcousticModel(config)
    load_weights(ck.path, model)
    units = ck.vocabs["units"]
    hybrid = HybridStats(**ck.config["hybrid"]) if "hybrid" in ck.config else None
    if lm is not None and hybrid is not None:
        raise ValueError(f"{ck.path} is a framewise (hybrid) model: it decodes with its phone bigram, not --lm")
    path = lm or ck.path / LM_FILE
    language_model = ArpaLM(path, units.symbols, end_id=BLANK_ID) if path.exists() else None
    if lm is not None and language_model is None:
        raise DataError(lm, None, "no such file")
    kind = Units(ck.config["units"])
    word_level = None
    if kind is Units.CHARS and hybrid is None:
        for flag, given in (("--lexicon", lexicon), ("--word-lm", word_lm)):
            if given is not None and not Path(given).exists():
                raise DataError(given, None, f"no such file ({flag})")
        own_lexicon = ck.path / LEXICON_FILE
        if lexicon is not None or own_lexicon.exists():
            own_lm = ck.path / WORD_LM_FILE
            lm_file = word_lm if word_lm is not None else own_lm if lexicon is None and own_lm.exists() else None
            word_level = load_word_level(lexicon or own_lexicon, lm_file, units)
    elif lexicon is not None or word_lm is not None:
        raise ValueError(f"{ck.path} is not a character CTC model: --lexicon and --word-lm turn characters into words")
    return Recognizer(model, units, kind, FbankConfig(**ck.config["fbank"]),
                      Normalizer(**ck.config["normalizer"]), language_model, hybrid=hybrid, word_level=word_level), ck
