"""Speech data for recognition: manifests read and checked, audio turned into features once
(kept for every epoch), units (phones or characters) encoded, and batches collated.

An utterance is rejected, naming the manifest line and the audio file, when its audio is
missing, unreadable or empty, when its transcript holds a unit the model does not know,
or when it is too short for its transcript (CTC needs one frame per label and one more per
repeated label, after frame stacking). ``skip_bad`` skips such utterances and counts them
instead.

Static features (log mel + log energy) are computed once, batched in torch; Δ, ΔΔ and
the normalisation are applied per batch. With speed perturbation each training utterance
is also kept at the perturbed speeds, and every epoch hears one of its versions, drawn by
the seed and the epoch.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.batch import Batch, BatchingConfig, pad_sequences
from rnnkit.data.audio import change_speed, read_audio
from rnnkit.data.errors import DataError
from rnnkit.data.tsv import read_fields
from rnnkit.decode.align import frame_labels
from rnnkit.features import FbankConfig, Normalizer, SpecAugmentConfig, add_deltas, log_fbank, spec_augment
from rnnkit.loader import SequenceLoader
from rnnkit.vocab import BLANK, Vocab

BLANK_SYMBOL = "BLANK"  # the blank in alignment files

FEATURE_BATCH = 32  # utterances per batch of feature extraction


class Units(enum.Enum):
    PHONES = "phones"  # whitespace-separated symbols (e.g. CMU phones)
    CHARS = "chars"  # the transcript's characters, one space between words included


def to_units(transcript: str, units: Units) -> list[str]:
    words = transcript.split()
    return words if units is Units.PHONES else list(" ".join(words))


def from_units(symbols: Sequence[str], units: Units) -> str:
    return " ".join(symbols) if units is Units.PHONES else "".join(symbols)


def build_units(transcripts: Sequence[str], units: Units) -> Vocab:
    """The blank (id 0), then every unit of the transcripts, sorted."""
    return Vocab([BLANK, *sorted({u for t in transcripts for u in to_units(t, units)})], (BLANK,))


def ctc_frames_needed(labels: Sequence[int]) -> int:
    """The fewest frames a CTC alignment of ``labels`` has: one per label, one per repeat."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


@dataclass
class Utterance:
    """One manifest line, ready for training: its static features and its unit ids."""

    audio: Path
    transcript: str
    line: int
    static: Tensor  # (F, C0) log mel + log energy, un-normalised
    labels: list[int]
    frames: list[int] | None = None  # framewise training: a unit per input frame (F,), from an alignment


@dataclass
class Corpus:
    """The usable utterances of a manifest; ``skipped`` the bad ones' errors (with skip_bad)."""

    path: Path
    utterances: list[Utterance]
    skipped: list[DataError] = field(default_factory=list)

    def describe(self) -> str:
        frames = sum(len(u.static) for u in self.utterances)
        note = f"{self.path}: {len(self.utterances):,} utterances, {frames / 360000:.2f} hours"
        return note + (f"; {len(self.skipped)} bad ones skipped (first: {self.skipped[0]})" if self.skipped else "")


def static_features(waves: Sequence[np.ndarray], fbank: FbankConfig) -> list[Tensor]:
    """Each waveform's static features (F_i, C0), computed in batches of similar lengths."""
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    out: list[Tensor | None] = [None] * len(waves)
    for start in range(0, len(order), FEATURE_BATCH):
        idx = order[start:start + FEATURE_BATCH]
        batch, n = pad_sequences([torch.from_numpy(waves[i]) for i in idx])  # (B, N)
        static, counts = log_fbank(batch, n, fbank)  # (B, F, C0)
        for b, i in enumerate(idx):
            out[i] = static[b, :int(counts[b])].clone()
    return out


def read_corpus(path: Path, units: Units, vocab: Vocab | None, fbank: FbankConfig, stack: int = 1,
                skip_bad: bool = False, speeds: Sequence[float] = (1.0,)) -> tuple[Corpus, list[list[Tensor]]]:
    """The manifest's utterances (``vocab``: None reads the transcripts only, to build one) and,
    for each speed other than 1, each utterance's static features at that speed."""
    rows, waves, skipped = [], [], []
    manifest = Path(path)
    for line, audio, transcript in read_fields(manifest, ("audio path", "transcript")):
        file = manifest.parent / audio
        try:
            wave = read_audio(file, fbank.sample_rate)
            if len(wave) < fbank.window:
                raise DataError(file, None, f"holds {len(wave)} samples, fewer than one {fbank.frame_ms:g} ms frame")
            symbols = to_units(transcript, units)
            if not symbols:
                raise DataError(file, None, "has an empty transcript")
            unknown = sorted({s for s in symbols if vocab is not None and s not in vocab})
            if unknown:
                raise DataError(file, None, f"transcript holds units the model lacks: {' '.join(map(repr, unknown))}")
        except DataError as err:
            bad = DataError(manifest, line, str(err))
            if not skip_bad:
                raise bad from None
            skipped.append(bad)
            continue
        rows.append((file, transcript, line, [] if vocab is None else vocab.encode(symbols)))
        waves.append(wave)
    statics = static_features(waves, fbank)
    utterances = []
    for (file, transcript, line, labels), static in zip(rows, statics):
        frames = -(-len(static) // stack)
        if labels and frames < ctc_frames_needed(labels):
            bad = DataError(manifest, line, f"{file}: {len(static)} frames ({frames} after stacking {stack}) are too "
                                            f"few for its {len(labels)} units (CTC needs "
                                            f"{ctc_frames_needed(labels)}: one per unit, one more per repeat)")
            if not skip_bad:
                raise bad
            skipped.append(bad)
            continue
        utterances.append(Utterance(file, transcript, line, static, labels))
    if not utterances:
        raise DataError(manifest, None, "no usable utterances" + (f" ({len(skipped)} skipped)" if skipped else ""))
    kept = {u.line for u in utterances}
    perturbed = [static_features([change_speed(w, s, fbank.sample_rate) for w, r in zip(waves, rows) if r[2] in kept],
                                 fbank) for s in speeds if s != 1.0]
    return Corpus(manifest, utterances, skipped), perturbed


def to_input_rate(frames: Sequence[int], stack: int, count: int) -> list[int]:
    """Labels of output frames (each ``stack`` input frames) -> a label per input frame, ``count`` of them."""
    return [k for k in frames for _ in range(stack)][:count]


def resample(labels: Sequence[int], n: int, step: float | None = None) -> list[int]:
    """``labels`` (one per frame) read at ``n`` new frames, each ``step`` old frames long
    (default: the same span, len(labels) / n): each new frame takes the label under its
    centre, the last old frame's past the end (frame stacking: step = the stack; speed
    perturbation: the stack times the speed)."""
    m = len(labels)
    step = m / n if step is None else step
    return [labels[min(m - 1, int((t + 0.5) * step))] for t in range(n)]


def write_alignments(out: Path, utterances: Sequence[Utterance], frames: Sequence[Sequence[int]],
                     units: Vocab) -> None:
    """An alignment file, atomically: a line per utterance, its audio's absolute path and a
    label per input frame (the blank as BLANK)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for u, labels in zip(utterances, frames):
            symbols = [BLANK_SYMBOL if k == 0 else units.symbols[k] for k in labels]
            f.write(f"{u.audio.resolve()}\t{' '.join(symbols)}\n")
    tmp.replace(out)


def read_alignments(path: Path, corpus: Corpus, units: Vocab, skip_bad: bool = False) -> Corpus:
    """``corpus`` with each utterance's dense frame labels (:func:`rnnkit.decode.frame_labels`)
    from the alignment file ``path`` (what ``rnnkit asr align`` writes; a relative audio path
    is read from the file's folder). An utterance without an alignment is an error naming its
    manifest line (skipped and counted with ``skip_bad``)."""
    path = Path(path)
    table: dict[Path, tuple[int, list[int]]] = {}
    for line, audio, text in read_fields(path, ("audio path", "frame labels")):
        key = (path.parent / audio).resolve()
        if key in table:
            raise DataError(path, line, f"a second alignment of {audio} (the first is on line {table[key][0]})")
        unknown = sorted({s for s in text.split() if s != BLANK_SYMBOL and s not in units})
        if unknown:
            raise DataError(path, line, f"labels the model lacks: {' '.join(map(repr, unknown))}")
        table[key] = (line, [0 if s == BLANK_SYMBOL else units[s] for s in text.split()])
    kept, skipped = [], list(corpus.skipped)
    for u in corpus.utterances:
        try:
            if u.audio.resolve() not in table:
                raise DataError(corpus.path, u.line, f"{u.audio} has no alignment in {path}")
            line, frames = table[u.audio.resolve()]
            if len(frames) != len(u.static):
                raise DataError(path, line, f"{len(frames)} labels for the {len(u.static)} frames of {u.audio}")
            dense = frame_labels(frames)
            if not dense:
                raise DataError(path, line, f"the alignment of {u.audio} is blanks only")
        except DataError as err:
            if not skip_bad:
                raise
            skipped.append(err)
            continue
        kept.append(dataclasses.replace(u, frames=dense))
    if not kept:
        raise DataError(corpus.path, None, f"no utterance has a usable alignment in {path}")
    return Corpus(corpus.path, kept, skipped)


def fit_normalizer(statics: Sequence[Tensor], deltas: int) -> Normalizer:
    """The training set's statistics of the features with their deltas."""
    batches = []
    for start in range(0, len(statics), FEATURE_BATCH):
        static, counts = pad_sequences(list(statics[start:start + FEATURE_BATCH]))
        batches.append((add_deltas(static, counts, deltas), counts))
    return Normalizer.fit(batches)


class SpeechEncoder:
    """Static features -> a Batch of normalised features (B, F, C) with unit targets (B, S)."""

    def __init__(self, normalizer: Normalizer, deltas: int, augment: SpecAugmentConfig | None = None,
                 seed: int = 0):
        self.normalizer, self.deltas, self.augment, self.seed = normalizer, deltas, augment, seed

    def inputs(self, statics: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        static, counts = pad_sequences(list(statics))  # (B, F, C0)
        return self.normalizer(add_deltas(static, counts, self.deltas), counts), counts

    def collate(self, items: list[tuple[Tensor, list[int]]], indices: list[int]) -> Batch:
        feats, counts = self.inputs([s for s, _ in items])
        if self.augment is not None:
            g = torch.Generator().manual_seed(int(hashlib.sha1(f"{self.seed} {indices}".encode()).hexdigest()[:12], 16))
            feats = spec_augment(feats, counts, self.augment, feats.shape[2] // (1 + self.deltas), g)
        targets, target_lengths = pad_sequences([torch.tensor(labels, dtype=torch.long) for _, labels in items])
        return Batch(feats, counts, targets, target_lengths, torch.tensor(indices))


class FramewiseEncoder(SpeechEncoder):
    """A :class:`SpeechEncoder` whose targets are a unit per output frame (B, T), -1 past each
    end: an item's labels are its frame labels (one per input frame), read at the model's
    frame rate (:func:`resample`; a speed-perturbed version is read at its own length)."""

    IGNORE = -1

    def __init__(self, normalizer: Normalizer, deltas: int, stack: int, augment: SpecAugmentConfig | None = None,
                 seed: int = 0):
        super().__init__(normalizer, deltas, augment, seed)
        self.stack = stack

    def collate(self, items: list[tuple[Tensor, list[int]]], indices: list[int]) -> Batch:
        batch = super().collate(items, indices)
        T = -(-batch.inputs.shape[1] // self.stack)
        targets = torch.full((len(items), T), self.IGNORE, dtype=torch.long)
        for b, (static, frames) in enumerate(items):
            n = -(-len(static) // self.stack)
            targets[b, :n] = torch.tensor(resample(frames, n, self.stack * len(frames) / len(static)))
        return dataclasses.replace(batch, targets=targets, target_lengths=None)


class SpeechLoader(SequenceLoader):
    """Bucketed by frames; with speed-perturbed copies, each epoch takes one version of every
    utterance (key ``i + N · v`` for version v), drawn from the seed and the epoch. An item's
    labels are its frame labels where the corpus has them (framewise training), else its units."""

    def __init__(self, corpus: Corpus, perturbed: list[list[Tensor]], encoder: SpeechEncoder,
                 config: BatchingConfig, stack: int = 1, rank: int = 0, world_size: int = 1):
        labels = [u.labels for u in corpus.utterances]
        plain = [u.static for u in corpus.utterances]
        versions = [plain] + [[s if -(-len(s) // stack) >= ctc_frames_needed(y) else p  # too short: the original
                               for s, p, y in zip(v, plain, labels)] for v in perturbed]
        self.n, self.versions, self.seed = len(labels), len(versions), config.seed
        targets = [u.labels if u.frames is None else u.frames for u in corpus.utterances]
        examples = [(s, targets[i % self.n]) for i, s in enumerate(x for v in versions for x in v)]
        super().__init__(examples, [len(u.static) for u in corpus.utterances], encoder.collate, config, rank,
                         world_size)

    def epoch(self, epoch: int) -> list[list[int]]:
        keys = super().epoch(epoch)
        if self.versions == 1:
            return keys
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        version = torch.randint(self.versions, (self.n,), generator=g).tolist()
        return [[i + self.n * version[i] for i in key] for key in keys]
