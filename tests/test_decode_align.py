"""Forced alignment over CTC's topology: the Viterbi path equals the best of every alignment
enumerated by brute force on tiny inputs, in any batch; and dense frame labels from it."""

import itertools
import math

import pytest
import torch

from rnnkit.decode.align import ctc_align, frame_labels


def collapse(path, blank=0):
    return [k for k, _ in itertools.groupby(path) if k != blank]


def brute_best(lp, target):
    """The best alignment of lp (T, K) to target by enumerating all K^T paths."""
    T, K = lp.shape
    best, arg = -math.inf, None
    for path in itertools.product(range(K), repeat=T):
        if collapse(path) == list(target):
            score = sum(float(lp[t, k]) for t, k in enumerate(path))
            if score > best:
                best, arg = score, list(path)
    return best, arg


@pytest.mark.parametrize("seed", range(6))
def test_the_viterbi_alignment_is_the_best_of_all_alignments(seed):
    g = torch.Generator().manual_seed(seed)
    K, T = 3, 6
    targets = [[1, 2], [1, 1], [2], [1, 2, 1], [2, 2, 2]]
    lengths = [6, 5, 4, 6, 5]
    lp = torch.randn(len(targets), T, K, generator=g, dtype=torch.float64).log_softmax(2)
    lp[1, 5:] = float("nan")  # padding is never read
    padded = torch.zeros(len(targets), 3, dtype=torch.long)
    for b, y in enumerate(targets):
        padded[b, :len(y)] = torch.tensor(y)
    got = ctc_align(lp, lengths, padded, [len(y) for y in targets])
    for b, y in enumerate(targets):
        best, path = brute_best(lp[b, :lengths[b]], y)
        if path is None:
            assert got[b] is None
            continue
        assert got[b].frames == path
        assert got[b].score == pytest.approx(best, abs=1e-9)
        alone = ctc_align(lp[b:b + 1, :lengths[b]], [lengths[b]], padded[b:b + 1], [len(y)])[0]
        assert alone == got[b]


def test_no_alignment_when_there_are_too_few_frames():
    lp = torch.randn(1, 2, 3).log_softmax(2)
    assert ctc_align(lp, [2], torch.tensor([[1, 1]]), [2]) == [None]  # needs a blank between: 3 frames


def test_frame_labels_split_between_spikes():
    assert frame_labels([0, 1, 0, 0, 0, 2, 2, 0]) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert frame_labels([3, 0, 0, 3]) == [3, 3, 3, 3]  # a repeated label: two runs
    assert frame_labels([0, 0]) == []
