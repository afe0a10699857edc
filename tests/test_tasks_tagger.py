"""BiLSTM(-CRF) tagger: the batch encoding, the same emissions alone or in a batch,
the character representation really is the character BiLSTM's final states, and a
few epochs on real Portuguese sentences tag held-out ones well above the
most-frequent-tag level."""

from pathlib import Path

import pytest
import torch

from rnnkit.batch import BatchingConfig
from rnnkit.data.tagged import read_conllu
from rnnkit.loader import SequenceLoader
from rnnkit.metrics import tagging_metrics
from rnnkit.tasks.tagger import Tagger, TaggerConfig, TaggerEncoder, TaggerVocabs, objective
from rnnkit.train import FitConfig, fit

DATA = read_conllu(Path(__file__).parent / "data" / "porttinari-sample.conllu")


def _setup(crf=True, **kw):
    train = DATA[:160]
    vocabs = TaggerVocabs.build([s.tokens for s in train], [s.tags for s in train], lowercase=True)
    config = TaggerConfig(len(vocabs.words), len(vocabs.chars), len(vocabs.tags), crf=crf, **kw)
    torch.manual_seed(0)
    return Tagger(config, vocabs.tags.symbols), TaggerEncoder(vocabs, True), vocabs


def test_batch_encoding():
    _, enc, vocabs = _setup()
    examples = [enc.example(["O", "gato", "o"], None), enc.example(["gato"], None)]
    batch = enc.collate(examples, [0, 1])
    types, chars = batch.extra["types"], batch.extra["chars"]
    assert batch.lengths.tolist() == [3, 1]
    assert types[0, 1] == types[1, 0]  # one row per distinct word
    assert types[0, 0] != types[0, 2]  # "O" and "o" differ in characters
    row = chars[types[0, 1], :4].tolist()
    assert vocabs.chars.decode(row) == list("gato")
    assert batch.inputs[0, 0] == batch.inputs[0, 2]  # the same lower-cased word id


def test_emissions_alone_equal_in_batch():
    model, enc, _ = _setup()
    model.eval()
    sentences = [s.tokens for s in DATA[160:166]]
    batch = enc.collate([enc.example(s, None) for s in sentences], list(range(6)))
    together = model.emissions(batch)
    for b, s in enumerate(sentences):
        alone = model.emissions(enc.collate([enc.example(s, None)], [0]))
        torch.testing.assert_close(together[b, :len(s)], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("crf", [True, False])
def test_a_batch_loss_is_the_sum_of_its_sequences_selected_one_by_one(crf):
    model, enc, _ = _setup(crf=crf)
    model.eval()
    sentences = [s.tokens for s in DATA[160:165]]
    batch = enc.collate([enc.example(s.tokens, s.tags) for s in DATA[160:165]], list(range(5)))
    alone = sum(objective(model, batch.select([b]), None).loss for b in range(len(sentences)))
    torch.testing.assert_close(alone, objective(model, batch, None).loss, rtol=1e-5, atol=1e-4)


def test_character_features_are_the_final_states():
    model, enc, _ = _setup()
    model.eval()
    batch = enc.collate([enc.example(["casa"], None)], [0])
    chars = model.char_embed(batch.extra["chars"][:1, :4])  # (1, 4, Ec)
    y, _ = model.char_rnn(chars)
    H = model.config.char_hidden
    expected = torch.cat([y[0, -1, :H], y[0, 0, H:]])  # forward last step, backward first step
    _, (h, _) = model.char_rnn(chars)
    torch.testing.assert_close(torch.cat([h[0, 0], h[1, 0]]), expected)


@pytest.mark.parametrize("crf", [True, False])
def test_learns_real_pos_tags(crf):
    model, enc, vocabs = _setup(crf=crf, word_dim=32, char_dim=16, char_hidden=16, hidden=32, dropout=0.2)
    train, test = DATA[:160], DATA[160:]
    examples = [enc.example(s.tokens, s.tags) for s in train]
    loader = SequenceLoader(examples, [len(s.tokens) for s in train], enc.collate, BatchingConfig(batch_size=16))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    fit(model, objective, loader, opt, FitConfig(epochs=4, clip_norm=5.0))
    model.eval()
    batch = enc.collate([enc.example(s.tokens, None) for s in test], list(range(len(test))))
    predicted = [vocabs.tags.decode(p) for p in model.predict(batch)]
    acc = tagging_metrics([s.tags for s in test], predicted)["accuracy"]
    assert acc > 0.75
