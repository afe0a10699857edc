"""Sequence to sequence from ``source<TAB>target`` files: grapheme-to-phoneme conversion,
translation, any transduction, and one-to-many generation from images (the source field
an image file, :mod:`rnnkit.tasks.captions`). The model is :class:`rnnkit.seq2seq.Seq2Seq`,
trained with teacher forcing (optionally scheduled sampling and label smoothing) on
batches bucketed by length under a token budget, decoded by :mod:`rnnkit.decode.seq2seq`.

:func:`training_job` is the pipeline: files and configs -> a training job whose model
directory holds both vocabularies (and sentencepiece models for subword units);
:func:`load_translator` reads it back (or a baseline's, :mod:`rnnkit.tasks.seq2seq_baselines`)
as something that decodes lines, and :func:`evaluate` scores it on a file: ``bleu`` and
``chrf`` (sacrebleu) on the detokenized outputs, and ``exact``, ``wer`` (outputs matching
none of their source's references) and ``per`` (symbol edits to the nearest reference),
the references of a source being every target the file gives it (a word's pronunciations).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from rnnkit.batch import Batch, BatchingConfig, pad_sequences
from rnnkit.checkpoint import Checkpoint, load_weights, read_config
from rnnkit.data.split import hold_out
from rnnkit.data.tsv import Pair, read_pairs
from rnnkit.decode.seq2seq import Generated, SamplingConfig, SearchConfig, beam_search, greedy, sample
from rnnkit.distributed import SINGLE, World
from rnnkit.loader import SequenceLoader
from rnnkit.losses import Reduction, seq2seq_cross_entropy
from rnnkit.metrics import sequence_metrics, translation_metrics
from rnnkit.runner import TrainingJob
from rnnkit.seq2seq import UNK_ID, Seq2Seq, Seq2SeqConfig
from rnnkit.settings import COUNT, FRACTION, NATURAL, SettingError, check, setting
from rnnkit.tasks.captions import ImageSource, PositionClassifier, image_encoder
from rnnkit.tasks.seq2seq_data import Side, Tokenizer, Units, collate, encode_pairs
from rnnkit.tasks.seq2seq_sizes import default_pieces, on_meta, sized
from rnnkit.train import StepOutput

SPM_FILES = {"source": "source.spm", "target": "target.spm"}
DEV_DECODED = 1000  # dev sources decoded (greedy) at each epoch's end
PATIENCE_UPDATES = 1000  # the default patience: a decoded dev error jumps more from epoch to epoch than a loss
SUMMARY = 256  # an image encoder's vector


class SourceKind(enum.Enum):
    TEXT = "text"  # symbols, as the units say
    IMAGE = "image"  # an image file's path (one-to-many)


class ModelKind(enum.Enum):
    SEQ2SEQ = "seq2seq"  # the encoder-decoder
    PER_POSITION = "per-position"  # images: the per-position classifier baseline


@dataclass(frozen=True)
class Seq2SeqData:
    """The files a seq2seq model trains on, and how they become batches."""

    train: Path
    dev: Path | None = None  # scored at each epoch's end; None: held out of train (holdout)
    units: Units = Units.WORD  # both sides' symbols (the target's only, for images)
    source: SourceKind = SourceKind.TEXT
    vocab_size: int = setting(0, NATURAL)  # subword: pieces per side; 0: by the side's size (seq2seq_sizes)
    min_freq: int = setting(1, COUNT)  # rarer symbols read as <unk>
    max_length: int = setting(250, COUNT)  # symbols per side; longer sides are cut (and named)
    batch_tokens: int = setting(3000, COUNT)  # symbols per batch (the longer side, padding included)
    batch_images: int = setting(64, COUNT)  # image sources: images per batch
    holdout: float = setting(0.1, FRACTION)  # without dev: the share of distinct sources held out
    seed: int = setting(0, NATURAL)  # batch order, the held-out part
    label_smoothing: float = setting(0.1, FRACTION)  # ε of the training loss
    sampling: float = setting(0.0, FRACTION)  # scheduled sampling: the chance a step reads the model's own guess

    def __post_init__(self) -> None:
        check(self)
        for name, kind in (("units", Units), ("source", SourceKind)):
            if not isinstance(getattr(self, name), kind):
                object.__setattr__(self, name, kind(getattr(self, name)))


class Decoder(Protocol):
    """Anything that writes outputs for source lines: a trained model or a baseline."""

    target: Side

    def decode(self, lines: Sequence[str], search: SearchConfig | None = None,
               manifest: Path | None = None) -> list[list[tuple[str, Generated]]]: ...


def group_references(pairs: Sequence[Pair]) -> tuple[list[str], list[list[str]]]:
    """The distinct sources in order of first appearance, and each one's targets."""
    refs: dict[str, list[str]] = {}
    for p in pairs:
        refs.setdefault(p.source, []).append(p.target)
    return list(refs), list(refs.values())


def evaluate(decoder: Decoder, pairs: Sequence[Pair], search: SearchConfig | None = None,
             manifest: Path | None = None) -> dict[str, float]:
    """Scores of the best outputs against the pairs' targets (see the module docstring)."""
    sources, references = group_references(pairs)
    outputs = [hyps[0][0] for hyps in decoder.decode(sources, search, manifest)]
    split = decoder.target.tokenizer.split
    metrics = sequence_metrics([[split(r) for r in refs] for refs in references], [split(o) for o in outputs])
    metrics.update(translation_metrics([refs[0] for refs in references], outputs))
    return metrics


def bleu_by_length(decoder: Decoder, pairs: Sequence[Pair], search: SearchConfig | None = None,
                   width: int = 10) -> list[tuple[float, float]]:
    """(mean source length in words, corpus BLEU) of the pairs' sources grouped by length in
    words, ``width`` words to a group (the first reference of each source)."""
    sources, references = group_references(pairs)
    outputs = [hyps[0][0] for hyps in decoder.decode(sources, search)]
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(sources):
        groups.setdefault(len(s.split()) // width, []).append(i)
    points = []
    for _, members in sorted(groups.items()):
        bleu = translation_metrics([references[i][0] for i in members], [outputs[i] for i in members])["bleu"]
        points.append((sum(len(sources[i].split()) for i in members) / len(members), bleu))
    return points


class TextSource:
    """Source lines as symbol ids."""

    def __init__(self, side: Side):
        self.side = side

    def items(self, lines: Sequence[str], manifest: Path | None = None) -> list[list[int]]:
        return [self.side.encode(line) or [UNK_ID] for line in lines]  # an empty line: one unknown symbol

    def batch(self, items: list[list[int]]) -> tuple[Tensor, Tensor]:
        return pad_sequences([torch.tensor(i, dtype=torch.long) for i in items])


class PictureSource:
    """Source lines as image paths (relative to the manifest's folder)."""

    def __init__(self, images: ImageSource):
        self.images = images

    def items(self, lines: Sequence[str], manifest: Path | None = None) -> list[Tensor]:
        shape = self.images.shape
        return [self.images.read(Path(line), manifest, n) if line.strip() else torch.zeros(shape)  # blank: nothing
                for n, line in enumerate(lines, 1)]

    def batch(self, items: list[Tensor]) -> tuple[Tensor, None]:
        return torch.stack(items), None


class Translator:
    """A trained model (an encoder-decoder, or the per-position baseline) with its sides."""

    def __init__(self, model: nn.Module, source: TextSource | PictureSource, target: Side, batch_size: int = 64,
                 longest: int = 0):
        self.model, self.source, self.target, self.batch_size = model, source, target, batch_size
        self.longest = longest  # the longest training target, the end included (image sources' length limit)

    def decode(self, lines: Sequence[str], search: SearchConfig | None = None, manifest: Path | None = None,
               sampling: SamplingConfig | None = None) -> list[list[tuple[str, Generated]]]:
        """Each line's ``search.nbest`` outputs, best first (beam 1: greedy), with their texts;
        with ``sampling``, ``search.nbest`` draws instead. Lines are decoded in batches of
        similar length; symbols unseen in training are <unk>."""
        search = search or SearchConfig(beam=1)
        device = next(self.model.parameters()).device
        generator = None if sampling is None else torch.Generator(device=device).manual_seed(sampling.seed)
        if isinstance(self.source, PictureSource) and self.longest:  # no source length: twice the longest target
            search = replace(search, max_extra=max(search.max_extra, 2 * self.longest))
        items = self.source.items(lines, manifest)
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        out: list[list[tuple[str, Generated]]] = [[] for _ in lines]
        self.model.eval()
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            source, lengths = self.source.batch([items[i] for i in chunk])
            source, lengths = source.to(device), None if lengths is None else lengths.to(device)
            if isinstance(self.model, PositionClassifier):
                found = [[Generated(ids, 0.0, 0.0, None)] for ids in self.model.decode(source)]
            elif sampling is not None:
                draws = [sample(self.model, source, lengths, search, temperature=sampling.temperature,
                                top_k=sampling.top_k, top_p=sampling.top_p, generator=generator)
                         for _ in range(search.nbest)]
                found = [list(row) for row in zip(*draws)]
            elif search.beam == 1:
                found = [[g] for g in greedy(self.model, source, lengths, search)]
            else:
                found = beam_search(self.model, source, lengths, search)
            for i, hyps in zip(chunk, found):
                out[i] = [(self.target.decode(g.tokens), g) for g in hyps]
        return out


def _held_out(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair], str | None]:
    """Hold out ``fraction`` of the distinct sources, with every pair of each."""
    sources, _ = group_references(pairs)
    split = hold_out(len(sources), fraction, seed)
    if not split.dev:
        return pairs, [], None
    held = {sources[i] for i in split.dev}
    return ([p for p in pairs if p.source not in held], [p for p in pairs if p.source in held],
            split.describe("sources", "the training file"))


@dataclass
class Sides:
    source: Side | None  # None: image sources
    target: Side
    files: dict[str, bytes] = field(default_factory=dict)  # the sentencepiece models, if any


def fit_sides(data: Seq2SeqData, pairs: Sequence[Pair]) -> Sides:
    def side(texts: list[str]) -> Side:
        return Side.fit(data.units, texts, data.vocab_size or default_pieces(texts), data.min_freq)
    source = None if data.source is SourceKind.IMAGE else side([p.source for p in pairs])
    target = side([p.target for p in pairs])
    files = {SPM_FILES[name]: side.tokenizer.model for name, side in (("source", source), ("target", target))
             if side is not None and side.tokenizer.model is not None}
    return Sides(source, target, files)


def resumed_sides(resumed: Checkpoint) -> Sides:
    units = Units(resumed.config["units"])
    sides: dict[str, Side | None] = {"source": None}
    for name in ("source", "target") if "source" in resumed.vocabs else ("target",):
        path = resumed.path / SPM_FILES[name]
        sides[name] = Side(Tokenizer(units, path.read_bytes() if units is Units.SUBWORD else None),
                           resumed.vocabs[name])
    files = {SPM_FILES[n]: s.tokenizer.model for n, s in sides.items() if s and s.tokenizer.model is not None}
    return Sides(sides["source"], sides["target"], files)


def seq2seq_objective(label_smoothing: float, sampling: float):
    def objective(model: nn.Module, batch: Batch, state) -> StepOutput:
        """Cross-entropy summed over the target symbols (the end included); the count is them."""
        logits, _ = model(batch.inputs, batch.lengths, batch.extra["inputs"], batch.target_lengths, sampling)
        loss = seq2seq_cross_entropy(logits, batch.targets, batch.target_lengths, Reduction.SUM, label_smoothing)
        return StepOutput(loss, int(batch.target_lengths.sum()), None)
    return objective


def position_objective(model: nn.Module, batch: Batch, state) -> StepOutput:
    """The per-position baseline's cross-entropy summed over its positions; the count is them."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    logits = model(batch.inputs)  # (B, P, V)
    targets = inner.targets(batch.targets, batch.target_lengths)  # (B, P)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
    return StepOutput(loss, targets.numel(), None)


def _image_collate(examples: list[tuple[Tensor, list[int]]], indices: list[int]) -> Batch:
    batch = collate([([0], t) for _, t in examples], indices)  # the targets' tensors
    images = torch.stack([image for image, _ in examples])  # (B, H, W)
    return Batch(images, torch.ones(len(examples), dtype=torch.long), batch.targets, batch.target_lengths,
                 batch.indices, batch.extra, batch.extra_rows)


def build_model(config: Seq2SeqConfig, kind: ModelKind, shape: tuple[int, int] | None,
                positions: int = 0) -> nn.Module:
    """The model a model directory's config describes."""
    if kind is ModelKind.PER_POSITION:
        return PositionClassifier(shape, SUMMARY, positions, config.target_vocab)
    return Seq2Seq(config, image_encoder(shape, SUMMARY) if shape is not None else None)


def training_job(data: Seq2SeqData, config: Seq2SeqConfig, world: World = SINGLE, resumed: Checkpoint | None = None,
                 kind: ModelKind = ModelKind.SEQ2SEQ) -> TrainingJob:
    """The model's job: both sides from the training file (or the ``resumed`` checkpoint),
    this rank's loader, dev loss and greedy scores each epoch. ``config``'s vocabulary sizes
    are set here."""
    images = data.source is SourceKind.IMAGE
    if kind is ModelKind.PER_POSITION and not images:
        raise SettingError("model", "per-position is the image baseline: it needs --source image")
    if images and config.attention is not None:
        raise SettingError("attention", "an image is encoded into one vector: there is nothing to attend to")
    pairs = read_pairs(data.train)
    notes = []
    if data.dev is not None:
        train, dev = pairs, read_pairs(data.dev)
    else:
        train, dev, note = _held_out(pairs, data.holdout, data.seed)
        notes += [note] if note else []
    sides = resumed_sides(resumed) if resumed else fit_sides(data, train)
    if images:
        reader = ImageSource()
        pictures = reader.pairs(train, data.train)
        targets = [sides.target.encode(p.target)[:data.max_length] for p in train]
        examples, lengths, source = list(zip(pictures, targets)), [len(t) + 1 for t in targets], PictureSource(reader)
    else:
        examples, note = encode_pairs(train, sides.source, sides.target, data.max_length, data.train)
        notes += [note] if note else []
        lengths, source = [max(len(s), len(t) + 1) for s, t in examples], TextSource(sides.source)
    config = Seq2SeqConfig(**{**config.to_dict(), "source_vocab": 0 if images else len(sides.source.vocab),
                              "target_vocab": len(sides.target.vocab)})
    shape = reader.shape if images else None
    positions = resumed.config.get("positions", 0) if resumed else max(lengths)
    if kind is ModelKind.SEQ2SEQ and not (config.embed_size and config.hidden_size):
        config = sized(config, sum(len(t) + 1 for _, t in examples),
                       on_meta(lambda c: build_model(c, kind, shape, positions)))
        notes.append(f"widths for the data's size: embeddings {config.embed_size}, hidden {config.hidden_size}")
    model = build_model(config, kind, shape, positions)
    batching = BatchingConfig(max_tokens=None, batch_size=data.batch_images, seed=data.seed) if images else \
        BatchingConfig(max_tokens=data.batch_tokens, batch_size=None, seed=data.seed)
    loader = SequenceLoader(examples, lengths, _image_collate if images else collate, batching, world.rank,
                            world.size)
    objective = position_objective if kind is ModelKind.PER_POSITION else \
        seq2seq_objective(data.label_smoothing, data.sampling)

    def dev_scores(m: nn.Module) -> dict[str, float]:
        scores = evaluate(Translator(m, source, sides.target, longest=positions), dev[:DEV_DECODED],
                          manifest=data.dev or data.train)
        return {"error": 1 - scores["exact"] if images else scores["per"], "bleu": scores["bleu"],
                "exact": scores["exact"], "per": scores["per"]}

    what = "image" if images else f"{len(sides.source.vocab):,} source"
    notes.append(f"{len(train):,} training pairs; {what} and {len(sides.target.vocab):,} target symbols "
                 f"({data.units.value}); {sum(p.numel() for p in model.parameters()):,} parameters")
    header = {"task": "seq2seq", "kind": kind.value, "units": data.units.value, "source": data.source.value,
              "model": config.to_dict(), "shape": list(shape) if shape else None, "positions": positions}
    vocabs = {"target": sides.target.vocab} if images else {"source": sides.source.vocab, "target": sides.target.vocab}
    return TrainingJob(model, objective, loader, len(loader.sampler), header, vocabs,
                       evaluate=dev_scores if dev else None, metric="error" if dev else None, minimize=True,
                       patience_updates=PATIENCE_UPDATES, notes=notes, files=sides.files)


def load_translator(directory: Path) -> tuple[Decoder, Checkpoint]:
    """A seq2seq model directory (or its run's --out): the trained model or the baseline it holds."""
    ck = read_config(directory)
    if ck.config.get("task") != "seq2seq":
        raise ValueError(f"{ck.path} is not a seq2seq model (task {ck.config.get('task')!r})")
    if ck.config.get("baseline"):
        from rnnkit.tasks.seq2seq_baselines import load_baseline
        return load_baseline(ck), ck
    shape = tuple(ck.config["shape"]) if ck.config.get("shape") else None
    kind = ModelKind(ck.config.get("kind", ModelKind.SEQ2SEQ.value))
    model = build_model(Seq2SeqConfig(**ck.config["model"]), kind, shape, ck.config.get("positions", 0))
    load_weights(ck.path, model)
    sides = resumed_sides(ck)
    source = PictureSource(ImageSource(shape)) if shape else TextSource(sides.source)
    return Translator(model, source, sides.target, longest=ck.config.get("positions", 0)), ck
