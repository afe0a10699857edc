"""The hybrid system's statistics: priors, self-loops and bigram computed by hand on tiny
frame labels; scaled likelihoods; and the framewise loss ignores padding (a sequence
scores the same alone or in a batch)."""

import math

import pytest
import torch

from rnnkit.batch import Batch
from rnnkit.tasks.asr import framewise_objective
from rnnkit.tasks.hybrid import HybridStats


def test_priors_and_self_loops_are_counted_by_hand():
    stats = HybridStats.fit([[1, 1, 1, 2], [2, 2, 1]], [[1, 2], [2, 1]], K=3)
    # frames: unit 1 four times, unit 2 three times, add-one smoothing; the blank has none
    assert math.exp(stats.log_prior[1]) == pytest.approx(5 / 9)
    assert math.exp(stats.log_prior[2]) == pytest.approx(4 / 9)
    assert stats.log_prior[0] == -math.inf
    # unit 1: 5 smoothed frames over 2 runs; unit 2: 4 over 2
    assert stats.self_loop[1] == pytest.approx(1 - 2 / 5) and stats.self_loop[2] == pytest.approx(1 - 2 / 4)
    rows = torch.tensor(stats.bigram).exp().sum(1)
    assert torch.allclose(rows, torch.ones(3), atol=1e-9)  # each context's bigram sums to one


def test_scaled_likelihoods_divide_by_the_priors():
    stats = HybridStats.fit([[1, 2, 2, 2]], [[1, 2]], K=3)
    lp = torch.tensor([[-1.0, -0.5, -2.0]])
    scaled = stats.scaled_likelihoods(lp, prior_scale=0.5)
    assert scaled[0, 0] == -math.inf
    assert float(scaled[0, 2]) == pytest.approx(-2.0 - 0.5 * stats.log_prior[2])
    loop = stats.loop(lm_weight=1.0, bonus=0.0)
    assert loop.log_start[0] == -math.inf and (loop.log_trans[:, 0] == -math.inf).all()


class Frames(torch.nn.Module):
    def forward(self, x, lengths):
        return x, lengths


def test_the_framewise_loss_ignores_padding():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 5, 4, generator=g)
    targets = torch.tensor([[1, 2, 3, 1, 2], [3, 3, -1, -1, -1]])
    batch = Batch(scores, torch.tensor([5, 2]), targets)
    out = framewise_objective(Frames(), batch, None)
    alone = framewise_objective(Frames(), Batch(scores[1:, :2], torch.tensor([2]), targets[1:, :2]), None)
    first = torch.nn.functional.cross_entropy(scores[0], targets[0], reduction="sum")
    assert out.count == 7 and alone.count == 2
    assert float(out.loss) == pytest.approx(float(first + alone.loss), rel=1e-6)
