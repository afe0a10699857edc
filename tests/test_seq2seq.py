"""Encoder-decoder: the decoder's step against torch.nn.LSTMCell with copied weights and the
attention written out; teacher forcing over the whole target (fused layers, all steps
attended at once) equal to the loop over the step for every attention, cell and depth,
gradients included; a pair gives the same alone or in a padded batch; the reversed
source, tied embeddings, scheduled sampling, the one-to-many encoder and the settings
that contradict each other."""

import pytest
import torch
from torch import nn

from rnnkit.layers import CellKind
from rnnkit.seq2seq import BOS_ID, Seq2Seq, Seq2SeqConfig, VectorEncoder
from rnnkit.settings import SettingError


def _config(**kw):
    base = dict(source_vocab=11, target_vocab=13, embed_size=6, hidden_size=5, encoder_layers=2, dropout=0.0)
    return Seq2SeqConfig(**{**base, **kw})


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(4, 11, (3, 7), generator=g)
    inputs = torch.randint(4, 13, (3, 5), generator=g)
    inputs[:, 0] = BOS_ID
    return source, torch.tensor([7, 3, 5]), inputs, torch.tensor([5, 2, 4])


def test_a_decoder_step_against_torch_lstm_cell_and_the_attention_written_out():
    torch.manual_seed(0)
    model = Seq2Seq(_config(decoder_layers=1, attention="general", input_feeding=True)).double().eval()
    source, lengths, inputs, _ = _batch()
    dec = model.decoder
    cell = dec.rnn.cells[0]
    ref = nn.LSTMCell(cell.input_size, cell.hidden_size).double()
    with torch.no_grad():
        ref.weight_ih.copy_(cell.weight_ih)
        ref.weight_hh.copy_(cell.weight_hh)
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    state = model.encode(source, lengths)
    memory = model.encoder(source, lengths).memory  # (B, S, M)
    (h, c), feed = state.rnn[0], state.feed
    for t in range(inputs.shape[1]):
        logits, state, alpha = dec.step(inputs[:, t], state)
        h, c = ref(torch.cat([dec.embed(inputs[:, t]), feed], 1), (h, c))
        for b, n in enumerate(lengths.tolist()):
            e = torch.stack([h[b] @ (dec.attention.memory_proj.weight @ m) for m in memory[b, :n]])
            a = e.softmax(0)
            torch.testing.assert_close(alpha[b, :n], a)
            tilde = torch.tanh(dec.combine(torch.cat([a @ memory[b, :n], h[b]])))
            torch.testing.assert_close(state.feed[b], tilde)
            torch.testing.assert_close(logits[b], dec.out(tilde))
        feed = state.feed


@pytest.mark.parametrize("cell", [CellKind.LSTM, CellKind.GRU])
@pytest.mark.parametrize("attention,feeding", [(None, False), ("additive", False), ("dot", False),
                                               ("general", False), ("additive", True), ("general", True)])
@pytest.mark.parametrize("layers", [1, 2])
def test_teacher_forcing_over_the_whole_target_equals_the_step_loop(cell, attention, feeding, layers):
    torch.manual_seed(1)
    model = Seq2Seq(_config(cell=cell, attention=attention, input_feeding=feeding, decoder_layers=layers,
                            feed_context=attention is None)).double().eval()
    source, lengths, inputs, input_lengths = _batch(1)
    logits, alpha = model(source, lengths, inputs, input_lengths)  # the fast path
    state, steps, weights = model.encode(source, lengths), [], []
    for t in range(inputs.shape[1]):
        out, state, a = model.decoder.step(inputs[:, t], state)
        steps.append(out)
        weights.append(a)
    loop = torch.stack(steps, 1)
    valid = torch.arange(5) < input_lengths.unsqueeze(1)  # (B, T)
    torch.testing.assert_close(logits[valid], loop[valid])
    if attention is not None:
        torch.testing.assert_close(alpha[valid], torch.stack(weights, 1)[valid])
    (g_fast,) = torch.autograd.grad(logits[valid].square().sum(), [model.decoder.out.weight])
    (g_loop,) = torch.autograd.grad(loop[valid].square().sum(), [model.decoder.out.weight])
    torch.testing.assert_close(g_fast, g_loop)


@pytest.mark.parametrize("feed", [True, False])
def test_a_pair_alone_equals_the_pair_in_a_padded_batch(feed):
    torch.manual_seed(2)
    model = Seq2Seq(_config(attention="additive", input_feeding=feed)).double().eval()
    source, lengths, inputs, input_lengths = _batch(2)
    logits, alpha = model(source, lengths, inputs, input_lengths)
    for b in range(3):
        S, T = int(lengths[b]), int(input_lengths[b])
        one, a = model(source[b:b + 1, :S], lengths[b:b + 1], inputs[b:b + 1, :T], input_lengths[b:b + 1])
        torch.testing.assert_close(one[0], logits[b, :T])
        torch.testing.assert_close(a[0], alpha[b, :T, :S])
        assert torch.all(alpha[b, :T, S:] == 0)


def test_a_reversed_source_is_read_backwards_and_attended_in_its_own_order():
    torch.manual_seed(3)
    forward = Seq2Seq(_config()).double().eval()
    backward = Seq2Seq(_config(reverse_source=True)).double().eval()
    backward.load_state_dict(forward.state_dict())
    source, lengths, _, _ = _batch(3)
    flipped = source.clone()
    for b, n in enumerate(lengths.tolist()):
        flipped[b, :n] = source[b, :n].flip(0)
    theirs, ours = forward.encoder(flipped, lengths), backward.encoder(source, lengths)
    torch.testing.assert_close(ours.summary, theirs.summary)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours.memory[b, :n], theirs.memory[b, :n].flip(0))


def test_scheduled_sampling_at_one_feeds_back_the_decoders_own_best_guesses():
    torch.manual_seed(4)
    model = Seq2Seq(_config(attention="dot", input_feeding=False)).double().eval()
    source, lengths, inputs, input_lengths = _batch(4)
    own, _ = model(source, lengths, inputs, input_lengths, sampling=1.0)
    guesses = torch.cat([inputs[:, :1], own[:, :-1].argmax(-1)], 1)  # what it fed itself
    forced, _ = model(source, lengths, guesses, input_lengths)
    valid = torch.arange(5) < input_lengths.unsqueeze(1)  # (B, T)
    torch.testing.assert_close(own[valid], forced[valid])
    plain, _ = model(source, lengths, inputs, input_lengths, sampling=0.0)
    assert not torch.allclose(plain, own)


def test_tied_embeddings_one_to_many_and_contradictions():
    model = Seq2Seq(_config(tie_embeddings=True, embed_size=10, hidden_size=5))
    assert model.decoder.out.weight is model.decoder.embed.weight
    vector = Seq2Seq(_config(source_vocab=0, attention=None), VectorEncoder(nn.Linear(4, 9), 9))
    logits, alpha = vector(torch.randn(2, 4), None, torch.full((2, 3), BOS_ID), torch.tensor([3, 1]))
    assert logits.shape == (2, 3, 13) and alpha is None
    with pytest.raises(SettingError, match="feed_context"):
        _config(attention="general", feed_context=True)
    with pytest.raises(SettingError, match="tie_embeddings needs embed_size"):
        _config(tie_embeddings=True)
    with pytest.raises(SettingError, match="attention needs an encoder that gives a memory"):
        Seq2Seq(_config(source_vocab=0, attention="general"), VectorEncoder(nn.Linear(4, 9), 9))


@pytest.mark.parametrize("feed", [True, False])
def test_bfloat16_products_train_close_to_float32(feed):
    torch.manual_seed(5)
    model = Seq2Seq(_config(attention="general", input_feeding=feed))
    source, lengths, inputs, input_lengths = _batch(5)
    full, _ = model(source, lengths, inputs, input_lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = model(source, lengths, inputs, input_lengths)
    low.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    valid = torch.arange(5) < input_lengths.unsqueeze(1)
    torch.testing.assert_close(low.float()[valid], full[valid], atol=0.05, rtol=0.05)
