"""NPLM (Bengio et al. 2003): its next-word probabilities equal a direct computation
from its parameters (over chunks with the history carried, from the padded start,
with and without direct connections); the history it returns is each sequence's own
last n - 1 symbols; a few seconds of training on a real text beat the uniform model."""

import math

import pytest
import torch

from rnnkit.data.pysource import python_files, stdlib_root
from rnnkit.data.text import Layout, Level, read_text
from rnnkit.loader import StreamLoader
from rnnkit.optim import Method, OptimizerConfig, build_optimizer
from rnnkit.tasks.lm import Regime, build_vocab, encode_stream, evaluate, stream_objective
from rnnkit.tasks.nplm import NPLM, NPLMConfig
from rnnkit.train import FitConfig, fit


def _direct_probability(lm: NPLM, history: list[int], word: int) -> float:
    """P(word | history) from the parameters: y = b + W x + U tanh(d + H x), x the history's embeddings."""
    x = torch.cat([lm.embed.weight[h] for h in history])  # ((n-1)·E,), oldest first
    y = lm.out.bias + lm.out.weight @ torch.tanh(lm.hidden.bias + lm.hidden.weight @ x)  # (V,)
    if lm.direct is not None:
        y = y + lm.direct.weight @ x
    return float(torch.exp(y[word] - torch.logsumexp(y, 0)))


@pytest.mark.parametrize("direct", [False, True])
def test_probability_equals_direct_computation(direct):
    torch.manual_seed(0)
    V, pad = 11, 3
    lm = NPLM(NPLMConfig(vocab_size=V, order=4, embed_size=3, hidden_size=5, direct=direct, pad_id=pad)).eval()
    ids = torch.randint(0, V, (2, 9))
    state, probs = None, []
    with torch.no_grad():
        for start in (0, 2, 7):  # uneven chunks, history carried
            stop = {0: 2, 2: 7, 7: 9}[start]
            logits, state = lm(ids[:, start:stop], state=state)  # (2, k, V)
            probs.append(logits.softmax(-1))
        probs = torch.cat(probs, dim=1)  # (2, 8, V)
        for b in range(2):
            seq = [pad] * 3 + ids[b].tolist()  # the history before the start is the pad symbol
            for t in range(8):  # P(ids[b, t + 1] | the 3 symbols up to ids[b, t])
                want = _direct_probability(lm, seq[t + 1:t + 4], seq[t + 4])
                assert float(probs[b, t, ids[b, t + 1]]) == pytest.approx(want, rel=1e-5)
    assert state.tolist() == ids[:, -3:].tolist()


def test_history_is_each_sequences_own_last_symbols():
    lm = NPLM(NPLMConfig(vocab_size=20, order=3, embed_size=2, hidden_size=2, pad_id=0))
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
    _, history = lm(ids, torch.tensor([4, 1, 0]), torch.tensor([[1, 2], [3, 4], [17, 18]]))
    assert history.tolist() == [[7, 8], [4, 9], [17, 18]]
    with pytest.raises(ValueError, match="state"):
        lm(ids, state=torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="order"):
        NPLM(NPLMConfig(vocab_size=5, order=1))


def test_a_few_seconds_of_training_beat_the_uniform_model():
    """Words of textwrap.py (first 80% of its lines) for 120 updates; perplexity on the rest."""
    path = {p.name: p for p in python_files(stdlib_root())}["textwrap.py"]
    (tokens,) = read_text(path, Level.WORD, Layout.STREAM).sequences
    cut = int(len(tokens) * 0.8)
    vocab = build_vocab([tokens[:cut]], Regime.STREAM, min_count=2)
    train, test = encode_stream(tokens[:cut], vocab), encode_stream(tokens[cut:], vocab)
    torch.manual_seed(0)
    lm = NPLM(NPLMConfig(vocab_size=len(vocab), order=3, embed_size=16, hidden_size=32, pad_id=1))
    before = evaluate(lm, test, Level.WORD, Regime.STREAM, batch_size=8)["perplexity"]
    opt = build_optimizer(lm, OptimizerConfig(method=Method.ADAM, lr=1e-2))
    fit(lm, stream_objective, StreamLoader(train, batch_size=16, bptt=16), opt, FitConfig(epochs=6, carry_state=True))
    after = evaluate(lm, test, Level.WORD, Regime.STREAM, batch_size=8)["perplexity"]
    assert before > 0.8 * len(vocab)  # about uniform at the start
    assert after < 0.25 * len(vocab), (after, len(vocab))
    assert math.isfinite(after)
