"""Language model: shapes, streams, bits per symbol against a direct computation,
sampling carries the state (greedy sampling equals re-running from scratch), and
training on real Python source lowers held-out bits per character."""

import math

import pytest
import torch
from torch import nn

from rnnkit import GRU
from rnnkit.data.pysource import python_files, stdlib_root
from rnnkit.tasks.lm import (
    LanguageModel,
    LMConfig,
    StreamTraining,
    bits_per_symbol,
    sample,
    stream_batches,
    train_on_stream,
)
from rnnkit.vocab import UNK, Vocab


def test_forward_shapes_and_custom_rnn():
    lm = LanguageModel(LMConfig(vocab_size=11, embed_size=6, hidden_size=8), rnn=GRU(6, 8, 2))
    logits, h = lm(torch.randint(0, 11, (3, 5)), torch.tensor([5, 2, 1]))
    assert logits.shape == (3, 5, 11) and h.shape == (2, 3, 8)


def test_tied_weights():
    lm = LanguageModel(LMConfig(vocab_size=11, embed_size=8, hidden_size=8, tie_weights=True))
    assert lm.out.weight is lm.embed.weight
    with pytest.raises(ValueError, match="tie_weights"):
        LanguageModel(LMConfig(vocab_size=11, embed_size=6, hidden_size=8, tie_weights=True))


def test_stream_batches_are_contiguous_rows():
    s = stream_batches(torch.arange(23), 4)
    assert s.tolist() == [list(range(0, 5)), list(range(5, 10)), list(range(10, 15)), list(range(15, 20))]


def test_bits_per_symbol_equals_direct_computation():
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=7, embed_size=4, hidden_size=5))
    ids = torch.randint(0, 7, (41,))
    bps = bits_per_symbol(lm, ids, batch_size=2, bptt=3)  # chunks carry state within each row
    rows = stream_batches(ids, 2)
    logits, _ = lm(rows[:, :-1])
    direct = nn.functional.cross_entropy(logits.reshape(-1, 7), rows[:, 1:].reshape(-1)) / math.log(2)
    assert bps == pytest.approx(direct.item(), rel=1e-5)


def test_greedy_sampling_equals_rerunning_from_scratch():
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=9, embed_size=4, hidden_size=6))
    prime = [1, 2, 3]
    got = sample(lm, prime, 8, top_k=1)
    seq = list(prime)
    for _ in range(8):
        logits, _ = lm(torch.tensor([seq]))
        seq.append(int(logits[0, -1].argmax()))
    assert got == seq[3:]


def test_sampling_is_reproducible_with_a_generator():
    lm = LanguageModel(LMConfig(vocab_size=9, embed_size=4, hidden_size=6))
    a = sample(lm, [1], 20, temperature=1.5, generator=torch.Generator().manual_seed(5))
    b = sample(lm, [1], 20, temperature=1.5, generator=torch.Generator().manual_seed(5))
    assert a == b
    with pytest.raises(ValueError, match="temperature"):
        sample(lm, [1], 2, temperature=0)
    with pytest.raises(ValueError, match="prime"):
        sample(lm, [], 2)


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
    steps = iter(range(10**9))
    train_on_stream(lm, train, StreamTraining(batch_size=16, bptt=32, lr=1e-2, seconds=150),
                    clock=lambda: next(steps))  # 150 updates, whatever the machine's speed
    after = bits_per_symbol(lm, test)
    assert before > math.log2(len(vocab)) - 0.2
    assert after < 3.6 < before
