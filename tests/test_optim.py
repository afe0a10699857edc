"""Optimizers and schedules: each method steps; sparse embeddings touch only the
rows a batch used (DyNet's semantics) where dense Adam moves all seen rows;
DECAY and PLATEAU schedules; bad settings name the setting."""

import pickle

import pytest
import torch
from torch import nn

from rnnkit import optim
from rnnkit.fused_softmax import linear_cross_entropy
from rnnkit.optim import Adam, LazyAdam, LRSchedule, Method, OptimizerConfig, Schedule, ScheduleConfig, build_optimizer


class Tagger(nn.Module):
    def __init__(self, sparse):
        super().__init__()
        self.embed = nn.Embedding(10, 3, sparse=sparse)
        self.out = nn.Linear(3, 2)

    def forward(self, ids):
        return self.out(self.embed(ids)).sum()


@pytest.mark.parametrize("method", list(Method))
def test_every_method_updates(method):
    model = Tagger(sparse=False)
    before = model.out.weight.clone()
    opt = build_optimizer(model, OptimizerConfig(method=method, lr=0.1, momentum=0.5 if method is Method.SGD else 0))
    model(torch.tensor([1, 2])).backward()
    opt.step()
    assert not torch.equal(model.out.weight, before)


@pytest.mark.parametrize("method", [Method.ADAM, Method.SGD])
def test_sparse_updates_touch_only_used_rows(method):
    torch.manual_seed(0)
    sparse, dense = Tagger(sparse=True), Tagger(sparse=False)
    dense.load_state_dict(sparse.state_dict())
    opts = [build_optimizer(sparse, OptimizerConfig(method=method, lr=0.1, sparse_embeddings=True)),
            build_optimizer(dense, OptimizerConfig(method=method, lr=0.1, momentum=0.9 if method is Method.SGD
                                                   else 0))]
    for ids in ([1, 2], [3]):  # row 1 and 2 used first, then only row 3
        for model, opt in zip((sparse, dense), opts):
            before = model.embed.weight.detach().clone()
            opt.zero_grad()
            model(torch.tensor(ids)).backward()
            opt.step()
            moved = (model.embed.weight != before).any(1).nonzero().flatten().tolist()
            if model is sparse:
                assert moved == ids
    assert moved == [1, 2, 3]  # dense Adam (or momentum) keeps moving the rows seen before


@pytest.mark.parametrize("path", ["extension", "python"])
def test_lazy_adam_equals_torch_sparse_adam(path, monkeypatch):
    """The reference: torch.optim.SparseAdam, over steps with repeated and absent rows;
    the C++ update and the Python one (used without the extension)."""
    if path == "python":
        monkeypatch.setattr(optim.fused, "extension", lambda: None)
    torch.manual_seed(0)
    models = [Tagger(sparse=True), Tagger(sparse=True)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [LazyAdam([models[0].embed.weight], lr=0.05), torch.optim.SparseAdam([models[1].embed.weight], lr=0.05)]
    for ids in ([1, 2, 2], [3], [1, 4, 1, 1], [2]):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            model(torch.tensor(ids)).backward()
            opt.step()
    torch.testing.assert_close(models[0].embed.weight, models[1].embed.weight, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sparse gradients"):
        dense = Tagger(sparse=False)
        opt = LazyAdam([dense.embed.weight])
        dense(torch.tensor([1])).backward()
        opt.step()


@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_equals_torch(decoupled, dtype):
    """rnnkit's one-pass Adam/AdamW against torch's, with weight decay, over several steps,
    on tensors longer than a vector and a parallel chunk, and with a parameter skipped."""
    torch.manual_seed(0)
    params = [torch.randn(70001, dtype=dtype), torch.randn(5, 3, dtype=dtype), torch.randn(3, dtype=dtype)]
    ours = [p.clone().requires_grad_() for p in params]
    ref = [p.clone().requires_grad_() for p in params]
    reference = (torch.optim.AdamW if decoupled else torch.optim.Adam)(ref, lr=0.01, weight_decay=0.1)
    opt = Adam(ours, lr=0.01, weight_decay=0.1, decoupled=decoupled)
    for step in range(4):
        for a, b in zip(ours, ref):
            g = torch.randn_like(a)
            a.grad, b.grad = g.clone(), g.clone()
        if step == 2:
            ours[2].grad = ref[2].grad = None  # no gradient: not updated, its step not counted
        opt.step()
        reference.step()
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6)
    assert opt.state[ours[2]]["step"] == reference.state[ref[2]]["step"] == 3


def test_adam_is_the_default_on_the_cpu():
    assert isinstance(build_optimizer(Tagger(sparse=False), OptimizerConfig()), Adam)
    sparse = build_optimizer(Tagger(sparse=True), OptimizerConfig(method=Method.ADAMW, sparse_embeddings=True))
    assert isinstance(sparse, Adam) and sparse.param_groups[0]["decoupled"]
    assert sparse.param_groups[1]["weight_decay"] == 0  # the tables' group


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_updates_sparse_tables_as_lazy_adam(weight_decay):
    """One Adam over a sparse table and dense weights: the table as torch's SparseAdam, the
    rest as torch's Adam, over steps with repeated and absent rows."""
    torch.manual_seed(0)
    ours, ref = Tagger(sparse=True), Tagger(sparse=True)
    ref.load_state_dict(ours.state_dict())
    opt = build_optimizer(ours, OptimizerConfig(lr=0.05, weight_decay=weight_decay, sparse_embeddings=True))
    references = [torch.optim.SparseAdam([ref.embed.weight], lr=0.05),
                  torch.optim.Adam(ref.out.parameters(), lr=0.05, weight_decay=weight_decay)]
    for ids in ([1, 2, 2], [3], [1, 4, 1, 1], [2]):
        opt.zero_grad()
        ours(torch.tensor(ids)).backward()
        opt.step()
        for o in references:
            o.zero_grad()
        ref(torch.tensor(ids)).backward()
        for o in references:
            o.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="weight_decay=0"):
        Adam([ours.embed.weight], weight_decay=0.1).step()


@pytest.mark.parametrize("method", [Method.ADAM, Method.ADAMW])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_gives_a_sparse_table_its_dense_update(method, dtype):
    """Without sparse_embeddings, a sparse table gets torch's Adam/AdamW update of its dense
    gradient (every row moves, weight decay included), over steps with repeated and absent
    rows, on a table split into parallel chunks of rows (2 threads)."""
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self, sparse):
            super().__init__()
            self.embed = nn.Embedding(30000, 3, sparse=sparse, dtype=dtype)
            self.out = nn.Linear(3, 2, dtype=dtype)

        def forward(self, ids):
            return self.out(self.embed(ids)).pow(2).sum()

    ours, ref = Model(sparse=True), Model(sparse=False)
    ref.load_state_dict(ours.state_dict())
    start = ours.embed.weight.detach().clone()
    opt = build_optimizer(ours, OptimizerConfig(method=method, lr=0.05, weight_decay=0.1))
    assert isinstance(opt, Adam)
    reference = (torch.optim.AdamW if method is Method.ADAMW else torch.optim.Adam)(
        ref.parameters(), lr=0.05, weight_decay=0.1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for ids in ([1, 2, 2], [29999], [1, 4, 1, 1, 15000, 10921, 10922], [0], [3, 29998]):
            opt.zero_grad()
            ours(torch.tensor(ids)).backward()
            assert ours.embed.weight.grad.is_sparse
            opt.step()
            reference.zero_grad()
            ref(torch.tensor(ids)).backward()
            reference.step()
    finally:
        torch.set_num_threads(threads)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, **tol)
    assert not torch.equal(ours.embed.weight[100], start[100])  # a row never used moved too


def test_sparse_tables_need_the_flag():
    with pytest.raises(ValueError, match="sparse_embeddings=True"):
        build_optimizer(Tagger(sparse=True), OptimizerConfig(method=Method.SGD))
    with pytest.raises(ValueError, match="RMSPROP"):
        build_optimizer(Tagger(sparse=True), OptimizerConfig(method=Method.RMSPROP, sparse_embeddings=True))
    with pytest.raises(ValueError, match="lr"):
        build_optimizer(Tagger(sparse=False), OptimizerConfig(lr=0))


def test_sparse_optimizer_state_round_trip():
    model = Tagger(sparse=True)
    opt = build_optimizer(model, OptimizerConfig(sparse_embeddings=True))
    model(torch.tensor([1])).backward()
    opt.step()
    state = opt.state_dict()
    other = build_optimizer(model, OptimizerConfig(sparse_embeddings=True))
    other.load_state_dict(state)
    assert len(other.state) == 3  # the table, the weight and the bias
    lazy = optim.Optimizers([torch.optim.SGD(model.out.parameters(), lr=0.1), LazyAdam([model.embed.weight])])
    model(torch.tensor([1])).backward()
    lazy.step()
    again = optim.Optimizers([torch.optim.SGD(model.out.parameters(), lr=0.1), LazyAdam([model.embed.weight])])
    again.load_state_dict(lazy.state_dict())
    assert len(again.optimizers[1].state) == 1


def test_decay_schedule_halves_from_the_start_epoch():
    opt = build_optimizer(Tagger(False), OptimizerConfig(method=Method.SGD, lr=1.0))
    schedule = LRSchedule(opt, ScheduleConfig(kind=Schedule.DECAY, factor=0.5, start_epoch=4))
    lrs = []
    for _ in range(6):
        schedule.step()
        lrs.append(schedule.lr)
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.25, 0.125]


def test_plateau_schedule_and_its_state():
    opt = build_optimizer(Tagger(False), OptimizerConfig(method=Method.SGD, lr=1.0))
    schedule = LRSchedule(opt, ScheduleConfig(kind=Schedule.PLATEAU, factor=0.1, patience=1), minimize=True)
    for metric in (5.0, 4.0, 4.5, 4.6):
        schedule.step(metric)
    assert schedule.lr == pytest.approx(0.1)
    copy = LRSchedule(opt, ScheduleConfig(kind=Schedule.PLATEAU, factor=0.1, patience=1))
    copy.load_state_dict(schedule.state_dict())
    assert copy.best == 4.0 and copy.stale == 0
    with pytest.raises(ValueError, match="development metric"):
        schedule.step(None)
    with pytest.raises(ValueError, match="factor"):
        LRSchedule(opt, ScheduleConfig(factor=0))


def test_adam_takes_sub_normal_moments_as_zero_and_restores_the_mode():
    """Moments of unused rows decay below the smallest normal float; the C++ pass takes
    them as zero (arithmetic on them is many times slower) and leaves the thread's
    floating-point mode as it found it."""
    tiny = torch.finfo(torch.float32).tiny
    p = torch.zeros(40, requires_grad=True)
    opt = Adam([p], lr=0.1)
    p.grad = torch.zeros(40)
    opt.step()
    opt.state[p]["exp_avg"].fill_(tiny / 8)  # sub-normal
    p.grad = torch.zeros(40)
    opt.step()
    assert torch.all(opt.state[p]["exp_avg"] == 0)
    assert torch.all(p == 0)
    assert float(torch.tensor([tiny]) / 8) > 0  # the Python side still computes sub-normals


class SoftmaxModel(nn.Module):
    def __init__(self, vocab, hidden, dtype):
        super().__init__()
        self.inp = nn.Linear(5, hidden, dtype=dtype)
        self.out = nn.Linear(hidden, vocab, dtype=dtype)

    def forward(self, x, targets):
        return linear_cross_entropy(torch.tanh(self.inp(x)), self.out.weight, self.out.bias, targets)


@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_step_in_backward_equals_step(decoupled, dtype, threads):
    """The softmax weight updated inside the backward pass (blocks of rows, the last one
    partial, split across threads) ends where step() takes it, as do the other parameters,
    whose gradients still flow through the weight before its update; no gradient is stored."""
    torch.manual_seed(0)
    ours, ref = SoftmaxModel(1000, 256, dtype), SoftmaxModel(1000, 256, dtype)  # 7 blocks of 128 rows, and 104
    ref.load_state_dict(ours.state_dict())
    opt = Adam(ours.parameters(), lr=0.01, weight_decay=0.1, decoupled=decoupled)
    reference = Adam(ref.parameters(), lr=0.01, weight_decay=0.1, decoupled=decoupled)
    opt.step_in_backward(ours.out.weight)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n in (7, 1, 30):
            x, t = torch.randn(n, 5, dtype=dtype), torch.randint(0, 1000, (n,))
            for model, o in ((ours, opt), (ref, reference)):
                o.zero_grad()
                model(x, t).mul(0.5).backward()  # an upstream scale
                o.step()
            assert ours.out.weight.grad is None and ref.out.weight.grad is not None
    finally:
        torch.set_num_threads(saved)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, **tol)
    assert opt.state[ours.out.weight]["step"] == 3


@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
def test_step_in_backward_under_autocast_equals_the_unfused_bfloat16_step(decoupled):
    """Under bfloat16 autocast the fused step uses the same two bfloat16 products as the
    unfused layer, and its update writes the weight's bfloat16 copy for the next forward
    pass: the runs agree over steps that alternate bfloat16 (80 rows) and float32 (8 rows,
    which must not reuse a stale copy) and an in-place change of the weight."""
    torch.manual_seed(0)
    ours, ref = SoftmaxModel(1000, 256, torch.float32), SoftmaxModel(1000, 256, torch.float32)
    ref.load_state_dict(ours.state_dict())
    opt = Adam(ours.parameters(), lr=0.01, weight_decay=0.1, decoupled=decoupled)
    reference = Adam(ref.parameters(), lr=0.01, weight_decay=0.1, decoupled=decoupled)
    opt.step_in_backward(ours.out.weight)
    for k, rows in enumerate((80, 80, 8, 80, 80)):
        if k == 4:
            with torch.no_grad():
                for model in (ours, ref):
                    model.out.weight.mul_(0.5)  # bumps the version: the copy is stale
        x, t = torch.randn(rows, 5), torch.randint(0, 1000, (rows,))
        for model, o in ((ours, opt), (ref, reference)):
            o.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(x, t)
            loss.backward()
            o.step()
        assert ours.out.weight.grad is None and ref.out.weight.grad is not None
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    handle = ours.out.weight.rnnkit_step_in_backward
    assert torch.equal(handle.low_weight(ours.out.weight), ours.out.weight.bfloat16())


def test_step_in_backward_refuses_a_tied_weight_and_falls_back_when_it_cannot_fuse():
    torch.manual_seed(0)
    model = SoftmaxModel(50, 8, torch.float32)
    opt = Adam(model.parameters())
    opt.step_in_backward(model.out.weight)
    x, t = torch.randn(4, 5), torch.randint(0, 50, (4,))
    (model(x, t) + model.out.weight[0].sum()).backward()  # the weight also used elsewhere
    with pytest.raises(RuntimeError, match="tied weight"):
        opt.step()
    opt.zero_grad()
    before = model.out.weight.detach().clone()
    model.out.weight.grad = torch.zeros_like(model.out.weight)  # a gradient already there: accumulated into
    model(x, t).backward()
    assert model.out.weight.grad.abs().sum() > 0 and torch.equal(model.out.weight, before)
    opt.step()
    assert not torch.equal(model.out.weight, before)
    copy = pickle.loads(pickle.dumps(model.out.weight))  # the optimizer does not travel with it
    assert copy.rnnkit_step_in_backward is None
    with pytest.raises(ValueError, match="not one of"):
        opt.step_in_backward(nn.Parameter(torch.zeros(3)))
    with pytest.raises(RuntimeError, match="another optimizer"):  # the binding would silently win
        Adam(model.parameters()).step()
    del model.out.weight.rnnkit_step_in_backward
    Adam(model.parameters()).step()
