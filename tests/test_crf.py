"""Linear-chain CRF: score, log-partition, nll, Viterbi and n-best against brute-force enumeration of every tag
sequence (with and without constraints); BIO/IOBES constraint matrices; padding (NaN, garbage tags) reaches no value
or gradient; a sequence alone equals it in a padded batch; float64 gradcheck; learning a transition-only pattern;
bad arguments raise ValueErrors naming themselves."""

import itertools
import math

import pytest
import torch
from torch.func import functional_call

from rnnkit.crf import CRF, bio_constraints, iobes_constraints
from rnnkit.losses import Reduction

K, T = 3, 4
LENGTHS = [4, 2, 1, 3]
# tag 0 -> {0, 2}, 1 -> {0, 1}, 2 -> {1, 2}; start with 0 or 1; end with 0 or 2
ALLOWED = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.bool)
START, END = torch.tensor([True, True, False]), torch.tensor([True, False, True])


def make(constrained=False, dtype=torch.float64):
    """A CRF with parameters far from their small initial values, so that transitions matter."""
    crf = CRF(K, ALLOWED, START, END) if constrained else CRF(K)
    crf.to(dtype)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def ref_score(crf, e, y):
    """s(y) of one sequence, written out from the raw parameters. e: (L, K)."""
    start, end, trans = crf.start.detach(), crf.end.detach(), crf.transitions.detach()
    s = start[y[0]] + end[y[-1]] + sum(e[t, k] for t, k in enumerate(y))
    return float(s + sum(trans[i, j] for i, j in zip(y, y[1:])))


def allowed_path(crf, y):
    return bool(crf.allowed_start[y[0]] and crf.allowed_end[y[-1]]
                and all(crf.allowed[i, j] for i, j in zip(y, y[1:])))


def enumerate_all(crf, e, L, constrained=False):
    """[(score, path)] of every (allowed) tag sequence of length L, best first."""
    paths = [list(y) for y in itertools.product(range(K), repeat=L)]
    scored = [(ref_score(crf, e, y), y) for y in paths if not constrained or allowed_path(crf, y)]
    return sorted(scored, key=lambda sy: -sy[0])


def logsumexp(xs):
    return float(torch.logsumexp(torch.tensor(xs, dtype=torch.float64), 0))


@pytest.mark.parametrize("constrained", [False, True])
def test_against_enumeration(constrained):
    crf = make(constrained)
    e = torch.randn(len(LENGTHS), T, K, dtype=torch.float64)
    tags = torch.randint(K, (len(LENGTHS), T))
    if constrained:  # gold paths that are allowed: the best allowed path of each sequence
        for b, L in enumerate(LENGTHS):
            tags[b, :L] = torch.tensor(enumerate_all(crf, e[b], L, True)[0][1])
    log_z = crf.log_partition(e, LENGTHS).detach()
    score = crf.score(e, tags, LENGTHS).detach()
    nll = crf.nll(e, tags, LENGTHS).detach()
    best_scores, best_paths = crf.viterbi(e, LENGTHS)
    assert crf.decode(e, LENGTHS) == best_paths
    nbest = {n: crf.decode_nbest(e, LENGTHS, n) for n in range(1, 6)}
    for b, L in enumerate(LENGTHS):
        every = enumerate_all(crf, e[b], L, constrained)
        assert math.isclose(float(log_z[b]), logsumexp([s for s, _ in every]), rel_tol=1e-10, abs_tol=1e-10)
        assert math.isclose(float(score[b]), ref_score(crf, e[b], tags[b, :L].tolist()), abs_tol=1e-10)
        assert math.isclose(float(nll[b]), float(log_z[b] - score[b]), abs_tol=1e-10)
        assert best_paths[b] == every[0][1] and len(best_paths[b]) == L
        assert math.isclose(float(best_scores[b]), every[0][0], abs_tol=1e-10)
        for n, got in nbest.items():
            assert [p for _, p in got[b]] == [p for _, p in every[:n]]
            assert len(got[b]) == min(n, len(every))
            assert all(math.isclose(s, r, abs_tol=1e-10) for (s, _), (r, _) in zip(got[b], every))


def test_reductions():
    crf = make()
    e, tags = torch.randn(len(LENGTHS), T, K, dtype=torch.float64), torch.randint(K, (len(LENGTHS), T))
    per = crf.nll(e, tags, LENGTHS)
    assert per.shape == (len(LENGTHS),)
    assert torch.allclose(crf(e, tags, LENGTHS, Reduction.SUM), per.sum())
    assert torch.allclose(crf.nll(e, tags, LENGTHS, Reduction.MEAN), per.sum() / sum(LENGTHS))
    assert torch.allclose(crf.nll(e, tags, LENGTHS, Reduction.SEQUENCE_MEAN), per.mean())


def test_decode_obeys_constraints():
    tags = ["O", "B-PER", "I-PER", "B-geo-loc", "I-geo-loc"]
    crf = CRF(len(tags), *bio_constraints(tags))
    e = 5 * torch.randn(64, 7, len(tags))  # strong emissions that often favour forbidden tags
    lengths = torch.randint(1, 8, (64,))
    for path in crf.decode(e, lengths) + [p for seq in crf.decode_nbest(e, lengths, 4) for _, p in seq]:
        assert path[0] not in (2, 4)
        assert all(bool(crf.allowed[i, j]) for i, j in zip(path, path[1:])), path
    assert bool(torch.isfinite(crf.nll(e, torch.zeros(64, 7, dtype=torch.long), lengths)).all())


def test_bio_constraints():
    allowed, start = bio_constraints(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    assert allowed.dtype == start.dtype == torch.bool
    assert allowed.tolist() == [[True, True, False, True, False],
                                [True, True, True, True, False],
                                [True, True, True, True, False],
                                [True, True, False, True, True],
                                [True, True, False, True, True]]
    assert start.tolist() == [True, True, False, True, False]
    allowed, _ = bio_constraints(["B-geo-loc", "I-geo-loc", "I-geo"])
    assert allowed[:, 1].tolist() == [True, True, False] and allowed[:, 2].tolist() == [False, False, True]


def test_iobes_constraints():
    allowed, start, end = iobes_constraints(["O", "B-X", "I-X", "E-X", "S-X", "B-Y", "E-Y"])
    assert allowed.tolist() == [[True, True, False, False, True, True, False],
                                [False, False, True, True, False, False, False],
                                [False, False, True, True, False, False, False],
                                [True, True, False, False, True, True, False],
                                [True, True, False, False, True, True, False],
                                [False, False, False, False, False, False, True],
                                [True, True, False, False, True, True, False]]
    assert start.tolist() == [True, True, False, False, True, True, False]
    assert end.tolist() == [True, False, False, True, True, False, True]


@pytest.mark.parametrize("constrained", [False, True])
def test_padding_reaches_nothing(constrained):
    crf = make(constrained, torch.float32)
    clean = torch.randn(len(LENGTHS), T, K)
    tags = torch.randint(K, (len(LENGTHS), T))
    valid = torch.arange(T) < torch.tensor(LENGTHS).unsqueeze(1)  # (B, T)
    dirty = torch.where(valid.unsqueeze(2), clean, torch.tensor([math.nan, math.inf, -math.inf]))
    garbage = torch.where(valid, tags, torch.tensor(-7))
    results = []
    for e, y in ((clean, tags), (dirty, garbage)):
        e = e.clone().requires_grad_()
        crf.zero_grad()
        loss = crf.nll(e, y, LENGTHS, Reduction.SUM)
        loss.backward()
        grads = [e.grad] + [p.grad.clone() for p in crf.parameters()]
        results.append((loss.detach(), grads, crf.decode(e, LENGTHS), crf.decode_nbest(e, LENGTHS, 3)))
    (l0, g0, d0, n0), (l1, g1, d1, n1) = results
    assert torch.equal(l0, l1) and d0 == d1 and n0 == n1
    for a, b in zip(g0, g1):
        assert torch.equal(a, b)
    assert bool((g1[0][~valid] == 0).all()) and bool(torch.isfinite(g1[0]).all())


def test_alone_equals_batched():
    crf = make(dtype=torch.float32)
    e, tags = torch.randn(len(LENGTHS), T, K), torch.randint(K, (len(LENGTHS), T))
    nll, paths, nbest = crf.nll(e, tags, LENGTHS), crf.decode(e, LENGTHS), crf.decode_nbest(e, LENGTHS, 4)
    for b, L in enumerate(LENGTHS):
        alone = e[b:b + 1, :L], tags[b:b + 1, :L], [L]
        assert torch.allclose(crf.nll(*alone), nll[b:b + 1], atol=1e-5)
        assert crf.decode(alone[0], [L]) == [paths[b]]
        assert [p for _, p in crf.decode_nbest(alone[0], [L], 4)[0]] == [p for _, p in nbest[b]]


@pytest.mark.parametrize("constrained", [False, True])
def test_gradcheck(constrained):
    crf = make(constrained)
    e = torch.randn(3, 4, K, dtype=torch.float64, requires_grad=True)
    tags, lengths = torch.tensor([[0, 2, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]), [4, 2, 1]
    names = ["start", "end", "transitions"]
    params = [getattr(crf, n).detach().clone().requires_grad_() for n in names]

    def f(e, *ps):
        return functional_call(crf, dict(zip(names, ps)), (e, tags, lengths))

    assert torch.autograd.gradcheck(f, (e, *params))


def test_learns_transition_pattern():
    """Tags alternate 0 1 0 1 … from 0; emissions are noise, so only start and transitions can tell."""
    crf = CRF(K)
    lengths = torch.randint(1, 9, (32,))
    tags = (torch.arange(8) % 2).expand(32, 8)
    for _ in range(60):  # plain gradient descent (torch.optim's first step imports torch._dynamo: seconds)
        grads = torch.autograd.grad(crf.nll(0.3 * torch.randn(32, 8, K), tags, lengths, Reduction.MEAN),
                                    list(crf.parameters()))
        with torch.no_grad():
            for p, g in zip(crf.parameters(), grads):
                p -= 2.0 * g
    test_lengths = torch.randint(1, 9, (16,))
    for path, L in zip(crf.decode(0.3 * torch.randn(16, 8, K), test_lengths), test_lengths.tolist()):
        assert path == [t % 2 for t in range(L)]


def test_bad_arguments():
    crf = CRF(K)
    e, tags, lengths = torch.randn(2, T, K), torch.zeros(2, T, dtype=torch.long), [T, 2]
    bad = [
        ("emissions", lambda: crf.nll(torch.randn(2, T), tags, lengths)),
        ("emissions", lambda: crf.log_partition(torch.randn(2, T, K + 1), lengths)),
        ("emissions", lambda: crf.decode(torch.zeros(2, T, K, dtype=torch.long), lengths)),
        ("tags", lambda: crf.nll(e, tags[:, :-1], lengths)),
        ("tags", lambda: crf.score(e, tags.float(), lengths)),
        ("tags", lambda: crf.nll(e, torch.full((2, T), K), lengths)),
        ("lengths", lambda: crf.nll(e, tags, [T, 2, 1])),
        ("lengths", lambda: crf.decode(e, torch.tensor([[T, 2]]))),
        ("lengths", lambda: crf.log_partition(e, [T, 0])),
        ("lengths", lambda: crf.decode_nbest(e, [T + 1, 2], 2)),
        ("n", lambda: crf.decode_nbest(e, lengths, 0)),
        ("reduction", lambda: crf.nll(e, tags, lengths, "sum")),
        ("num_tags", lambda: CRF(0)),
        ("constraints", lambda: CRF(K, torch.ones(K, K + 1, dtype=torch.bool))),
        ("constraints", lambda: CRF(K, torch.ones(K, K))),
        ("allowed_start", lambda: CRF(K, None, torch.ones(K + 1, dtype=torch.bool))),
        ("allowed_end", lambda: CRF(K, allowed_end=[True] * K)),
        ("tags", lambda: bio_constraints(["O", "B-PER", "E-PER"])),
        ("tags", lambda: bio_constraints(["O", "B-"])),
        ("tags", lambda: iobes_constraints(["O", "X-PER"])),
    ]
    for name, call in bad:
        with pytest.raises(ValueError, match=f"^{name} "):
            call()
