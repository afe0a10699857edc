"""AdamInLayers against rnnkit's Adam: the softmax weight updated inside the backward pass
ends where step() takes it (float32, float64, bfloat16 autocast, 1 and 2 threads); a
table's rows deferred to their next lookup are the dense update bit for bit, wherever the
table is read; and every combination that would silently give a wrong result raises:
clipping, weight noise, accumulation, a skipped update after the weight moved, a tied
weight. A non-finite loss leaves the weight alone, so the loop's skip is exact."""

import copy
import pickle

import pytest
import torch
from torch import nn

from rnnkit.adam import Adam
from rnnkit.adam_in_layers import AdamInLayers
from rnnkit.batch import Batch
from rnnkit.kernels import fused
from rnnkit.optim import Method, OptimizerConfig, build_optimizer
from rnnkit.settings import SettingError
from rnnkit.softmax import SoftmaxOutput
from rnnkit.train import FitConfig, FitState, StepOutput, TrainingDiverged, check_optimizer, train_batch

from reference import TinyTagger as Tagger

pytestmark = pytest.mark.extension


class SoftmaxModel(nn.Module):
    def __init__(self, vocab, hidden, dtype):
        super().__init__()
        self.inp = nn.Linear(5, hidden, dtype=dtype)
        self.out = SoftmaxOutput(hidden, vocab).to(dtype)

    def forward(self, x, targets):
        return self.out(torch.tanh(self.inp(x)), targets)


def _in_layers(model, softmax=True, tables=(), history=1024, **hyper):
    """AdamInLayers over ``model``, its softmax weight and ``tables`` updated in their layers."""
    return AdamInLayers([{"params": list(model.parameters()), "lazy": False}], model.out if softmax else None,
                        tables, history=history, **hyper)


def _threads(n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    return saved


@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_softmax_weight_in_backward_equals_step(decoupled, dtype, threads):
    """The softmax weight updated inside the backward pass (blocks of rows, the last one
    partial, split across threads) ends where step() takes it, as do the other parameters,
    whose gradients still flow through the weight before its update; no gradient is stored."""
    torch.manual_seed(0)
    ours, ref = SoftmaxModel(1000, 256, dtype), SoftmaxModel(1000, 256, dtype)  # 7 blocks of 128 rows, and 104
    ref.load_state_dict(ours.state_dict())
    opt = _in_layers(ours, lr=0.01, weight_decay=0.1, decoupled=decoupled)
    reference = Adam(ref.parameters(), lr=0.01, weight_decay=0.1, decoupled=decoupled)
    saved = _threads(threads)
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
def test_under_autocast_it_equals_the_unfused_bfloat16_step(decoupled):
    """Under bfloat16 autocast the fused step uses the same two bfloat16 products as the
    unfused layer, and its update writes the weight's bfloat16 copy for the next forward
    pass: the runs agree over steps that alternate bfloat16 (80 rows) and float32 (8 rows,
    which must not reuse a stale copy) and an in-place change of the weight."""
    torch.manual_seed(0)
    ours, ref = SoftmaxModel(1000, 256, torch.float32), SoftmaxModel(1000, 256, torch.float32)
    ref.load_state_dict(ours.state_dict())
    opt = _in_layers(ours, lr=0.01, weight_decay=0.1, decoupled=decoupled)
    reference = Adam(ref.parameters(), lr=0.01, weight_decay=0.1, decoupled=decoupled)
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
    copy_written = opt.in_backward.low_weight(ours.out.weight)
    assert copy_written is not None and torch.equal(copy_written, ours.out.weight.bfloat16())


def test_a_gradient_already_there_is_accumulated_into_and_stepped():
    torch.manual_seed(0)
    model = SoftmaxModel(50, 8, torch.float32)
    opt = _in_layers(model)
    x, t = torch.randn(4, 5), torch.randint(0, 50, (4,))
    before = model.out.weight.detach().clone()
    model.out.weight.grad = torch.zeros_like(model.out.weight)  # the layer cannot fuse: it stores the gradient
    model(x, t).backward()
    assert model.out.weight.grad.abs().sum() > 0 and torch.equal(model.out.weight, before)
    opt.step()
    assert not torch.equal(model.out.weight, before)
    clone = pickle.loads(pickle.dumps(model.out))  # the optimizer does not travel with the layer
    assert clone.update is None and copy.deepcopy(model).out.update is None


def test_what_would_give_wrong_results_raises():
    torch.manual_seed(0)
    model = SoftmaxModel(50, 8, torch.float32)
    opt = _in_layers(model)
    x, t = torch.randn(4, 5), torch.randint(0, 50, (4,))
    (model(x, t) + model.out.weight[0].sum()).backward()  # the weight also used elsewhere: tied
    with pytest.raises(RuntimeError, match="tied weight"):
        opt.step()
    opt.zero_grad()
    model(x, t).backward()
    with pytest.raises(RuntimeError, match="accumulated"):  # a second backward before step()
        model(x, t).backward()
    opt.step()  # the first backward's update
    opt.zero_grad()
    model(x, t).backward()
    with pytest.raises(RuntimeError, match="skipped"):  # zero_grad after the weight moved, without step()
        opt.zero_grad()
    for name, value in (("clip_norm", 1.0), ("clip_value", 1.0), ("weight_noise", 0.1)):
        with pytest.raises(ValueError, match=name):
            check_optimizer(opt, FitConfig(**{name: value}))
    check_optimizer(opt, FitConfig())
    with pytest.raises(ValueError, match="already updated"):
        AdamInLayers(model.parameters(), model.out)
    tied = Tagger(True)
    softmax = SoftmaxOutput(3, 10)
    softmax.weight = tied.embed.weight
    with pytest.raises(ValueError, match="tied"):
        AdamInLayers(tied.parameters(), softmax, [tied.embed])
    dense = Tagger(False)
    with pytest.raises(ValueError, match="sparse=True"):
        AdamInLayers(dense.parameters(), None, [dense.embed])
    with pytest.raises(ValueError, match="among its parameters"):
        AdamInLayers(dense.out.parameters(), None, [Tagger(True).embed])
    with pytest.raises(ValueError, match="history"):
        AdamInLayers(tied.parameters(), None, [tied.embed], history=0)


def test_a_non_finite_loss_leaves_the_weight_alone_and_the_loop_skips_the_update():
    torch.manual_seed(0)
    model = SoftmaxModel(50, 8, torch.float32)
    opt = _in_layers(model)
    before = [p.detach().clone() for p in model.parameters()]

    def poisoned(m, batch, state):
        return StepOutput(m(batch.inputs * float("inf"), batch.targets), 4)

    batch = Batch(torch.randn(4, 5), torch.full((4,), 1), torch.randint(0, 50, (4,)))
    fit_state = FitState()
    _, records = train_batch(model, poisoned, opt, batch, None, fit_state, FitConfig(max_bad_steps=1))
    assert not records[0].finite and fit_state.skipped == 1
    for a, b in zip(model.parameters(), before):
        assert torch.equal(a, b)
    with pytest.raises(TrainingDiverged):
        train_batch(model, poisoned, opt, batch, None, fit_state, FitConfig(max_bad_steps=1))


def test_build_optimizer_takes_the_softmax_and_the_dense_rule_tables():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 4, sparse=True)
            self.rnn = nn.Linear(4, 4)
            self.out = SoftmaxOutput(4, 20)

    model = LM()
    opt = build_optimizer(model, OptimizerConfig(in_layers=True))
    assert isinstance(opt, AdamInLayers) and opt.updates_in_backward
    assert opt.in_backward.param is model.out.weight and list(opt.deferred) == [id(model.embed.weight)]
    assert len([p for g in opt.param_groups for p in g["params"]]) == len(list(model.parameters()))
    lazy = build_optimizer(LM(), OptimizerConfig(in_layers=True, sparse_embeddings=True))  # the table: DyNet's rule
    assert lazy.in_backward is not None and not lazy.deferred and lazy.param_groups[1]["lazy"]
    with pytest.raises(SettingError, match="in_layers needs the adam or adamw optimizer, not sgd"):
        OptimizerConfig(in_layers=True, method=Method.SGD)
    nothing = build_optimizer(Tagger(True), OptimizerConfig(in_layers=True, sparse_embeddings=True))
    assert nothing.in_backward is None and not nothing.deferred  # nothing to take: Adam's steps alone


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
    hyper = {"lr": 0.05, "weight_decay": weight_decay, "decoupled": decoupled}
    opt = _in_layers(ours, softmax=False, tables=[ours.embed], history=5, **hyper)
    reference = _adam(ref, weight_decay=weight_decay, decoupled=decoupled)
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
    opt = _in_layers(ours, softmax=False, tables=[ours.embed], lr=0.05)
    reference = _adam(ref)

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
    again = _in_layers(resumed, softmax=False, tables=[resumed.embed], lr=0.05)
    again.load_state_dict(saved_opt)
    train([(resumed, again), (ref, reference)], 5)
    again.catch_up()
    assert torch.equal(resumed.embed.weight, ref.embed.weight)
    for clone in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
        clone(torch.tensor([1, 2]))  # its hooks do nothing
    train([(ours, opt)], 2)
    ours.load_state_dict(saved_model)  # pending steps applied first, then overwritten
    assert torch.equal(ours.embed.weight, saved_model["embed.weight"])
    assert fused.available()
