"""Hybrid decoding: Viterbi over the phone loop equals the best of every state path
enumerated by brute force on tiny inputs, alone or in a batch; the loop's scores follow
its formula."""

import itertools
import math

import pytest
import torch

from rnnkit.decode.hybrid import PhoneLoop, collapse, path_score, viterbi


def random_loop(K, g, closed=()):
    states = torch.ones(K, dtype=torch.bool)
    states[list(closed)] = False
    bigram = torch.randn(K, K, generator=g, dtype=torch.float64).log_softmax(1)
    start = torch.randn(K, generator=g, dtype=torch.float64).log_softmax(0)
    end = torch.randn(K, generator=g, dtype=torch.float64).log_softmax(0)
    self_loop = torch.rand(K, generator=g, dtype=torch.float64) * 0.9
    return PhoneLoop.build(bigram, start, end, self_loop, states, lm_weight=0.7, bonus=-0.3)


def brute_best(scores, loop):
    T, K = scores.shape
    best, arg = -math.inf, None
    for path in itertools.product(range(K), repeat=T):
        s = path_score(scores.numpy(), list(path), loop)
        if s > best:
            best, arg = s, list(path)
    return best, arg


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_finds_the_best_of_every_path_alone_and_in_a_batch(seed):
    g = torch.Generator().manual_seed(seed)
    K, T = 4, 5
    loop = random_loop(K, g, closed=[0])
    scores = torch.randn(3, T, K, generator=g, dtype=torch.float64)
    lengths = [5, 3, 1]
    scores[1, 3:] = float("nan")  # padding is never read
    batched = viterbi(scores, lengths, loop)
    for b, L in enumerate(lengths):
        best, arg = brute_best(scores[b, :L], loop)
        assert batched[b] == arg
        assert path_score(scores[b, :L].numpy(), batched[b], loop) == pytest.approx(best, abs=1e-9)
        assert viterbi(scores[b:b + 1, :L], [L], loop)[0] == batched[b]
        assert 0 not in batched[b]  # a closed state is never visited


def test_the_loop_follows_its_formula():
    g = torch.Generator().manual_seed(0)
    K = 3
    bigram = torch.randn(K, K, generator=g, dtype=torch.float64).log_softmax(1)
    start, end = bigram[0], bigram[:, 0]
    a = torch.tensor([0.5, 0.8, 0.2], dtype=torch.float64)
    loop = PhoneLoop.build(bigram, start, end, a, torch.ones(K, dtype=torch.bool), lm_weight=2.0, bonus=0.5)
    assert float(loop.log_trans[1, 2]) == pytest.approx(math.log(0.2) + 2 * float(bigram[1, 2]) + 0.5)
    expect_stay = max(math.log(0.8), math.log(0.2) + 2 * float(bigram[1, 1]) + 0.5)
    assert float(loop.log_trans[1, 1]) == pytest.approx(expect_stay)
    assert float(loop.log_start[2]) == pytest.approx(2 * float(start[2]) + 0.5)
    assert float(loop.log_end[2]) == pytest.approx(math.log(0.8) + 2 * float(end[2]))


def test_strong_frames_are_followed_and_runs_collapse():
    K = 3
    loop = PhoneLoop.build(torch.full((K, K), math.log(1 / K)), torch.full((K,), math.log(1 / K)),
                           torch.full((K,), math.log(1 / K)), torch.full((K,), 0.5), torch.ones(K, dtype=torch.bool))
    truth = [1, 1, 2, 2, 2, 0, 1]
    scores = torch.full((1, len(truth), K), -20.0)
    scores[0, torch.arange(len(truth)), torch.tensor(truth)] = 0.0
    path = viterbi(scores, [len(truth)], loop)[0]
    assert path == truth
    assert collapse(path) == [1, 2, 0, 1]


def test_an_empty_utterance_is_refused():
    loop = PhoneLoop(torch.zeros(2), torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="at least one frame"):
        viterbi(torch.zeros(1, 3, 2), [0], loop)
