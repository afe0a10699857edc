"""Sampling carries the state (greedy sampling equals re-running from scratch), is
reproducible from a generator and stops at the stop symbol; top-p keeps the smallest
nucleus, checked against brute force."""

import pytest
import torch

from rnnkit.decode import filter_logits, sample
from rnnkit.tasks.lm import LanguageModel, LMConfig


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


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15])  # ranked: 1 (.4), 3 (.3), 4 (.15), 2 (.1), 0 (.05)
    scores = probs.log()
    kept = {p: set(filter_logits(scores, top_p=p).isfinite().nonzero().flatten().tolist())
            for p in (0.01, 0.39, 0.41, 0.69, 0.71, 0.84, 0.86, 0.96, 1.0)}
    assert kept == {0.01: {1}, 0.39: {1}, 0.41: {1, 3}, 0.69: {1, 3}, 0.71: {1, 3, 4}, 0.84: {1, 3, 4},
                    0.86: {1, 3, 4, 2}, 0.96: {0, 1, 2, 3, 4}, 1.0: {0, 1, 2, 3, 4}}
    both = filter_logits(scores, top_k=2, top_p=0.99)  # top-k first, then the nucleus of what is left
    assert set(both.isfinite().nonzero().flatten().tolist()) == {1, 3}
    assert torch.equal(filter_logits(scores, top_p=0.5)[[1, 3]], scores[[1, 3]])  # kept scores untouched
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="top_p"):
            filter_logits(scores, top_p=bad)
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(scores, top_k=0)


def test_top_p_against_brute_force_on_random_distributions():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        probs = torch.rand(6, generator=g, dtype=torch.float64) ** 3
        probs /= probs.sum()
        p = float(torch.rand(1, generator=g))
        ranked = probs.argsort(descending=True).tolist()
        smallest = next(ranked[:k] for k in range(1, 7) if probs[ranked[:k]].sum() >= p)
        assert set(filter_logits(probs.log(), top_p=p).isfinite().nonzero().flatten().tolist()) == set(smallest)


def test_sampling_stops_at_the_stop_symbol():
    """With the same draws, stopping at symbol s gives the unstopped text up to and including its first s."""
    torch.manual_seed(4)
    lm = LanguageModel(LMConfig(vocab_size=5, embed_size=4, hidden_size=6))
    free = sample(lm, [0], 60, generator=torch.Generator().manual_seed(9))
    assert 2 in free
    stopped = sample(lm, [0], 60, stop=2, generator=torch.Generator().manual_seed(9))
    assert stopped == free[:free.index(2) + 1]
    assert sample(lm, [0], 0) == []
