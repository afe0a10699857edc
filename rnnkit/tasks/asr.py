"""Speech recognition: an acoustic model (:mod:`rnnkit.tasks.acoustic`) trained with CTC on
a manifest of recordings and transcripts in phones or characters, decoded greedily or by
prefix beam search with an n-gram language model over the units.

:func:`training_job` is the pipeline: manifests and configs -> a training job whose model
directory also holds the feature statistics and the units' n-gram (``lm.arpa``, fitted on
the training transcripts); :func:`load_recognizer` reads it back as a :class:`Recognizer`,
which transcribes audio files and scores manifests (:func:`error_rates`, through jiwer).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from rnnkit.decode import Alignment, Hypothesis, PrefixLM, ctc_align, ctc_greedy_decode, ctc_prefix_beam_search
from rnnkit.distributed import SINGLE, World
from rnnkit.features import FbankConfig, Normalizer, SpecAugmentConfig
from rnnkit.losses import Reduction, ctc_loss
from rnnkit.ngram import NGram
from rnnkit.runner import TrainingJob
from rnnkit.settings import COUNT, FRACTION, NATURAL, check, setting
from rnnkit.tasks.acoustic import AcousticConfig, AcousticModel
from rnnkit.tasks.speech_data import (
    Corpus,
    SpeechEncoder,
    SpeechLoader,
    Units,
    build_units,
    fit_normalizer,
    from_units,
    read_corpus,
    static_features,
)
from rnnkit.train import StepOutput
from rnnkit.vocab import Vocab

LM_FILE = "lm.arpa"
BLANK_ID = 0  # the blank is unit 0; the language model uses it as its end-of-sequence symbol


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
    fbank: FbankConfig = field(default_factory=FbankConfig)

    def __post_init__(self) -> None:
        check(self)
        for s in self.speeds:
            if not 0.5 <= s <= 2.0 or s == 1.0:
                raise ValueError(f"speeds: each speed factor must be in [0.5, 2] and not 1; got {s}")


def ctc_objective(model: nn.Module, batch, state) -> StepOutput:
    """CTC's loss summed over the batch; the count is its target units."""
    scores, lengths = model(batch.inputs, batch.lengths)
    loss = ctc_loss(scores.log_softmax(-1), batch.targets, lengths, batch.target_lengths, blank=BLANK_ID,
                    reduction=Reduction.SUM)
    return StepOutput(loss, int(batch.target_lengths.sum()), None)


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


@dataclass
class Decoding:
    """How :class:`Recognizer` decodes: greedy (beam 1) or the prefix beam search."""

    beam: int = 1
    lm_weight: float = 0.5  # α
    bonus: float = 1.0  # β, per unit
    nbest: int = 1
    use_lm: bool = True


class Recognizer:
    """A trained acoustic model with its units, feature settings and language model."""

    def __init__(self, model: AcousticModel, units: Vocab, kind: Units, fbank: FbankConfig, normalizer: Normalizer,
                 lm: PrefixLM | None = None, batch_frames: int = 20000):
        self.model, self.units, self.kind, self.fbank = model, units, kind, fbank
        self.encoder = SpeechEncoder(normalizer, fbank.deltas)
        self.lm, self.batch_frames = lm, batch_frames

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
        """The ``how.nbest`` best unit sequences of each utterance."""
        hyps = []
        for lp in log_probs:
            if how.beam <= 1:
                labels = ctc_greedy_decode(lp[None], [len(lp)], BLANK_ID)[0]
                hyps.append([Hypothesis(labels, float("nan"), float("nan"), 0.0)])
                continue
            lm = self.lm if how.use_lm else None
            hyps.append(ctc_prefix_beam_search(lp[None], [len(lp)], how.beam, blank=BLANK_ID, lm=lm,
                                               alpha=how.lm_weight if lm else 0.0, beta=how.bonus if lm else 0.0,
                                               nbest=how.nbest)[0])
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
    encoder = SpeechEncoder(normalizer, data.fbank.deltas, data.spec_augment, data.seed)
    loader = SpeechLoader(train, perturbed, encoder, BatchingConfig(max_tokens=data.batch_frames, batch_size=None,
                                                                    seed=data.seed),
                          config.stack, world.rank, world.size)
    lm_text = resumed_lm(resumed) if resumed else unit_lm(train, units, data.lm_order)
    metric = "per" if data.units is Units.PHONES else "cer"

    def evaluate(m: AcousticModel) -> dict[str, float]:
        return Recognizer(m, units, data.units, data.fbank, normalizer).evaluate(dev, {"": Decoding()})

    notes = [n for n in (note, train.describe(), dev.describe() if dev and data.dev else None) if n]
    notes.append(f"{len(units) - 1} units, {config.architecture.value}: "
                 f"{sum(p.numel() for p in model.parameters()):,} parameters")
    header = {"task": "asr", "model": config.architecture.value, "units": data.units.value,
              "acoustic": config.to_dict(), "fbank": data.fbank.__dict__,
              "normalizer": {"mean": list(normalizer.mean), "std": list(normalizer.std)}}
    return TrainingJob(model, ctc_objective, loader, len(loader.sampler), header, {"units": units},
                       evaluate=evaluate if dev else None, metric=metric if dev else None, minimize=True,
                       notes=notes, files={LM_FILE: lm_text})


def resumed_lm(resumed: Checkpoint) -> str:
    return (resumed.path / LM_FILE).read_text(encoding="utf-8")


def load_recognizer(directory: Path, lm: Path | None = None) -> tuple[Recognizer, Checkpoint]:
    """A trained recognizer's model directory (or its run's --out): the recognizer, with the
    directory's unit n-gram or the ARPA file ``lm``, and its record."""
    ck = read_config(directory)
    if ck.config.get("task") != "asr":
        raise ValueError(f"{ck.path} is not a speech recognizer (task {ck.config.get('task')!r})")
    config = AcousticConfig(**ck.config["acoustic"])
    model = AcousticModel(config)
    load_weights(ck.path, model)
    units = ck.vocabs["units"]
    path = lm or ck.path / LM_FILE
    language_model = ArpaLM(path, units.symbols, end_id=BLANK_ID) if path.exists() else None
    if lm is not None and language_model is None:
        raise DataError(lm, None, "no such file")
    return Recognizer(model, units, Units(ck.config["units"]), FbankConfig(**ck.config["fbank"]),
                      Normalizer(**ck.config["normalizer"]), language_model), ck
