"""Optimizers and schedules: each method steps; SGD and RMSProp (with momentum and weight
decay) against their update computed by hand; sparse embeddings touch only the rows a batch
used (DyNet's semantics) where dense Adam moves all seen rows; DECAY and PLATEAU schedules;
bad settings name the setting."""

import pytest
import torch
from torch import nn

from rnnkit import optim
from rnnkit.kernels import fused
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


def _two_steps(method, **config):
    """Two updates of one parameter p0 = [1, -2, 3] by the configured optimizer, with the
    gradients g1 = [0.5, 0.5, -1] and g2 = [1, -0.25, 0.5]."""
    p = nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    model = nn.Module()
    model.p = p
    opt = build_optimizer(model, OptimizerConfig(method=method, **config))
    for g in ([0.5, 0.5, -1.0], [1.0, -0.25, 0.5]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach()


def test_sgd_with_momentum_and_weight_decay_by_hand():
    lr, mu, wd = 0.5, 0.9, 0.1
    p, g1, g2 = [1.0, -2.0, 3.0], [0.5, 0.5, -1.0], [1.0, -0.25, 0.5]
    buf = [a + wd * x for a, x in zip(g1, p)]  # the first step's buffer is the gradient itself
    p = [x - lr * b for x, b in zip(p, buf)]
    buf = [mu * b + a + wd * x for b, a, x in zip(buf, g2, p)]
    p = [x - lr * b for x, b in zip(p, buf)]
    got = _two_steps(Method.SGD, lr=lr, momentum=mu, weight_decay=wd)
    torch.testing.assert_close(got, torch.tensor(p, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_rmsprop_with_momentum_and_weight_decay_by_hand():
    lr, mu, wd, alpha, eps = 0.01, 0.5, 0.1, 0.99, 1e-8
    p, v, buf = [1.0, -2.0, 3.0], [0.0] * 3, [0.0] * 3
    for g in ([0.5, 0.5, -1.0], [1.0, -0.25, 0.5]):
        g = [a + wd * x for a, x in zip(g, p)]
        v = [alpha * s + (1 - alpha) * a * a for s, a in zip(v, g)]
        buf = [mu * b + a / (s ** 0.5 + eps) for b, a, s in zip(buf, g, v)]
        p = [x - lr * b for x, b in zip(p, buf)]
    got = _two_steps(Method.RMSPROP, lr=lr, momentum=mu, weight_decay=wd)
    torch.testing.assert_close(got, torch.tensor(p, dtype=torch.float64), rtol=1e-12, atol=1e-12)


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


@pytest.mark.extension
def test_adam_is_the_default_on_the_cpu():
    assert isinstance(build_optimizer(Tagger(sparse=False), OptimizerConfig()), Adam)
    sparse = build_optimizer(Tagger(sparse=True), OptimizerConfig(method=Method.ADAMW, sparse_embeddings=True))
    assert isinstance(sparse, Adam) and sparse.param_groups[0]["decoupled"]
    assert sparse.param_groups[1]["weight_decay"] == 0  # the tables' group


def test_without_the_extension_torchs_fused_adam_and_lazy_adam(monkeypatch):
    monkeypatch.setattr(fused, "extension", lambda: None)
    opt = build_optimizer(Tagger(sparse=False), OptimizerConfig(method=Method.ADAMW))
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["fused"]
    sparse = build_optimizer(Tagger(sparse=True), OptimizerConfig(sparse_embeddings=True))
    assert [type(o) for o in sparse.optimizers] == [torch.optim.Adam, LazyAdam]
    with pytest.raises(ValueError, match="sparse_embeddings=True"):  # the dense rule needs rnnkit's Adam
        build_optimizer(Tagger(sparse=True), OptimizerConfig())


@pytest.mark.extension
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


@pytest.mark.extension
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
