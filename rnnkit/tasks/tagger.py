"""Sequence labelling (POS, NER, slot filling): a BiLSTM tagger over word
embeddings and a character-level BiLSTM representation of each word, with a
softmax or a linear-chain CRF output layer (Huang et al. 2015; Lample et al.
2016), and the count-based baselines it is measured against (a supervised HMM, a
CRF over sparse features).

:func:`training_job` is the pipeline: tagged files and configs -> a training job;
:func:`train_baseline` fits a baseline; :func:`load_tagger` reads any trained one back.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.batch import Batch, BatchingConfig, pad_sequences
from rnnkit.checkpoint import Checkpoint, load_weights, read_config, save_model_dir
from rnnkit.crf import CRF, bio_constraints
from rnnkit.data.errors import DataError
from rnnkit.data.split import hold_out
from rnnkit.data.tagged import TaggedSentence, read_conll, read_conllu, read_slash
from rnnkit.distributed import SINGLE, World
from rnnkit.feature_crf import FeatureCRF
from rnnkit.hmm import HMMTagger
from rnnkit.layers import LSTM
from rnnkit.loader import SequenceLoader
from rnnkit.losses import Reduction, masked_cross_entropy
from rnnkit.metrics import is_span_scheme, tagging_metrics
from rnnkit.runner import TrainingJob
from rnnkit.settings import COUNT, FRACTION, NATURAL, check, setting
from rnnkit.train import StepOutput
from rnnkit.vocab import PAD, UNK, Vocab


@dataclass(frozen=True)
class TaggerConfig:
    num_words: int = setting(rule=NATURAL)  # word vocabulary size (with <pad>, <unk>); 0 until the data sets it
    num_chars: int = setting(rule=NATURAL)  # character vocabulary size (with <pad>, <unk>)
    num_tags: int = setting(rule=NATURAL)  # K
    word_dim: int = setting(100, COUNT)  # word embedding width
    char_dim: int = setting(30, NATURAL)  # character embedding width; 0: no character features
    char_hidden: int = setting(50, COUNT)  # character LSTM units per direction
    hidden: int = setting(100, COUNT)  # word BiLSTM units per direction
    layers: int = setting(1, COUNT)  # stacked word BiLSTM layers
    dropout: float = setting(0.5, FRACTION)  # on the word representations and the BiLSTM outputs
    crf: bool = True  # a linear-chain CRF output layer (else a per-token softmax)
    bio_constraints: bool = False  # forbid invalid BIO transitions in the CRF
    lowercase: bool = True  # look words up lower-cased (the characters keep the case)
    sparse_embeddings: bool = False  # sparse gradients for the word table (only used rows are updated)

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        return asdict(self)


class Tagger(nn.Module):
    """(words (B, T), lengths (B,), chars of the batch's word types) -> emissions (B, T, K).

    The character BiLSTM runs once per distinct word of the batch: ``chars``
    (U, C) with ``char_lengths`` (U,), and ``types`` (B, T) gives each token's
    row in it. Its final forward and backward states, concatenated, are
    appended to the word embedding.
    """

    def __init__(self, config: TaggerConfig, tags: list[str]):
        super().__init__()
        c = self.config = config
        self.embed = nn.Embedding(c.num_words, c.word_dim, padding_idx=0, sparse=c.sparse_embeddings)  # (V, E)
        width = c.word_dim
        if c.char_dim:
            self.char_embed = nn.Embedding(c.num_chars, c.char_dim, padding_idx=0)
            self.char_rnn = LSTM(c.char_dim, c.char_hidden, bidirectional=True)
            width += 2 * c.char_hidden
        self.rnn = LSTM(width, c.hidden, c.layers, bidirectional=True, dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(2 * c.hidden, c.num_tags)
        constraints = bio_constraints(tags) if c.bio_constraints and is_span_scheme(set(tags)) else ()
        self.crf = CRF(c.num_tags, *constraints) if c.crf else None

    def emissions(self, batch: Batch) -> Tensor:
        x = self.embed(batch.inputs)  # (B, T, E)
        if self.config.char_dim:
            extra = batch.extra
            chars = self.char_embed(extra["chars"])  # (U, C, Ec)
            _, (h, _) = self.char_rnn(chars, extra["char_lengths"])  # h: (2, U, Hc)
            words = torch.cat([h[0], h[1]], dim=1)  # (U, 2Hc)
            x = torch.cat([x, words[extra["types"]]], dim=2)  # (B, T, E + 2Hc)
        h, _ = self.rnn(self.drop(x), batch.lengths)  # (B, T, 2H)
        return self.out(self.drop(h))  # (B, T, K)

    def forward(self, batch: Batch) -> Tensor:
        """The training loss, summed over tokens (softmax) or sequences (CRF negative log-likelihood)."""
        e = self.emissions(batch)
        if self.crf is None:
            return masked_cross_entropy(e, batch.targets, batch.lengths, reduction=Reduction.SUM)
        return self.crf.nll(e, batch.targets.clamp(min=0), batch.lengths, Reduction.SUM)

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[list[int]]:
        e = self.emissions(batch)
        if self.crf is not None:
            return self.crf.decode(e, batch.lengths)
        best = e.argmax(-1)
        return [best[b, :n].tolist() for b, n in enumerate(batch.lengths.tolist())]


@dataclass
class TaggerVocabs:
    words: Vocab
    chars: Vocab
    tags: Vocab  # no specials: tag i is class i

    @classmethod
    def build(cls, sentences: list[list[str]], tags: list[list[str]], lowercase: bool,
              min_freq: int = 2) -> TaggerVocabs:
        """Words seen fewer than ``min_freq`` times are <unk> (so <unk> is learned)."""
        words = Vocab.build([[w.lower() if lowercase else w for w in s] for s in sentences],
                            specials=(PAD, UNK), min_freq=min_freq)
        chars = Vocab.build(["".join(s) for s in sentences], specials=(PAD, UNK))
        return cls(words, chars, Vocab(sorted({t for ts in tags for t in ts})))


class TaggerEncoder:
    """Turns sentences (and tags) into Batches for a Tagger."""

    def __init__(self, vocabs: TaggerVocabs, lowercase: bool, max_word_length: int = 30):
        self.vocabs, self.lowercase, self.max_word_length = vocabs, lowercase, max_word_length

    def example(self, words: list[str], tags: list[str] | None) -> tuple[list[str], Tensor, Tensor | None]:
        ids = torch.tensor(self.vocabs.words.encode(w.lower() if self.lowercase else w for w in words))
        tag_ids = None
        if tags is not None:
            unknown = [t for t in tags if t not in self.vocabs.tags]
            if unknown:
                raise ValueError(f"tag {unknown[0]!r} was not seen in training (known: {len(self.vocabs.tags)})")
            tag_ids = torch.tensor(self.vocabs.tags.encode(tags))
        return words, ids, tag_ids

    def collate(self, examples: list[tuple[list[str], Tensor, Tensor | None]], indices: list[int]) -> Batch:
        words, lengths = pad_sequences([ids for _, ids, _ in examples])  # (B, T)
        targets = None
        if examples[0][2] is not None:
            targets, _ = pad_sequences([t for _, _, t in examples], value=-100)  # (B, T)
        types: dict[str, int] = {}
        index = torch.zeros_like(words)  # (B, T)
        for b, (tokens, _, _) in enumerate(examples):
            for t, w in enumerate(tokens):
                index[b, t] = types.setdefault(w[:self.max_word_length], len(types))
        chars, char_lengths = pad_sequences([torch.tensor(self.vocabs.chars.encode(w)) for w in types])  # (U, C)
        extra = {"chars": chars, "char_lengths": char_lengths, "types": index}
        return Batch(words, lengths, targets, indices=torch.tensor(indices), extra=extra, extra_rows=("types",))


class NeuralTagger:
    """A trained Tagger with its vocabularies: tags lists of words, in length-sorted batches."""

    def __init__(self, model: Tagger, vocabs: TaggerVocabs, config: TaggerConfig):
        self.model, self.vocabs, self.config = model, vocabs, config
        self.encoder = TaggerEncoder(vocabs, config.lowercase)

    def tag(self, sentences: list[list[str]], batch_size: int = 64) -> list[list[str]]:
        self.model.eval()
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out: list[list[str]] = [[] for _ in sentences]
        for start in range(0, len(order), batch_size):
            idx = [i for i in order[start:start + batch_size] if sentences[i]]
            if not idx:
                continue
            batch = self.encoder.collate([self.encoder.example(sentences[i], None) for i in idx], idx)
            for i, tags in zip(idx, self.model.predict(batch)):
                out[i] = self.vocabs.tags.decode(tags)
        return out


def objective(model: nn.Module, batch: Batch, state) -> StepOutput:
    """The engine's view of a Tagger (called through DistributedDataParallel when there is one)."""
    return StepOutput(model(batch), batch.tokens, None)


# ---------------------------------------------------------------- the pipeline

class Format(enum.Enum):
    CONLLU = "conllu"  # CoNLL-U, the tag from a named or numbered column (default UPOS)
    CONLL = "conll"  # whitespace columns, the tag in the last (or a numbered) column
    SLASH = "slash"  # word/TAG tokens, one sentence per line


class Baseline(enum.Enum):
    HMM = "hmm"  # supervised first-order HMM (rnnkit.hmm)
    CRF = "crf"  # linear-chain CRF over sparse features, trained by CRFsuite (rnnkit.feature_crf)


EXTENSIONS = {".conllu": Format.CONLLU, ".conll": Format.CONLL}


def data_format(path: Path | None, given: Format | None) -> Format:
    """The format given, else the file's extension (.conllu, .conll), else word/TAG."""
    if given is not None:
        return given
    return EXTENSIONS.get(path.suffix.lower() if path else "", Format.SLASH)


def read_tagged(path: Path, fmt: Format, column: str | None) -> list[TaggedSentence]:
    if fmt is Format.CONLLU:
        return read_conllu(path, int(column) if column and column.isdigit() else (column or "upos"))
    if fmt is Format.CONLL:
        return read_conll(path, tag_column=int(column) if column else -1)
    return read_slash(path)


@dataclass(frozen=True)
class TagData:
    """The tagged files a tagger trains on."""

    train: Path
    dev: Path | None = None  # scored at each epoch's end; None: held out of train (holdout)
    format: Format | None = None  # None: from each file's extension
    column: str | None = None  # CoNLL-U column name or index, or the CoNLL tag column
    batch_size: int = setting(32, COUNT)  # sentences per batch and process
    min_freq: int = setting(2, COUNT)  # rarer words are <unk> (the characters still see them)
    holdout: float = setting(0.1, FRACTION)  # without dev: the fraction of train's sentences held out
    seed: int = setting(0, NATURAL)  # batch order and the held-out part

    def __post_init__(self) -> None:
        check(self)


def read_data(data: TagData) -> tuple[list[TaggedSentence], list[TaggedSentence] | None, str | None]:
    """(train, dev, a note): the dev file's sentences, or some held out of train."""
    train = read_tagged(data.train, data_format(data.train, data.format), data.column)
    if data.dev is not None:
        return train, read_tagged(data.dev, data_format(data.dev, data.format), data.column), None
    split = hold_out(len(train), data.holdout, data.seed)
    if not split.dev:
        return train, None, None
    return [train[i] for i in split.train], [train[i] for i in split.dev], \
        split.describe("sentences", str(data.train))


def _header(data: TagData, model: str) -> dict:
    fmt = data_format(data.train, data.format)
    return {"task": "tag", "model": model, "format": fmt.value, "column": data.column}


def training_job(data: TagData, config: TaggerConfig, world: World = SINGLE,
                 resumed: Checkpoint | None = None) -> TrainingJob:
    """The neural tagger's job: vocabularies from train (or the ``resumed`` checkpoint's), this
    rank's loader, dev accuracy (or span F1 for BIO/IOBES tags) each epoch. ``config``'s
    vocabulary sizes are set here."""
    train, dev, note = read_data(data)
    if resumed:
        known = resumed.vocabs["known"]
        vocabs = TaggerVocabs(resumed.vocabs["words"], resumed.vocabs["chars"], resumed.vocabs["tags"])
    else:
        known = Vocab(sorted({w for s in train for w in s.tokens}))
        vocabs = TaggerVocabs.build([s.tokens for s in train], [s.tags for s in train], lowercase=config.lowercase,
                                    min_freq=data.min_freq)
    config = TaggerConfig(**{**config.to_dict(), "num_words": len(vocabs.words), "num_chars": len(vocabs.chars),
                             "num_tags": len(vocabs.tags)})
    model = Tagger(config, vocabs.tags.symbols)
    encoder = TaggerEncoder(vocabs, config.lowercase)
    examples = []
    for s in train:
        try:
            examples.append(encoder.example(s.tokens, s.tags))
        except ValueError as err:  # a tag the resumed checkpoint's vocabulary lacks
            raise DataError(data.train, s.line, str(err)) from None
    loader = SequenceLoader(examples, [len(s.tokens) for s in train], encoder.collate,
                            BatchingConfig(batch_size=data.batch_size, seed=data.seed), world.rank, world.size)
    metric = "f1" if is_span_scheme(set(vocabs.tags.symbols)) else "accuracy"

    def evaluate(m: Tagger) -> dict[str, float]:
        predicted = NeuralTagger(m, vocabs, config).tag([s.tokens for s in dev])
        return tagging_metrics([s.tags for s in dev], predicted, [s.tokens for s in dev], set(known.symbols))

    notes = ([note] if note else []) + [f"{len(train):,} training sentences, {len(vocabs.tags)} tags; "
                                        f"{sum(p.numel() for p in model.parameters()):,} parameters"]
    return TrainingJob(model, objective, loader, len(loader.sampler),
                       {**_header(data, "bilstm-crf" if config.crf else "bilstm"), "tagger": config.to_dict()},
                       {"words": vocabs.words, "chars": vocabs.chars, "tags": vocabs.tags, "known": known},
                       evaluate=evaluate if dev else None, metric=metric if dev else None, minimize=False, notes=notes)


def train_baseline(data: TagData, baseline: Baseline, out: Path) -> dict[str, float] | None:
    """Fit a count-based baseline on all of train (it needs no dev data to stop), save it in
    ``out``; its metrics on the dev file, if one is given."""
    train, dev, _ = read_data(replace(data, holdout=0.0))
    known = Vocab(sorted({w for s in train for w in s.tokens}))
    out.mkdir(parents=True, exist_ok=True)
    words, tags = [s.tokens for s in train], [s.tags for s in train]
    if baseline is Baseline.HMM:
        tagger = HMMTagger().fit(words, tags)
        tagger.save(out / "hmm.json")
    else:
        tagger = FeatureCRF(out / "crf.model").fit(words, tags)
    save_model_dir(out, nn.Module(), _header(data, baseline.value), {"known": known})
    if not dev:
        return None
    return tagging_metrics([s.tags for s in dev], tag_all(tagger, [s.tokens for s in dev]),
                           [s.tokens for s in dev], set(known.symbols))


def load_tagger(directory: Path) -> tuple[NeuralTagger | HMMTagger | FeatureCRF, Checkpoint]:
    """Any trained tagger's model directory (or its run's --out): the tagger and its record."""
    ck = read_config(directory)
    if ck.config.get("task") != "tag":
        raise ValueError(f"{ck.path} is not a tagger (task {ck.config.get('task')!r})")
    name = ck.config["model"]
    if name == Baseline.HMM.value:
        return HMMTagger.load(ck.path / "hmm.json"), ck
    if name == Baseline.CRF.value:
        return FeatureCRF(ck.path / "crf.model"), ck
    config = TaggerConfig(**ck.config["tagger"])
    vocabs = TaggerVocabs(ck.vocabs["words"], ck.vocabs["chars"], ck.vocabs["tags"])
    model = Tagger(config, vocabs.tags.symbols)
    load_weights(ck.path, model)
    return NeuralTagger(model, vocabs, config), ck


def tag_all(tagger: NeuralTagger | HMMTagger | FeatureCRF, sentences: list[list[str]]) -> list[list[str]]:
    """Every sentence's tags: in length-sorted batches for the neural tagger, one by one otherwise."""
    if isinstance(tagger, NeuralTagger):
        return tagger.tag(sentences)
    return [tagger.tag(s) for s in sentences]
