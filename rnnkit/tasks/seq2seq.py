"""Sequence to sequence from ``source<TAB>target`` files: grapheme-to-phoneme conversion,
translation, any transduction. The model is :class:`rnnkit.seq2seq.Seq2Seq`, trained with
teacher forcing (optionally scheduled sampling and label smoothing) on batches bucketed by
length under a token budget; decoded by :mod:`rnnkit.decode.seq2seq`.

:func:`training_job` is the pipeline: files and configs -> a training job whose model
directory holds both vocabularies (and sentencepiece models for subword units);
:func:`load_translator` reads it back as a :class:`Translator`, which decodes lines and
scores files. Scores: ``bleu`` and ``chrf`` (sacrebleu) on the detokenized outputs, and
``exact``, ``wer`` (outputs matching none of their source's references) and ``per``
(symbol edits to the nearest reference), the references of a source being every target
the file gives it (a word's pronunciations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from rnnkit.batch import BatchingConfig
from rnnkit.checkpoint import Checkpoint, load_weights, read_config
from rnnkit.data.split import hold_out
from rnnkit.data.tsv import Pair, read_pairs
from rnnkit.decode.seq2seq import Generated, SearchConfig, beam_search, greedy
from rnnkit.distributed import SINGLE, World
from rnnkit.loader import SequenceLoader
from rnnkit.losses import Reduction, seq2seq_cross_entropy
from rnnkit.metrics import sequence_metrics, translation_metrics
from rnnkit.runner import TrainingJob
from rnnkit.seq2seq import UNK_ID, Seq2Seq, Seq2SeqConfig
from rnnkit.settings import COUNT, FRACTION, NATURAL, check, setting
from rnnkit.tasks.seq2seq_data import Side, Tokenizer, Units, collate, encode_pairs
from rnnkit.train import StepOutput

SPM_FILES = {"source": "source.spm", "target": "target.spm"}
DEV_DECODED = 1000  # dev pairs decoded (greedy) at each epoch's end


@dataclass(frozen=True)
class Seq2SeqData:
    """The files a seq2seq model trains on, and how they become batches."""

    train: Path
    dev: Path | None = None  # scored at each epoch's end; None: held out of train (holdout)
    units: Units = Units.WORD  # both sides' symbols
    vocab_size: int = setting(8000, COUNT)  # subword: pieces per side
    min_freq: int = setting(1, COUNT)  # rarer symbols read as <unk>
    max_length: int = setting(250, COUNT)  # symbols per side; longer sides are cut (and named)
    batch_tokens: int = setting(3000, COUNT)  # symbols per batch (the longer side, padding included)
    holdout: float = setting(0.1, FRACTION)  # without dev: the share of distinct sources held out
    seed: int = setting(0, NATURAL)  # batch order, the held-out part
    label_smoothing: float = setting(0.1, FRACTION)  # ε of the training loss
    sampling: float = setting(0.0, FRACTION)  # scheduled sampling: the chance a step reads the model's own guess

    def __post_init__(self) -> None:
        check(self)
        if not isinstance(self.units, Units):
            object.__setattr__(self, "units", Units(self.units))


def objective_for(label_smoothing: float, sampling: float):
    def objective(model: nn.Module, batch, state) -> StepOutput:
        """Cross-entropy summed over the target symbols (the end included); the count is them."""
        logits, _ = model(batch.inputs, batch.lengths, batch.extra["inputs"], batch.target_lengths, sampling)
        loss = seq2seq_cross_entropy(logits, batch.targets, batch.target_lengths, Reduction.SUM, label_smoothing)
        return StepOutput(loss, int(batch.target_lengths.sum()), None)
    return objective


def group_references(pairs: Sequence[Pair]) -> tuple[list[str], list[list[str]]]:
    """The distinct sources in order of first appearance, and each one's targets."""
    refs: dict[str, list[str]] = {}
    for p in pairs:
        refs.setdefault(p.source, []).append(p.target)
    return list(refs), list(refs.values())


class Translator:
    """A trained encoder-decoder with its two sides."""

    def __init__(self, model: Seq2Seq, source: Side, target: Side, batch_size: int = 64):
        self.model, self.source, self.target, self.batch_size = model, source, target, batch_size

    def decode(self, lines: Sequence[str], search: SearchConfig | None = None) -> list[list[tuple[str, Generated]]]:
        """Each line's ``search.nbest`` outputs, best first (beam 1: greedy), with their texts.
        Lines are decoded in batches of similar length; symbols unseen in training are <unk>."""
        search = search or SearchConfig(beam=1)
        device = next(self.model.parameters()).device
        ids = [self.source.encode(line) or [UNK_ID] for line in lines]  # an empty line: one unknown symbol
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[list[tuple[str, Generated]]] = [[] for _ in lines]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            batch = collate([(ids[i], []) for i in chunk], chunk)
            source, lengths = batch.inputs.to(device), batch.lengths.to(device)
            if search.beam == 1:
                found = [[g] for g in greedy(self.model, source, lengths, search)]
            else:
                found = beam_search(self.model, source, lengths, search)
            for i, hyps in zip(chunk, found):
                out[i] = [(self.target.decode(g.tokens), g) for g in hyps]
        return out

    def evaluate(self, pairs: Sequence[Pair], search: SearchConfig | None = None) -> dict[str, float]:
        """Scores of the best outputs against the pairs' targets (see the module docstring)."""
        sources, references = group_references(pairs)
        outputs = [hyps[0][0] for hyps in self.decode(sources, search)]
        split = self.target.tokenizer.split
        metrics = sequence_metrics([[split(r) for r in refs] for refs in references], [split(o) for o in outputs])
        metrics.update(translation_metrics([refs[0] for refs in references], outputs))
        return metrics


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
    source: Side
    target: Side
    files: dict[str, bytes] = field(default_factory=dict)  # the sentencepiece models, if any


def fit_sides(data: Seq2SeqData, pairs: Sequence[Pair]) -> Sides:
    source = Side.fit(data.units, [p.source for p in pairs], data.vocab_size, data.min_freq)
    target = Side.fit(data.units, [p.target for p in pairs], data.vocab_size, data.min_freq)
    files = {SPM_FILES[name]: side.tokenizer.model for name, side in (("source", source), ("target", target))
             if side.tokenizer.model is not None}
    return Sides(source, target, files)


def resumed_sides(resumed: Checkpoint) -> Sides:
    units = Units(resumed.config["units"])
    sides = {}
    for name in ("source", "target"):
        path = resumed.path / SPM_FILES[name]
        sides[name] = Side(Tokenizer(units, path.read_bytes() if units is Units.SUBWORD else None),
                           resumed.vocabs[name])
    files = {SPM_FILES[n]: s.tokenizer.model for n, s in sides.items() if s.tokenizer.model is not None}
    return Sides(sides["source"], sides["target"], files)


def training_job(data: Seq2SeqData, config: Seq2SeqConfig, world: World = SINGLE,
                 resumed: Checkpoint | None = None) -> TrainingJob:
    """The encoder-decoder's job: both sides from the training file (or the ``resumed``
    checkpoint), this rank's loader, dev loss and greedy scores each epoch. ``config``'s
    vocabulary sizes are set here."""
    pairs = read_pairs(data.train)
    notes = []
    if data.dev is not None:
        train, dev = pairs, read_pairs(data.dev)
    else:
        train, dev, note = _held_out(pairs, data.holdout, data.seed)
        notes += [note] if note else []
    sides = resumed_sides(resumed) if resumed else fit_sides(data, train)
    examples, note = encode_pairs(train, sides.source, sides.target, data.max_length, data.train)
    notes += [note] if note else []
    config = Seq2SeqConfig(**{**config.to_dict(), "source_vocab": len(sides.source.vocab),
                              "target_vocab": len(sides.target.vocab)})
    model = Seq2Seq(config)
    lengths = [max(len(s), len(t) + 1) for s, t in examples]
    loader = SequenceLoader(examples, lengths, collate, BatchingConfig(max_tokens=data.batch_tokens, batch_size=None,
                                                                       seed=data.seed), world.rank, world.size)
    objective = objective_for(data.label_smoothing, data.sampling)
    dev_examples, _ = encode_pairs(dev, sides.source, sides.target, data.max_length, data.dev or data.train)

    def evaluate(m: Seq2Seq) -> dict[str, float]:
        total = count = 0.0
        with torch.no_grad():
            for start in range(0, len(dev_examples), 64):
                chunk = dev_examples[start:start + 64]
                batch = collate(chunk, list(range(len(chunk)))).to(next(m.parameters()).device)
                logits, _ = m(batch.inputs, batch.lengths, batch.extra["inputs"], batch.target_lengths)
                total += float(seq2seq_cross_entropy(logits, batch.targets, batch.target_lengths, Reduction.SUM))
                count += int(batch.target_lengths.sum())
        scores = Translator(m, sides.source, sides.target).evaluate(dev[:DEV_DECODED])
        return {"loss": total / max(count, 1), **{k: scores[k] for k in ("bleu", "exact", "per")}}

    notes.append(f"{len(train):,} training pairs; {len(sides.source.vocab):,} source and {len(sides.target.vocab):,} "
                 f"target symbols ({data.units.value}); {sum(p.numel() for p in model.parameters()):,} parameters")
    header = {"task": "seq2seq", "units": data.units.value, "model": config.to_dict()}
    return TrainingJob(model, objective, loader, len(loader.sampler), header,
                       {"source": sides.source.vocab, "target": sides.target.vocab},
                       evaluate=evaluate if dev else None, metric="loss" if dev else None, minimize=True,
                       notes=notes, files=sides.files)


def load_translator(directory: Path) -> tuple[Translator, Checkpoint]:
    """A trained seq2seq model directory (or its run's --out) as a :class:`Translator`."""
    ck = read_config(directory)
    if ck.config.get("task") != "seq2seq":
        raise ValueError(f"{ck.path} is not a seq2seq model (task {ck.config.get('task')!r})")
    model = Seq2Seq(Seq2SeqConfig(**ck.config["model"]))
    load_weights(ck.path, model)
    sides = resumed_sides(ck)
    return Translator(model, sides.source, sides.target), ck
