"""Seq2seq decoding: a beam as wide as every hypothesis returns every output with its exact
probability and the brute-force best; beam 1 is greedy; a batch gives what one source at a
time gives; padding in the source batch changes nothing; sampling is reproducible, and at
temperature 0 or top-k 1 it is greedy; attention weights come back per output step over
the source's own positions; a
vector encoder's outputs (one-to-many) decode the same way."""

import itertools
import math

import pytest
import torch
from torch import nn

from rnnkit.decode.seq2seq import SearchConfig, beam_search, greedy, sample
from rnnkit.seq2seq import BOS_ID, EOS_ID, Seq2Seq, Seq2SeqConfig, VectorEncoder

V = 6  # <pad> <unk> <s> </s> and two symbols
SYMBOLS = (1, 4, 5)  # what a decoder may write besides the end


def _model(attention="general", feed=True, seed=0, vocab=V):
    torch.manual_seed(seed)
    config = Seq2SeqConfig(source_vocab=9, target_vocab=vocab, embed_size=6, hidden_size=5, encoder_layers=1,
                           attention=attention, input_feeding=feed, dropout=0.0)
    model = Seq2Seq(config).double().eval()
    with torch.no_grad():
        model.decoder.out.weight.mul_(4)  # peaked outputs: the choices matter
    return model


@torch.no_grad()
def _log_prob(model, source, length, output):
    """log P(output + </s> | source) by teacher forcing."""
    inputs = torch.tensor([[BOS_ID, *output]])
    logits, _ = model(source[None], torch.tensor([length]), inputs, torch.tensor([len(output) + 1]))
    logp = logits[0].log_softmax(-1)
    return float(sum(logp[t, y] for t, y in enumerate([*output, EOS_ID])))


@pytest.mark.parametrize("attention", [None, "additive", "dot"])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_an_exhaustive_beam_returns_every_output_with_its_probability(attention, alpha):
    model = _model("general" if attention == "dot" else attention, seed=3)
    source = torch.tensor([4, 7, 5, 8])
    config = SearchConfig(beam=100, nbest=100, max_ratio=0.0, max_extra=3, length_penalty=alpha)
    outputs = [list(y) for n in range(3) for y in itertools.product(SYMBOLS, repeat=n)]  # at most 2 + the end
    exact = {tuple(y): _log_prob(model, source, 4, y) for y in outputs}
    found = beam_search(model, source[None], torch.tensor([4]), config)[0]
    assert {tuple(g.tokens) for g in found} == set(exact)
    for g in found:
        assert g.log_prob == pytest.approx(exact[tuple(g.tokens)], abs=1e-5)
        assert g.score == pytest.approx(g.log_prob / (len(g.tokens) + 1) ** alpha, abs=1e-5)
    best = max(exact, key=lambda y: exact[y] / (len(y) + 1) ** alpha)
    assert tuple(found[0].tokens) == best


@pytest.mark.parametrize("feed", [True, False])
def test_beam_one_is_greedy(feed):
    model = _model(feed=feed, seed=1, vocab=12)
    source = torch.randint(4, 9, (5, 7))
    lengths = torch.tensor([7, 3, 5, 1, 6])
    config = SearchConfig(beam=1, max_ratio=1.0, max_extra=3)
    beams = beam_search(model, source, lengths, config)
    for b, g in enumerate(greedy(model, source, lengths, config)):
        assert beams[b][0].tokens == g.tokens
        assert beams[b][0].log_prob == pytest.approx(g.log_prob, abs=1e-5)


def test_a_batch_gives_what_one_source_at_a_time_gives_and_padding_changes_nothing():
    model = _model(attention="additive", seed=2, vocab=12)
    source = torch.randint(4, 9, (4, 8))
    lengths = torch.tensor([8, 2, 5, 3])
    config = SearchConfig(beam=4, nbest=3, max_ratio=1.5, max_extra=2)
    batch = beam_search(model, source, lengths, config)
    junk = source.clone()
    for b, n in enumerate(lengths.tolist()):
        junk[b, n:] = 8  # other symbols in the padding
        alone = beam_search(model, source[b:b + 1, :n], lengths[b:b + 1], config)[0]
        assert [g.tokens for g in batch[b]] == [g.tokens for g in alone]
        assert [g.score for g in batch[b]] == pytest.approx([g.score for g in alone], abs=1e-5)
        assert batch[b][0].attention.shape == (len(batch[b][0].tokens) + 1, n)
        assert torch.allclose(batch[b][0].attention.sum(1), torch.ones(1, dtype=torch.float64))
    padded = beam_search(model, junk, lengths, config)
    assert [[g.tokens for g in hyps] for hyps in padded] == [[g.tokens for g in hyps] for hyps in batch]


def test_sampling_is_reproducible_and_greedy_at_its_limits():
    model = _model(seed=4, vocab=12)
    source, lengths = torch.randint(4, 9, (3, 6)), torch.tensor([6, 4, 2])
    draws = [sample(model, source, lengths, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert [g.tokens for g in draws[0]] == [g.tokens for g in draws[1]]
    best = [g.tokens for g in greedy(model, source, lengths)]
    assert [g.tokens for g in sample(model, source, lengths, top_k=1)] == best
    many = {tuple(g.tokens) for s in range(20) for g in sample(model, source[:1], lengths[:1], temperature=2.0,
                                                               generator=torch.Generator().manual_seed(s))}
    assert len(many) > 1


def test_a_vector_encoder_decodes_one_to_many():
    torch.manual_seed(0)
    config = Seq2SeqConfig(source_vocab=0, target_vocab=8, embed_size=6, hidden_size=5, attention=None, dropout=0.0,
                           decoder_hidden=10)
    model = Seq2Seq(config, VectorEncoder(nn.Linear(4, 7), 7)).eval()
    x = torch.randn(3, 4)
    config = SearchConfig(beam=3, nbest=2, max_extra=5)
    outputs = beam_search(model, x, None, config)
    assert all(len(hyps) == 2 and all(len(g.tokens) < 5 and g.attention is None for g in hyps) for hyps in outputs)
    for hyps, g in zip(beam_search(model, x, None, SearchConfig(beam=1, max_extra=5)), greedy(model, x, None,
                                                                                              config)):
        assert hyps[0].tokens == g.tokens and math.isfinite(g.log_prob)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_stopping_once_the_n_best_are_settled_changes_no_output(monkeypatch, alpha):
    """A source leaves the search when no unfinished hypothesis can enter its n-best: the same
    outputs and scores as searching until K hypotheses have ended, extending fewer hypotheses."""
    from rnnkit.decode import seq2seq as search
    model = _model(seed=5, vocab=12)
    with torch.no_grad():
        model.decoder.out.bias[EOS_ID] += 1.0  # outputs that end, some early
    source, lengths = torch.randint(4, 9, (6, 7)), torch.tensor([7, 5, 6, 2, 4, 7])
    config = SearchConfig(beam=4, nbest=2, max_ratio=2.0, max_extra=6, length_penalty=alpha)
    steps = []
    step = model.decoder.step
    monkeypatch.setattr(model.decoder, "step", lambda prev, state: (steps.append(len(prev)), step(prev, state))[1])
    early = beam_search(model, source, lengths, config)
    early_rows, steps[:] = sum(steps), []  # hypotheses extended, over all steps
    monkeypatch.setattr(search, "_settled", lambda *a: False)
    full = beam_search(model, source, lengths, config)
    assert [[g.tokens for g in h] for h in early] == [[g.tokens for g in h] for h in full]
    assert [g.score for h in early for g in h] == pytest.approx([g.score for h in full for g in h])
    assert early_rows < sum(steps) if alpha == 0 else early_rows <= sum(steps)  # ranked by log P: a tight bound
