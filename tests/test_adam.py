"""rnnkit's Adam family (rnnkit.adam) against torch's optimizers: Adam and AdamW, the
lazy row update against SparseAdam, the dense update of a sparse gradient's table,
sub-normal moments, and torch's step hooks and profiler region."""

import pytest
import torch

from rnnkit.adam import Adam, LazyAdam
from rnnkit.kernels import fused
from rnnkit.optim import OptimizerConfig, build_optimizer

from reference import TinyTagger as Tagger


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


@pytest.mark.extension
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


@pytest.mark.extension
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


@pytest.mark.extension
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


@pytest.mark.extension
def test_step_hooks_and_the_profiler_region_work():
    """Adam is a torch optimizer like any other: registered step hooks run, and under the
    profiler the step is its usual region."""
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
