"""linear_cross_entropy and SoftmaxOutput against F.cross_entropy(F.linear(...),
reduction="sum"): the loss and every gradient, with and without bias, in float64 and
float32, chunked unevenly, on the C++ path and the plain-torch path; the module's
parameters as nn.Linear's (names, shapes, the same initial values); bfloat16 under
autocast stays close; bad input."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit import softmax
from rnnkit.softmax import SoftmaxOutput, linear_cross_entropy


def _reference(h, w, b, t):
    return F.cross_entropy(F.linear(h, w, b), t, reduction="sum")


def _grads(fn, h, w, b, t):
    inputs = [x.detach().clone().requires_grad_() for x in (h, w) + ((b,) if b is not None else ())]
    loss = fn(inputs[0], inputs[1], inputs[2] if b is not None else None, t)
    (loss * 0.7).backward()  # a non-unit upstream gradient
    return [loss.detach()] + [x.grad for x in inputs]


@pytest.mark.parametrize("path", ["extension", "torch"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equals_linear_then_cross_entropy(path, bias, dtype, monkeypatch):
    if path == "torch":
        monkeypatch.setattr(softmax.fused, "extension", lambda: None)
    g = torch.Generator().manual_seed(0)
    N, H, V = 23, 5, 37  # chunks of 4: the last one partial
    h, w = torch.randn(N, H, generator=g, dtype=dtype), torch.randn(V, H, generator=g, dtype=dtype)
    b = torch.randn(V, generator=g, dtype=dtype) if bias else None
    t = torch.randint(0, V, (N,), generator=g)
    ours = _grads(lambda *a: linear_cross_entropy(*a, chunk=4), h, w, b, t)
    ref = _grads(_reference, h, w, b, t)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, **tol)


@pytest.mark.parametrize("bias", [True, False])
def test_module_is_a_linear_layer_whose_loss_is_fused(bias):
    """SoftmaxOutput holds nn.Linear's parameters (the same draws from the same seed), its
    logits are the linear layer's, and its forward is their summed cross-entropy."""
    torch.manual_seed(3)
    layer = SoftmaxOutput(6, 11, bias=bias)
    torch.manual_seed(3)
    linear = torch.nn.Linear(6, 11, bias=bias)
    assert dict(layer.named_parameters()).keys() == dict(linear.named_parameters()).keys()
    for a, b in zip(layer.parameters(), linear.parameters()):
        assert torch.equal(a, b)
    h, t = torch.randn(2, 4, 6), torch.randint(0, 11, (8,))
    torch.testing.assert_close(layer.logits(h), linear(h))
    torch.testing.assert_close(layer(h.flatten(0, 1), t), _reference(h.flatten(0, 1), linear.weight, linear.bias, t))
    with pytest.raises(ValueError, match="chunk"):
        SoftmaxOutput(6, 11, chunk=0)


def test_bfloat16_under_autocast_is_close():
    g = torch.Generator().manual_seed(1)
    N = softmax.LOW_PRECISION_ROWS + 5  # enough rows for the bfloat16 products
    h, w, b = torch.randn(N, 16, generator=g), torch.randn(300, 16, generator=g) * 0.3, torch.randn(300, generator=g)
    t = torch.randint(0, 300, (N,), generator=g)
    ref = _grads(_reference, h, w, b, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = _grads(linear_cross_entropy, h, w, b, t)
    for a, r in zip(ours, ref):
        assert a.dtype == r.dtype == torch.float32
        torch.testing.assert_close(a, r, rtol=3e-2, atol=3e-2 * float(r.abs().max()))
    assert not torch.equal(ours[2], _grads(linear_cross_entropy, h, w, b, t)[2])  # bfloat16 products ran
    with torch.autocast("cpu", dtype=torch.bfloat16):  # too few rows: float32 products, exactly
        few = _grads(linear_cross_entropy, h[:5], w, b, t[:5])
    torch.testing.assert_close(few[2], _grads(linear_cross_entropy, h[:5], w, b, t[:5])[2], rtol=0, atol=0)


def test_bfloat16_rows_padded_for_the_products_change_nothing(monkeypatch):
    """Under autocast the products run on rows padded with zeros (few distinct shapes for
    oneDNN): the loss and every gradient equal those of the unpadded products, and the
    padded rows reach no gradient. The padding: a multiple of 16, or of 1/16 of the
    count's power of two; at most 1/8 more rows."""
    assert [softmax._padded_rows(n) for n in (1, 16, 17, 129, 1000, 1025)] == [16, 16, 32, 144, 1024, 1152]
    assert all(n <= softmax._padded_rows(n) <= n * 9 / 8 for n in range(128, 5000))
    g = torch.Generator().manual_seed(2)
    N = softmax.LOW_PRECISION_ROWS + 5  # not a multiple of 16
    h, w, b = torch.randn(N, 16, generator=g), torch.randn(300, 16, generator=g) * 0.3, torch.randn(300, generator=g)
    t = torch.randint(0, 300, (N,), generator=g)
    assert softmax._padded_rows(N) == 80
    runs = []
    for padded in (lambda n: n, softmax._padded_rows):
        monkeypatch.setattr(softmax, "_padded_rows", padded)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            runs.append(_grads(lambda *a: linear_cross_entropy(*a, chunk=32), h, w, b, t))
    for a, r in zip(*runs):
        assert a.shape == r.shape
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()))


def test_no_gradient_wanted_gives_the_loss_only():
    h, w = torch.randn(6, 3), torch.randn(9, 3)
    t = torch.randint(0, 9, (6,))
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, None, t), _reference(h, w, None, t))


def test_bad_input_names_the_problem():
    h, w = torch.randn(4, 3), torch.randn(5, 3)
    with pytest.raises(ValueError, match="targets must be in"):
        linear_cross_entropy(h, w, None, torch.tensor([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="targets must be"):
        linear_cross_entropy(h, w, None, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="weight"):
        linear_cross_entropy(h, torch.randn(5, 4), None, torch.tensor([0, 1, 2, 3]))


def test_a_kept_block_is_reused_only_once_its_tensor_is_freed():
    """kept_empty's blocks go back to a small cache when the last tensor on them is freed,
    and come back for a request they fit (not one under half their size)."""
    kernel = softmax.fused.extension()
    if kernel is None:
        pytest.skip("the extension is not built")
    like = torch.empty(0)
    first = kernel.kept_empty(64, 1000, like)
    address = first.data_ptr()
    view = first[3:]  # a view keeps the block in use
    del first
    assert kernel.kept_empty(64, 1000, like).data_ptr() != address
    del view
    assert kernel.kept_empty(10, 1000, like).data_ptr() != address  # under half its size: a new block
    again = kernel.kept_empty(60, 1000, like)
    assert again.data_ptr() == address and again.shape == (60, 1000) and again.dtype == torch.float32
    assert kernel.kept_empty(2, 3, torch.empty(0, dtype=torch.float64)).dtype == torch.float64


def test_logits_in_kept_blocks_stay_correct_across_steps_and_a_retained_graph(monkeypatch):
    """Every logits buffer in a kept block (KEPT_BYTES 0): two steps and a second backward
    through a retained graph, after another forward pass had taken a block, give the same
    losses and gradients as the unfused layer."""
    monkeypatch.setattr(softmax, "KEPT_BYTES", 0)
    g = torch.Generator().manual_seed(0)
    h, w, b = torch.randn(19, 6, generator=g), torch.randn(41, 6, generator=g), torch.randn(41, generator=g)
    targets = [torch.randint(0, 41, (19,), generator=g) for _ in range(3)]
    for t in targets[:2]:
        for a, r in zip(_grads(linear_cross_entropy, h, w, b, t), _grads(_reference, h, w, b, t)):
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
    grads = []
    for fn in (linear_cross_entropy, _reference):
        hh = h.clone().requires_grad_()
        loss = fn(hh, w, b, targets[0])
        loss.backward(retain_graph=True)
        fn(hh.detach(), w, b, targets[2])  # another step's logits while the graph keeps its own
        loss.backward()
        grads.append(hh.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)
