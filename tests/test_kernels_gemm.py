"""rnnkit.kernels.gemm: each routed product against the torch function it stands for, value
and gradients, on both sides of the size rule; what never routes (float64, autocast);
and a cell above the size rule against torch.nn's with copied weights; the extension's rule is the same."""

import pytest
import torch
from torch.nn import functional as F

from rnnkit.cells import LSTMCell
from rnnkit.kernels import fused, gemm

needs_onednn = pytest.mark.skipif(gemm._onednn() is None, reason="this torch has no oneDNN matmul")


def _grads(f, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    y = f(*tensors)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    y.backward(g)
    return y.detach(), [t.grad for t in tensors if t is not None]


@pytest.mark.parametrize("rows", [3, 200], ids=["below-rule", "above-rule"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sliced", [False, True], ids=["weight", "column-slice-of-a-weight"])
def test_linear_equals_f_linear_with_gradients(rows, bias, sliced):
    torch.manual_seed(0)
    x, w = torch.randn(2, rows, 96), torch.randn(128, 160 if sliced else 96)
    b = torch.randn(128) if bias else None
    cut = (lambda w: w[:, 32:128]) if sliced else (lambda w: w)  # a slice's strides: copied for oneDNN
    y, grads = _grads(lambda x, w, b: gemm.linear(x, cut(w), b), x, w, b)
    y_ref, grads_ref = _grads(lambda x, w, b: F.linear(x, cut(w), b), x, w, b)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-4)
    for a, r in zip(grads, grads_ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("rows", [3, 300], ids=["below-rule", "above-rule"])
def test_mm_and_addmm_equal_torch(rows):
    torch.manual_seed(0)
    a, b, c = torch.randn(rows, 128), torch.randn(256, 128).t(), torch.randn(rows, 256)
    y, grads = _grads(gemm.mm, a, b)
    y_ref, grads_ref = _grads(torch.mm, a, b)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-4)
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-3)
    y, grads = _grads(gemm.addmm, c, a, b)
    y_ref, grads_ref = _grads(torch.addmm, c, a, b)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-4)
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-3)


@needs_onednn
def test_the_size_rule_decides_which_gemm_runs():
    x, w = torch.randn(300, 128), torch.randn(256, 128)
    assert x.numel() * w.shape[0] >= gemm.ONEDNN_MACS
    y = gemm.linear(x.requires_grad_(), w)
    assert type(y.grad_fn).__name__ == "_LinearBackward"
    small = gemm.linear(torch.randn(2, 128, requires_grad=True), w)
    assert type(small.grad_fn).__name__ != "_LinearBackward"


def test_float64_and_autocast_are_torch_itself():
    x, w = torch.randn(300, 128, dtype=torch.float64, requires_grad=True), torch.randn(256, 128, dtype=torch.float64)
    assert type(gemm.linear(x, w).grad_fn).__name__ != "_LinearBackward"
    torch.autograd.gradcheck(lambda x: gemm.linear(x, w[:8, :]), (x[:3].detach().requires_grad_(),))
    x32 = torch.randn(300, 128, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = gemm.linear(x32, torch.randn(256, 128))
    assert y.dtype == torch.bfloat16


def test_a_cell_above_the_rule_matches_torch_lstmcell():
    torch.manual_seed(0)
    cell, ref = LSTMCell(256, 256), torch.nn.LSTMCell(256, 256)
    with torch.no_grad():
        ref.weight_ih.copy_(cell.weight_ih)
        ref.weight_hh.copy_(cell.weight_hh)
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    x, h, c = torch.randn(64, 256), torch.randn(64, 256), torch.randn(64, 256)
    assert x.shape[0] * 256 * 1024 >= gemm.ONEDNN_MACS
    y, (_, c1) = cell(x, (h, c))
    h_ref, c_ref = ref(x, (h, c))
    torch.testing.assert_close(y, h_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c1, c_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.extension
def test_the_extension_applies_the_same_size_rule():
    assert fused.extension().ONEDNN_MACS == gemm.ONEDNN_MACS
