"""CTC decoding: the best path on paths built by hand (repeats merged, blanks dropped,
padding unread); the prefix beam search against brute-force enumeration of every
alignment on tiny inputs: each hypothesis's probability is the sum over its alignments,
an unbounded beam finds the exact best labelling with and without a language model, a
batch gives what one-by-one calls give, and a narrow beam stays close."""

import itertools
import math

import numpy as np
import pytest
import torch

from rnnkit.decode import ctc_greedy_decode, ctc_prefix_beam_search
from rnnkit.ngram import LabelLM, NGram


def one_hot_log_probs(paths, K=3):
    T = max(len(p) for p in paths)
    x = torch.full((len(paths), T, K), math.nan)  # padding: NaN
    for b, path in enumerate(paths):
        x[b, :len(path)] = torch.eye(K)[path].mul(5).log_softmax(1)
    return x


def test_ctc_greedy_decode():
    paths = [[1, 1, 0, 1, 2, 2, 0], [2, 2, 0, 0], [0, 0], [], [1, 2, 2, 1]]
    log_probs = one_hot_log_probs([p or [0] for p in paths])
    assert ctc_greedy_decode(log_probs, [7, 4, 2, 0, 3]) == [[1, 1, 2], [2], [], [], [1, 2]]
    assert ctc_greedy_decode(one_hot_log_probs([[2, 1, 1, 2, 0, 0]]), [6], blank=2) == [[1, 0]]


def test_ctc_greedy_decode_names_bad_arguments():
    lp = torch.randn(2, 3, 4).log_softmax(2)
    with pytest.raises(ValueError, match=r"lengths must be <= T=3"):
        ctc_greedy_decode(lp, [3, 5])
    with pytest.raises(ValueError, match=r"blank must be in \[0, K=4\)"):
        ctc_greedy_decode(lp, [3, 3], blank=4)


def _collapse(path, blank=0):
    return tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1]))


def _brute_force(lp):
    """{labelling: log Σ over the alignments that collapse to it} for lp (L, K)."""
    L, K = lp.shape
    sums = {}
    for path in itertools.product(range(K), repeat=L):
        score = sum(float(lp[t, k]) for t, k in enumerate(path))
        key = _collapse(path)
        sums[key] = np.logaddexp(sums.get(key, -math.inf), score)
    return sums


def _random_log_probs(B, T, K, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, K, generator=g, dtype=torch.float64) * 2).log_softmax(2)


@pytest.mark.parametrize("seed", range(4))
def test_every_hypothesis_scores_the_sum_over_its_alignments(seed):
    lp = _random_log_probs(1, 5, 3, seed)
    exact = _brute_force(lp[0].numpy())
    hyps = ctc_prefix_beam_search(lp, [5], beam=10**6, nbest=10**6, prune=None)[0]
    assert {tuple(h.labels) for h in hyps} == set(exact)
    for h in hyps:
        assert h.acoustic == pytest.approx(exact[tuple(h.labels)], abs=1e-9) and h.score == h.acoustic
    best = max(exact, key=exact.get)
    assert tuple(hyps[0].labels) == best


def _lm(seed, K=3, end=3):
    """A bigram over labels 1..K-1 with an end symbol; sentences drawn at random."""
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(40):
        ids += list(rng.integers(1, K, rng.integers(0, 4))) + [end]
    return LabelLM(NGram(2, K + 1).fit(np.array(ids)), end)


@pytest.mark.parametrize("seed", range(4))
def test_with_a_language_model_an_unbounded_beam_finds_the_exact_best(seed):
    lp = _random_log_probs(1, 4, 3, seed)
    lm, alpha, beta = _lm(seed), 0.8, 0.3
    exact = _brute_force(lp[0].numpy())

    def lm_score(labels):
        total, prefix = 0.0, ()
        for k in labels:
            total += lm.next_log_probs(prefix)[k]
            prefix += (k,)
        return total + lm.end_log_prob(prefix)

    scores = {ell: a + alpha * lm_score(ell) + beta * len(ell) for ell, a in exact.items()}
    hyps = ctc_prefix_beam_search(lp, [4], beam=10**6, nbest=10**6, lm=lm, alpha=alpha, beta=beta, prune=None)[0]
    assert tuple(hyps[0].labels) == max(scores, key=scores.get)
    for h in hyps:
        assert h.score == pytest.approx(scores[tuple(h.labels)], abs=1e-9)
        assert h.lm == pytest.approx(lm_score(h.labels), abs=1e-9)


def test_a_batch_gives_what_one_by_one_gives_and_padding_is_unread():
    lp = _random_log_probs(4, 9, 5, 7)
    lengths = [9, 3, 6, 0]
    padded = lp.clone()
    for b, L in enumerate(lengths):
        padded[b, L:] = math.nan
    batch = ctc_prefix_beam_search(padded, lengths, beam=4, nbest=3, lm=_lm(1, K=5, end=5))
    for b, L in enumerate(lengths):
        alone = ctc_prefix_beam_search(lp[b:b + 1, :L], [L], beam=4, nbest=3, lm=_lm(1, K=5, end=5))
        assert batch[b] == alone[0]
    assert batch[3][0].labels == [] and batch[3][0].acoustic == 0.0  # no frames: the empty labelling, surely


def test_a_narrow_beam_on_peaked_outputs_agrees_with_the_exact_search():
    """Outputs like a trained model's (one label dominant per frame): beam 4 with pruning
    finds the exact search's best, which here is also the best path."""
    paths = [[1, 1, 0, 2, 0, 2, 2, 3, 0], [3, 0, 0, 1, 1, 1, 2, 0, 0]]
    lp = torch.stack([torch.eye(4)[p].mul(4).log_softmax(1) for p in paths]).double()
    narrow = ctc_prefix_beam_search(lp, [9, 9], beam=4)
    exact = ctc_prefix_beam_search(lp, [9, 9], beam=10**6, prune=None)
    assert [h[0].labels for h in narrow] == [h[0].labels for h in exact] == ctc_greedy_decode(lp, [9, 9])


def test_an_impossible_labelling_is_never_returned_and_arguments_are_checked():
    lp = _random_log_probs(1, 2, 3, 0)
    hyps = ctc_prefix_beam_search(lp, [2], beam=100, nbest=100, prune=None)[0]
    assert all(math.isfinite(h.acoustic) for h in hyps) and (1, 1) not in {tuple(h.labels) for h in hyps}
    with pytest.raises(ValueError, match="beam and nbest must be >= 1"):
        ctc_prefix_beam_search(lp, [2], beam=0)
    with pytest.raises(ValueError, match=r"blank must be in \[0, K=3\)"):
        ctc_prefix_beam_search(lp, [2], blank=3)


def test_the_ngram_scores_the_next_symbol_as_it_scores_a_sequence():
    rng = np.random.default_rng(0)
    model = NGram(3, 5).fit(rng.integers(0, 5, 300))
    test = rng.integers(0, 5, 30)
    whole = model.log_probs(test)
    for i in range(30):
        assert model.next_log_probs(test[:i])[test[i]] == pytest.approx(whole[i], abs=1e-12)
    assert np.exp(model.next_log_probs([1, 2])).sum() == pytest.approx(1.0)
