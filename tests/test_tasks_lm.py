"""Language model: shapes, streams, bits per symbol against a direct computation,
the two training regimes against
hand computations (padding never changes a sentence batch's loss; chunks with the
carried state equal whole rows run by torch.nn.LSTM); scoring a stream in rows and
chunks equals scoring it whole; training on real Python source lowers held-out bits."""

import math

import pytest
import torch
from torch import nn

from rnnkit import GRU
from rnnkit.batch import Batch
from rnnkit.data.pysource import python_files, stdlib_root
from rnnkit.data.text import Level
from rnnkit.layers import RNN
from rnnkit.loader import StreamLoader
from rnnkit.tasks.lm import (
    CellKind,
    LanguageModel,
    LMConfig,
    Regime,
    bits_per_symbol,
    build_vocab,
    collate_sentences,
    encode_sentences,
    encode_stream,
    evaluate,
    lm_metrics,
    sentence_loss,
    sentence_objective,
    stream_loss,
    stream_objective,
)
from rnnkit.train import Callback, FitConfig, fit
from rnnkit.vocab import BOS, EOS, UNK, Vocab


def test_forward_shapes_and_custom_rnn():
    lm = LanguageModel(LMConfig(vocab_size=11, embed_size=6, hidden_size=8), rnn=GRU(6, 8, 2))
    logits, h = lm(torch.randint(0, 11, (3, 5)), torch.tensor([5, 2, 1]))
    assert logits.shape == (3, 5, 11) and h.shape == (2, 3, 8)


def test_tied_weights():
    lm = LanguageModel(LMConfig(vocab_size=11, embed_size=8, hidden_size=8, tie_weights=True))
    assert lm.out.weight is lm.embed.weight
    with pytest.raises(ValueError, match="tie_weights"):
        LanguageModel(LMConfig(vocab_size=11, embed_size=6, hidden_size=8, tie_weights=True))


def test_bits_per_symbol_equals_direct_computation():
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=7, embed_size=4, hidden_size=5))
    ids = torch.randint(0, 7, (41,))
    bps = bits_per_symbol(lm, ids, batch_size=2, bptt=3)  # chunks carry state within each row
    logits, _ = lm(ids[:-1].view(2, 20))  # the same two rows, each whole
    direct = nn.functional.cross_entropy(logits.reshape(-1, 7), ids[1:].view(2, 20).reshape(-1)) / math.log(2)
    assert bps == pytest.approx(direct.item(), rel=1e-5)


def test_training_on_python_source_beats_uniform():
    """A few seconds of truncated BPTT on one real stdlib file, scored on another."""
    files = {p.name: p for p in python_files(stdlib_root())}
    train_text = files["textwrap.py"].read_text()
    test_text = files["shlex.py"].read_text()[:5000]
    vocab = Vocab.build([train_text], specials=(UNK,))
    train, test = torch.tensor(vocab.encode(train_text)), torch.tensor(vocab.encode(test_text))
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=len(vocab), embed_size=16, hidden_size=64))
    before = bits_per_symbol(lm, test)
    loader = StreamLoader(train, batch_size=16, bptt=32)  # the engine: truncated BPTT with carried state
    fit(lm, stream_objective, loader, torch.optim.Adam(lm.parameters(), lr=1e-2),
        FitConfig(epochs=4, carry_state=True, clip_norm=5.0))
    after = bits_per_symbol(lm, test)
    assert before > math.log2(len(vocab)) - 0.2
    assert after < 3.6 < before


def _lm(V=13, cell=CellKind.LSTM, **kw):
    return LanguageModel(LMConfig(vocab_size=V, embed_size=5, hidden_size=6, num_layers=2, cell=cell, **kw))


def test_config_round_trip_cell_choice_and_uniform_init():
    config = LMConfig(vocab_size=9, embed_size=4, hidden_size=6, cell=CellKind.GRU, init_range=0.1)
    assert LMConfig.from_dict(config.to_dict()) == config
    lm = LanguageModel(config)
    assert isinstance(lm.rnn, GRU)
    assert isinstance(_lm(cell=CellKind.ELMAN).rnn, RNN)
    assert all(float(p.detach().abs().max()) <= 0.1 for p in lm.parameters())
    with pytest.raises(ValueError, match="init_range"):
        LanguageModel(LMConfig(vocab_size=9, init_range=0.0))


def test_vocabulary_and_encodings():
    lines = [["a", "b", EOS], ["b", "<unk>", EOS]]
    vocab = build_vocab(lines, Regime.SENTENCES)
    assert vocab.symbols[:3] == [UNK, EOS, BOS] and vocab["zzz"] == vocab[UNK] == vocab["<unk>"]
    assert "a" in vocab and BOS not in build_vocab(lines, Regime.STREAM)
    stream = encode_stream([t for line in lines for t in line], vocab)
    assert vocab.decode(stream.tolist()) == [EOS, "a", "b", EOS, "b", UNK, EOS]  # every token is predicted
    (first, _) = encode_sentences(lines, vocab)
    assert vocab.decode(first.tolist()) == [BOS, "a", "b", EOS]


@pytest.mark.parametrize("cell", list(CellKind))
def test_padding_never_changes_the_sentence_loss(cell):
    """A padded batch of sentences of lengths 2..7 (padding filled with random symbols) has
    the loss, the count and the gradients of the sentences scored one at a time."""
    torch.manual_seed(0)
    lm = _lm(cell=cell)
    sentences = [torch.randint(0, 13, (n,)) for n in (4, 2, 7, 3)]
    batch = collate_sentences(sentences, list(range(4)))
    pad = torch.arange(batch.inputs.shape[1]) >= batch.lengths.unsqueeze(1)  # (B, T)
    noisy = Batch(batch.inputs.masked_scatter(pad, torch.randint(0, 13, (int(pad.sum()),))), batch.lengths,
                  batch.targets.masked_scatter(pad, torch.randint(0, 13, (int(pad.sum()),))))
    out = sentence_objective(lm, noisy, None)
    out.loss.backward()
    together = [p.grad.clone() for p in lm.parameters()]
    lm.zero_grad()
    alone, count = 0.0, 0
    for s in sentences:
        logits, _ = lm(s[None, :-1])  # (1, n - 1, V), no padding at all
        loss = nn.functional.cross_entropy(logits[0], s[1:], reduction="sum")
        loss.backward()
        alone, count = alone + loss.item(), count + len(s) - 1
    assert out.count == count == batch.tokens
    assert out.loss.item() == pytest.approx(alone, rel=1e-5)
    for g, p in zip(together, lm.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)


class _Records(Callback):
    def __init__(self):
        self.records = []

    def on_step(self, fit_state, record):
        self.records.append(record)


def test_stream_regime_equals_whole_rows_run_by_torch():
    """The engine over StreamLoader chunks of k = 3 with the state carried (lr 0, so the
    weights stay put) scores exactly what torch.nn.LSTM gives on each whole row."""
    torch.manual_seed(1)
    lm = _lm()
    ids = torch.randint(0, 13, (2 * 11 + 1,))
    loader = StreamLoader(ids, batch_size=2, bptt=3)
    records = _Records()
    fit(lm, stream_objective, loader, torch.optim.SGD(lm.parameters(), lr=0.0),
        FitConfig(epochs=1, carry_state=True), [records])
    chunked = sum(r.loss * r.count for r in records.records)
    assert [r.count for r in records.records] == [6, 6, 6, 4]
    reference = lm.rnn.to_torch()
    rows_in, rows_out = ids[:22].view(2, 11), ids[1:23].view(2, 11)  # contiguous rows
    with torch.no_grad():
        h, _ = reference(lm.embed(rows_in))  # (2, 11, H) from the zero state
        whole = nn.functional.cross_entropy(lm.out.logits(h).flatten(0, 1), rows_out.flatten(), reduction="sum")
    assert chunked == pytest.approx(whole.item(), rel=1e-5)


@pytest.mark.parametrize("rows", [1, 3, 4, 30])
def test_stream_loss_in_rows_and_chunks_equals_rows_run_whole(rows):
    """Every symbol after the first is scored once, each row from the zero state; rows of
    ceil(N / B) predictions, the last ones shorter (or empty), chunked by 4."""
    torch.manual_seed(2)
    lm = _lm()
    ids = torch.randint(0, 13, (24,))  # N = 23 predictions
    nats, count = stream_loss(lm, ids, batch_size=rows, bptt=4)
    n = -(-23 // min(rows, 23))
    direct = 0.0
    with torch.no_grad():
        for start in range(0, 23, n):
            x, y = ids[start:min(start + n, 23)], ids[start + 1:min(start + n, 23) + 1]
            logits, _ = lm(x[None])
            direct += nn.functional.cross_entropy(logits[0], y, reduction="sum").item()
    assert count == 23
    assert nats == pytest.approx(direct, rel=1e-5)


def test_sentence_loss_and_metrics():
    torch.manual_seed(3)
    lm = _lm()
    sentences = [torch.randint(0, 13, (n,)) for n in (5, 2, 3)]
    nats, count = sentence_loss(lm, sentences, batch_size=2)
    with torch.no_grad():
        direct = sum(nn.functional.cross_entropy(lm(s[None, :-1])[0][0], s[1:], reduction="sum").item()
                     for s in sentences)
    assert count == 7 and nats == pytest.approx(direct, rel=1e-5)
    words = evaluate(lm, sentences, Level.WORD, Regime.SENTENCES)
    assert words["perplexity"] == pytest.approx(math.exp(direct / 7), rel=1e-5)
    assert words["loss"] == pytest.approx(direct / 7, rel=1e-5) and words["count"] == 7
    assert lm_metrics(math.log(2) * 10, 5, Level.CHAR) == {"bits_per_char": pytest.approx(2.0),
                                                           "loss": pytest.approx(2 * math.log(2)), "count": 5}


def test_stream_objective_equals_cross_entropy_of_the_logits():
    """The fused softmax layer and loss against the model's logits scored by F.cross_entropy:
    the loss and every parameter's gradient."""
    torch.manual_seed(0)
    lm = _lm()
    batch = Batch(torch.randint(0, 13, (3, 6)), None, torch.randint(0, 13, (3, 6)))
    out = stream_objective(lm, batch, None)
    out.loss.backward()
    fused = [p.grad.clone() for p in lm.parameters()]
    lm.zero_grad()
    logits, _ = lm(batch.inputs)
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum")
    ref.backward()
    torch.testing.assert_close(out.loss, ref)
    assert out.count == 18
    for a, p in zip(fused, lm.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-6)
