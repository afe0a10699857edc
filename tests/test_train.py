"""The training loop: truncated BPTT against a hand-written reference, state
carried across chunks and batches, clipping, weight noise, non-finite updates
skipped and logged, divergence stops, determinism, and the callbacks."""

import copy

import pytest
import torch
from torch import nn

from rnnkit import LSTM
from rnnkit.batch import Batch, BatchingConfig
from rnnkit.callbacks import Evaluate
from rnnkit.loader import SequenceLoader, StreamLoader
from rnnkit.losses import Reduction, masked_cross_entropy
from rnnkit.settings import SettingError
from rnnkit.tasks.toys import Problem, SequenceModel, collate, make_dataset, make_objective
from rnnkit.train import (
    FitConfig,
    FitState,
    NoiseDraw,
    Precision,
    StepOutput,
    Stop,
    TrainingDiverged,
    fit,
    train_batch,
)

V = 7


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, 4)
        self.rnn = LSTM(4, 5)
        self.out = nn.Linear(5, V)

    def forward(self, ids, lengths=None, state=None):
        h, state = self.rnn(self.embed(ids), lengths, state)
        return self.out(h), state


def lm_objective(model, batch, state):
    logits, state = model(batch.inputs, batch.lengths, state)
    loss = masked_cross_entropy(logits, batch.targets, batch.lengths, reduction=Reduction.SUM)
    return StepOutput(loss, batch.tokens, state)


def _batch(B=3, T=10, lengths=(10, 6, 3)):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    return Batch(x, torch.tensor(lengths), y, indices=torch.arange(B))


def test_truncated_bptt_equals_hand_written_reference():
    torch.manual_seed(0)
    model, ref = TinyLM(), TinyLM()
    ref.load_state_dict(model.state_dict())
    batch = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    train_batch(model, lm_objective, opt, batch, None, FitState(), FitConfig(bptt=4))
    # reference: chunks of 4 steps, state detached between them, one SGD update per chunk (mean loss)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    state = None
    for start in (0, 4, 8):
        lengths = (batch.lengths - start).clamp(0, 4)
        x, y = batch.inputs[:, start:start + 4], batch.targets[:, start:start + 4]
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = ref(x, lengths, state)
        loss = masked_cross_entropy(logits, y, lengths, reduction=Reduction.SUM) / lengths.sum()
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_bptt_covering_the_sequence_is_full_bptt():
    torch.manual_seed(0)
    model, ref = TinyLM(), TinyLM()
    ref.load_state_dict(model.state_dict())
    batch = _batch()
    for m, bptt in ((model, 10), (ref, None)):
        opt = torch.optim.SGD(m.parameters(), lr=0.5)
        train_batch(m, lm_objective, opt, batch, None, FitState(), FitConfig(bptt=bptt))
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_state_carries_across_chunks():
    """With lr 0 nothing changes, so the per-chunk losses must add up to the whole
    sequence's loss, which only holds if each chunk starts from the previous state."""
    torch.manual_seed(0)
    model = TinyLM()
    batch = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    _, records = train_batch(model, lm_objective, opt, batch, None, FitState(), FitConfig(bptt=3))
    chunked = sum(r.loss * r.count for r in records)
    whole = lm_objective(model, batch, None).loss.item()
    assert chunked == pytest.approx(whole, rel=1e-5)
    reset = sum(lm_objective(model, batch.chunk(s, s + 3), None).loss.item() for s in range(0, 10, 3))
    assert abs(reset - whole) > 1e-3


def test_state_carries_across_batches_of_a_stream():
    torch.manual_seed(0)
    model = TinyLM()
    ids = torch.randint(0, V, (61,))
    loader = StreamLoader(ids, batch_size=2, bptt=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    losses = []

    class Record(Evaluate):
        def __init__(self):
            pass

        def on_step(self, fit, record):
            losses.append(record.loss * record.count)

        def on_epoch_end(self, fit):
            pass

    fit(model, lm_objective, loader, opt, FitConfig(epochs=1, carry_state=True), [Record()])
    whole = lm_objective(model, Batch(loader.inputs, torch.full((2,), 30), loader.targets), None).loss.item()
    assert sum(losses) == pytest.approx(whole, rel=1e-5)


class Spy(torch.optim.SGD):
    """An optimizer that records the gradients it is handed and changes nothing."""

    def step(self, closure=None):
        self.seen = [p.grad.clone() if p.grad is not None else None for group in self.param_groups
                     for p in group["params"]]


def _grads_after_clipping(model, objective, batch, config):
    spy = Spy(model.parameters(), lr=0.1)
    train_batch(model, objective, spy, batch, None, FitState(), config)
    return spy.seen


def test_clipping_by_norm_and_value():
    """Norm clipping rescales the whole gradient to the norm; value clipping clamps exactly
    the elements beyond the value (there are some) and leaves the others alone."""
    torch.manual_seed(0)
    model, batch = TinyLM(), _batch()
    raw = _grads_after_clipping(model, lm_objective, batch, FitConfig())
    norm = torch.cat([g.flatten() for g in raw]).norm().item()
    assert norm > 0.01
    by_norm = _grads_after_clipping(model, lm_objective, batch, FitConfig(clip_norm=0.01))
    assert torch.cat([g.flatten() for g in by_norm]).norm().item() == pytest.approx(0.01, rel=1e-4)
    for g, r in zip(by_norm, raw):
        torch.testing.assert_close(g, r * (0.01 / (norm + 1e-6)))
    by_value = _grads_after_clipping(model, lm_objective, batch, FitConfig(clip_value=1e-3))
    flat = torch.cat([g.flatten() for g in raw]).abs()
    assert (flat > 1e-3).sum() > 10 and (flat < 1e-3).sum() > 10  # both kinds of element are there
    for g, r in zip(by_value, raw):
        assert torch.equal(g, r.clamp(-1e-3, 1e-3))


def test_weight_noise_is_used_for_the_gradient_and_removed_before_the_update():
    torch.manual_seed(0)
    model = TinyLM()
    before = {n: p.clone() for n, p in model.named_parameters()}
    seen = {}

    def objective(m, batch, state):
        seen["w"] = m.rnn.cells[0].weight_hh.clone()
        seen["emb"] = m.embed.weight.clone()
        return lm_objective(m, batch, state)

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    train_batch(model, objective, opt, _batch(), None, FitState(), FitConfig(weight_noise=0.1))
    noise = seen["w"] - before["rnn.cells.0.weight_hh"]
    assert 0.05 < noise.std().item() < 0.15
    assert torch.equal(seen["emb"], before["embed.weight"])  # tables are not perturbed
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])  # restored exactly; lr 0 changed nothing


def test_weight_noise_per_sequence_sums_each_sequences_gradient_on_its_own_draw():
    torch.manual_seed(0)
    model = TinyLM()
    ref = copy.deepcopy(model)
    batch = _batch()
    fit_state = FitState()
    fit_state.noise.manual_seed(5)
    seen = []

    def objective(m, b, state):
        seen.append(m.rnn.cells[0].weight_hh.clone())
        return lm_objective(m, b, state)

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    _, [record] = train_batch(model, objective, opt, batch, None, fit_state,
                              FitConfig(weight_noise=0.1, weight_noise_per=NoiseDraw.SEQUENCE))
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])
    # reference: for each sequence, a draw for every weight matrix in parameter order (tables
    # excluded), the gradient of its summed loss there; the update is minus the sum over all tokens' count
    g = torch.Generator().manual_seed(5)
    grads = {n: torch.zeros_like(p) for n, p in ref.named_parameters()}
    for b in range(3):
        noisy = copy.deepcopy(ref)
        with torch.no_grad():
            for n, p in noisy.named_parameters():
                if p.dim() >= 2 and n != "embed.weight":
                    p.add_(torch.randn(p.shape, generator=g) * 0.1)
        n_b = int(batch.lengths[b])
        lm_objective(noisy, Batch(batch.inputs[b:b + 1], batch.lengths[b:b + 1], batch.targets[b:b + 1]),
                     None).loss.backward()
        for n, p in noisy.named_parameters():
            grads[n] += p.grad
        assert n_b > 0
    total = int(batch.lengths.sum())
    for (n, p), q in zip(ref.named_parameters(), model.parameters()):
        torch.testing.assert_close(q, p - grads[n] / total, rtol=1e-5, atol=1e-6)
    assert record.count == total


def test_weight_noise_per_sequence_needs_whole_sequences():
    with pytest.raises(SettingError, match="weight_noise_per"):
        FitConfig(weight_noise=0.1, weight_noise_per=NoiseDraw.SEQUENCE, bptt=5)
    with pytest.raises(SettingError, match="weight_noise_per"):
        FitConfig(weight_noise_per="sequence", carry_state=True)
    assert FitConfig(weight_noise_per="sequence").weight_noise_per is NoiseDraw.SEQUENCE


def test_non_finite_updates_are_skipped_and_logged_then_training_stops():
    torch.manual_seed(0)
    model = TinyLM()
    before = {n: p.clone() for n, p in model.named_parameters()}

    def poisoned(m, batch, state):
        out = lm_objective(m, batch, state)
        return StepOutput(out.loss * float("nan"), out.count, out.state)

    opt = torch.optim.Adam(model.parameters())
    fit_state = FitState()
    _, records = train_batch(model, poisoned, opt, _batch(), None, fit_state, FitConfig(max_bad_steps=3))
    assert not records[0].finite and records[0].indices == [0, 1, 2]
    assert fit_state.skipped == 1 and fit_state.step == 0
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])
    with pytest.raises(TrainingDiverged, match="4 updates in a row"):
        for _ in range(4):
            train_batch(model, poisoned, opt, _batch(), None, fit_state, FitConfig(max_bad_steps=3))


def _toy_run(seed, dropout=0.0, noise=0.0, epochs=2):
    torch.manual_seed(seed)
    data = make_dataset(Problem.PARITY, 64, 2, 12, seed)
    model = SequenceModel(LSTM(1, 8, 2, dropout=dropout), 2)
    loader = SequenceLoader(data, [len(x) for x, _ in data], collate, BatchingConfig(batch_size=8, seed=seed))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    state = FitState()
    state.noise.manual_seed(seed)
    fit(model, make_objective(Problem.PARITY), loader, opt, FitConfig(epochs=epochs, weight_noise=noise), [], state)
    return model


def test_same_seed_gives_bitwise_identical_weights():
    a, b = _toy_run(3, dropout=0.3, noise=0.01), _toy_run(3, dropout=0.3, noise=0.01)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    c = _toy_run(4, dropout=0.3, noise=0.01)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_max_minutes_stops_in_the_middle_of_an_epoch():
    torch.manual_seed(0)
    data = make_dataset(Problem.PARITY, 64, 2, 12, 0)
    model = SequenceModel(LSTM(1, 8), 2)
    loader = SequenceLoader(data, [len(x) for x, _ in data], collate, BatchingConfig(batch_size=8))
    ticks = iter(range(10**6))
    state = fit(model, make_objective(Problem.PARITY), loader, torch.optim.Adam(model.parameters()),
                FitConfig(epochs=5, max_minutes=3 / 60), clock=lambda: float(next(ticks)))
    assert state.stop and state.epoch == 0 and 0 < state.batch < 8


def test_clipping_sparse_gradients_equals_dense():
    """A sparse embedding's gradient counts once per row: the same norm and clipped values as dense."""

    class Table(nn.Module):
        def __init__(self, sparse):
            super().__init__()
            self.emb = nn.Embedding(6, 3, sparse=sparse)

    def objective(m, batch, state):  # row 1 twice: an uncoalesced sparse gradient
        return StepOutput(m.emb(torch.tensor([1, 1, 4])).pow(2).sum() * 3, 3)

    grads = {}
    for sparse in (True, False):
        torch.manual_seed(0)
        model = Table(sparse)
        (g,) = _grads_after_clipping(model, objective, _batch(), FitConfig(clip_norm=0.5, clip_value=1.0))
        grads[sparse] = g.to_dense() if sparse else g
    torch.testing.assert_close(grads[True], grads[False])
    assert grads[False].norm().item() == pytest.approx(0.5, rel=1e-4)


def test_bfloat16_precision_is_close_to_float32_and_keeps_float32_weights():
    """Under BFLOAT16 the products run in bfloat16 (so the update differs a little), the
    recurrence and the weights stay float32; one update lands close to float32's."""
    torch.manual_seed(0)
    models = [TinyLM(), TinyLM()]
    models[1].load_state_dict(models[0].state_dict())
    batch = _batch()
    for model, precision in zip(models, Precision):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        _, records = train_batch(model, lm_objective, opt, batch, None, FitState(), FitConfig(precision=precision))
        assert records[0].finite
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=2e-2)
    assert any(not torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters()))


def test_a_stop_inside_a_long_batch_resumes_at_the_next_chunk_equal_to_the_whole_run():
    """One long batch of 4 chunks (bptt 3): a callback asks to stop after the second update;
    the state saved there (the position inside the batch, the carried state) resumes to the
    weights of a run that never stopped. Every update reports its own step."""
    torch.manual_seed(0)
    data = [(torch.randint(0, V, (12,)), torch.randint(0, V, (12,))) for _ in range(4)]

    def collate_lm(examples, indices):
        x = torch.stack([e[0] for e in examples])
        return Batch(x, torch.full((len(examples),), 12), torch.stack([e[1] for e in examples]),
                     indices=torch.tensor(indices))

    loader = SequenceLoader(data, [12] * 4, collate_lm, BatchingConfig(batch_size=4, shuffle=False))
    config = FitConfig(epochs=2, bptt=3)
    torch.manual_seed(1)
    whole = TinyLM()
    start = {k: v.clone() for k, v in whole.state_dict().items()}
    steps = []

    class Steps(Evaluate):
        def __init__(self, stop_at=None):
            self.stop_at = stop_at

        def on_step(self, fit, record):
            steps.append((fit.step, fit.batch, fit.chunk))
            if fit.step == self.stop_at:
                fit.stop = True

        def on_epoch_end(self, fit):
            pass

    fit(whole, lm_objective, loader, torch.optim.Adam(whole.parameters(), lr=0.01), config, [Steps()])
    assert steps[:4] == [(1, 0, 1), (2, 0, 2), (3, 0, 3), (4, 1, 0)]  # each update, its own position
    cut = TinyLM()
    cut.load_state_dict(start)
    opt = torch.optim.Adam(cut.parameters(), lr=0.01)
    state = fit(cut, lm_objective, loader, opt, config, [Steps(stop_at=2)])
    assert (state.epoch, state.batch, state.chunk, state.stopped) == (0, 0, 2, Stop.REQUEST)
    saved, weights, moments = state.to_dict(), copy.deepcopy(cut.state_dict()), copy.deepcopy(opt.state_dict())
    again = TinyLM()
    again.load_state_dict(weights)
    opt = torch.optim.Adam(again.parameters(), lr=0.01)
    opt.load_state_dict(moments)
    fit(again, lm_objective, loader, opt, config, [], FitState.from_dict(saved))
    for p, q in zip(whole.parameters(), again.parameters()):
        assert torch.equal(p, q)
