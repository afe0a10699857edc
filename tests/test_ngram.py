"""Witten-Bell n-gram baseline: a proper distribution in every context (summed by
brute force over the vocabulary), and the unigram case by hand."""

import math

import numpy as np
import pytest

from rnnkit.ngram import NGram

V = 5
TRAIN = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2, 4, 4, 0])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distribution_sums_to_one_in_every_context(order):
    lm = NGram(order, V).fit(TRAIN)
    for context in ([0, 1], [4, 4], [3, 2], [1, 1]):
        context = context[-(order - 1):] if order > 1 else []
        total = sum(math.exp(lm.log_probs(np.array(context + [w]))[-1]) for w in range(V))
        assert total == pytest.approx(1.0, abs=1e-12)


def test_unigram_is_add_one():
    lm = NGram(1, V).fit(TRAIN)
    counts = np.bincount(TRAIN, minlength=V)
    expected = (counts + 1) / (len(TRAIN) + V)
    np.testing.assert_allclose(np.exp(lm.log_probs(np.arange(V))), expected)


def test_witten_bell_bigram_by_hand():
    lm = NGram(2, V).fit(TRAIN)
    # after 0: followers 1,1,1 -> c(0)=3, u(0)=1; P(1|0) = (3 + 1·P1(1)) / (3 + 1)
    p1 = (np.bincount(TRAIN, minlength=V) + 1) / (len(TRAIN) + V)
    assert math.exp(lm.log_probs(np.array([0, 1]))[1]) == pytest.approx((3 + p1[1]) / 4)


def test_higher_order_fits_training_text_better():
    bits = [NGram(n, V).fit(TRAIN).bits_per_symbol(TRAIN) for n in (1, 2, 3)]
    assert bits[0] > bits[1] > bits[2]


def test_bad_order():
    with pytest.raises(ValueError, match="order"):
        NGram(0, V)
