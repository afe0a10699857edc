"""rnnkit's Adam family (rnnkit.adam) against torch's optimizers: Adam and AdamW, the
lazy row update against SparseAdam, a table's deferred dense update bit for bit
against the update of every row every step, and the step fused into the softmax's
backward pass against step()."""

import copy
import pickle

import pytest
import torch
from torch import nn

from rnnkit.adam import Adam, LazyAdam
from rnnkit.fused_softmax import linear_cross_entropy
from rnnkit.kernels import fused
from rnnkit.optim import OptimizerConfig, build_optimizer


class Tagger(nn.Module):
    def __init__(self, sparse, rows=10, width=3, dtype=torch.float32):
        super().__init__()
        self.embed = nn.Embedding(rows, width, sparse=sparse, dtype=dtype)
        self.out = nn.Linear(width, 2, dtype=dtype)

    def forward(self, ids):
        return self.out(self.embed(ids)).pow(2).sum()


@pytest.mark.parametrize("path", ["extension", "python"])
def test_lazy_adam_equals_torch_sparse_adam(path, monkeypatch):
    """The reference: torch.optim.SparseAdam, over steps with repeated and absent rows;
    the C++ update and the Python one (used without the extension)."""
    if path == "python":
        monkeypatch.setattr(fused, "extension", lambda: None)
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



def _threads(n):
    """Sets torch's thread count; returns the previous one."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    return saved


def _adam(model, **kw):
    return Adam([{"params": list(model.parameters()), "lazy": False}], lr=0.05, **kw)


@pytest.mark.parametrize(("decoupled", "weight_decay"), [(False, 0.0), (False, 0.1), (True, 0.1)],
                         ids=["adam", "adam-l2", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_deferred_rows_are_the_dense_update_bit_for_bit(decoupled, weight_decay, dtype, threads):
    """A table whose rows catch up when next looked up gives, bit for bit, the losses, values
    and moments of the update of every row every step: over steps with repeated, absent and
    never-used rows, a new learning rate, a step with a dense gradient, and a history short
    enough to restart several times; at 2 threads the rows are split between them."""
    torch.manual_seed(0)
    ours, ref = Tagger(True, 3000, 20, dtype), Tagger(True, 3000, 20, dtype)
    ref.load_state_dict(ours.state_dict())
    opt, reference = (_adam(m, weight_decay=weight_decay, decoupled=decoupled) for m in (ours, ref))
    opt.defer_rows(ours.embed, history=5)
    saved = _threads(threads)
    try:
        for step in range(24):
            ids = torch.randint(0, 3000 if step % 3 else 40, (300,))
            if step == 12:
                for group in opt.param_groups + reference.param_groups:
                    group["lr"] = 0.01
            if step == 17:
                opt.catch_up()  # the weight is read directly below: every row up to date first
            losses = []
            for model, o in ((ours, opt), (ref, reference)):
                o.zero_grad()
                loss = model(ids) + (model.embed.weight.pow(2).sum() if step == 17 else 0)
                loss.backward()
                o.step()
                losses.append(loss)
            assert torch.equal(*losses)
    finally:
        torch.set_num_threads(saved)
    assert not torch.equal(ours.embed.weight, ref.embed.weight)  # rows not used lately are behind
    opt.catch_up()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)
        assert torch.equal(opt.state[a]["exp_avg"], reference.state[b]["exp_avg"])
        assert torch.equal(opt.state[a]["exp_avg_sq"], reference.state[b]["exp_avg_sq"])


def test_deferred_rows_are_up_to_date_wherever_the_table_is_read():
    """The table's and the optimizer's state_dict are every row's; a run resumed from them
    (with its own deferral) continues as the uninterrupted dense update; loading into the
    table first applies what was pending; a pickled or copied model leaves the optimizer behind."""
    torch.manual_seed(0)
    ours, ref = Tagger(True, 500, 8), Tagger(True, 500, 8)
    ref.load_state_dict(ours.state_dict())
    opt, reference = _adam(ours), _adam(ref)
    opt.defer_rows(ours.embed)

    def train(pairs, steps):
        for _ in range(steps):
            ids = torch.randint(0, 500, (7,))
            for model, o in pairs:
                o.zero_grad()
                model(ids).backward()
                o.step()

    train([(ours, opt), (ref, reference)], 6)
    saved_model, saved_opt = ours.state_dict(), opt.state_dict()
    assert torch.equal(saved_model["embed.weight"], ref.embed.weight)
    assert torch.equal(saved_opt["state"][0]["exp_avg"], reference.state[ref.embed.weight]["exp_avg"])
    resumed = Tagger(True, 500, 8)
    resumed.load_state_dict(saved_model)
    again = _adam(resumed)
    again.defer_rows(resumed.embed)
    again.load_state_dict(saved_opt)
    train([(resumed, again), (ref, reference)], 5)
    again.catch_up()
    assert torch.equal(resumed.embed.weight, ref.embed.weight)
    for clone in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
        clone(torch.tensor([1, 2]))  # its hooks do nothing
    train([(ours, opt)], 2)
    ours.load_state_dict(saved_model)  # pending steps applied first, then overwritten
    assert torch.equal(ours.embed.weight, saved_model["embed.weight"])


def test_defer_rows_refuses_what_it_cannot_defer():
    model = Tagger(True)
    lazy = Adam(model.parameters())  # lazy=True: the used rows only, nothing to defer
    dense = Tagger(False)
    opt = _adam(model)
    for optimizer, table in ((lazy, model.embed), (_adam(dense), dense.embed), (opt, Tagger(True).embed)):
        with pytest.raises(ValueError, match="nn.Embedding.sparse=True."):
            optimizer.defer_rows(table)
    with pytest.raises(ValueError, match="history"):
        opt.defer_rows(model.embed, history=0)
    opt.defer_rows(model.embed)
    with pytest.raises(ValueError, match="already"):
        opt.defer_rows(model.embed)


def test_step_hooks_and_the_profiler_region_still_work():
    """step() skips torch's wrapper only when it has nothing to do: registered step hooks run,
    and under the profiler the step is its usual region."""
    model = Tagger(False)
    opt = Adam(model.parameters())
    calls = []
    handles = [opt.register_step_pre_hook(lambda *_: calls.append("pre")),
               opt.register_step_post_hook(lambda *_: calls.append("post"))]
    model(torch.tensor([1])).backward()
    before = model.out.weight.detach().clone()
    opt.step()
    assert calls == ["pre", "post"] and not torch.equal(model.out.weight, before)
    for handle in handles:
        handle.remove()
    with torch.profiler.profile() as prof:
        opt.step()
    assert any(e.name == "Optimizer.step#Adam.step" for e in prof.events())
    opt.step()
    assert calls == ["pre", "post"]
