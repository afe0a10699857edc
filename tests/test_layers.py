"""Layers: equal to torch.nn with copied weights (outputs, states, every gradient),
equal to the plain loop over the cell, batch-invariant, chunk = whole, gradcheck."""

from pathlib import Path

import pytest
import torch
from torch import nn

from rnnkit import GRU, LSTM, RNN, Activation
from rnnkit.kernels import Kernel, fused, gemm, native

from reference import TORCH_H, TORCH_I, TORCH_MODULES, as_tuple, gradcheck_module, loop_over_cells, run_torch

I, H = TORCH_I, TORCH_H
LENGTHS = [6, 2, 9, 1, 4]  # padded to T = 9, unsorted
T = max(LENGTHS)

CONVERT = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}
KERNELS = [Kernel.EXTENSION, Kernel.TORCH, Kernel.REFERENCE]  # every implementation, each tested alone


def use(layer, kernel):
    """Make ``layer`` run ``kernel`` (torch's kernels compute only the standard cells)."""
    if kernel is Kernel.TORCH and not native.supports(layer.cells[0]):
        pytest.skip("torch's kernels do not compute this cell")
    if kernel is Kernel.EXTENSION and not fused.available():
        pytest.skip("the extension is not built")
    layer.kernel = kernel


def _bias_grad(module, name):
    """Gradient of rnnkit's single bias: torch's bias_ih grad (equal to bias_hh's)."""
    return getattr(module, name.replace("bias", "bias_ih")).grad


@pytest.mark.parametrize("kind", TORCH_MODULES)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_equals_torch_with_copied_weights(kind, kernel):
    ref = TORCH_MODULES[kind]()
    layer = CONVERT[type(ref)].from_torch(ref)
    use(layer, kernel)
    x = torch.randn(len(LENGTHS), T, I)
    y_ref, s_ref = run_torch(ref, x, LENGTHS)
    y, s = layer(x, torch.tensor(LENGTHS))
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(as_tuple(s), as_tuple(s_ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the same scalar function of outputs and states, backpropagated through both
    weights = [torch.randn_like(t) for t in (y, *as_tuple(s))]
    sum(((t * w).sum() for t, w in zip((y, *as_tuple(s)), weights))).backward()
    sum(((t * w).sum() for t, w in zip((y_ref, *as_tuple(s_ref)), weights))).backward()
    D = 2
    for k, cell in enumerate(layer.cells):
        sfx = f"_l{k // D}" + ("_reverse" if k % D else "")
        for name, p in cell.named_parameters():
            ref_grad = (_bias_grad(ref, name + sfx) if name == "bias"
                        else getattr(ref, name + sfx).grad)
            torch.testing.assert_close(p.grad, ref_grad, rtol=1e-4, atol=1e-5, msg=f"{kind} {name}{sfx}")


LAYERS = {  # kind -> (input size, hidden size) -> layer
    "rnn": lambda i, h: RNN(i, h, 2, bidirectional=True),
    "rnn_sigmoid": lambda i, h: RNN(i, h, 2, bidirectional=True, activation=Activation.SIGMOID),
    "lstm": lambda i, h: LSTM(i, h, 2, bidirectional=True),
    "lstm_peephole": lambda i, h: LSTM(i, h, 2, bidirectional=True, peephole=True),
    "lstmp_peephole": lambda i, h: LSTM(i, h, 3, bidirectional=True, peephole=True, proj_size=2),
    "gru": lambda i, h: GRU(i, h, 2, bidirectional=True),
    "gru_learned_h0": lambda i, h: GRU(i, h, 2, bidirectional=True, learn_initial_state=True),
}


def _randomise_initial_state(layer):
    if layer.initial_state is not None:
        with torch.no_grad():
            for p in layer.initial_state:
                p.normal_()


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_layer_equals_plain_loop_over_its_cell(kind, kernel):
    layer = LAYERS[kind](I, H)
    use(layer, kernel)
    _randomise_initial_state(layer)
    x = torch.randn(len(LENGTHS), T, I)
    y, s = layer(x, torch.tensor(LENGTHS))
    y_ref, s_ref = loop_over_cells(layer, x, LENGTHS)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(as_tuple(s), as_tuple(s_ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_given_state_equals_plain_loop(kind, kernel):
    layer = LAYERS[kind](I, H)
    use(layer, kernel)
    x = torch.randn(len(LENGTHS), T, I)
    state = tuple(torch.randn(shape) for shape in layer.state_shapes(len(LENGTHS)))
    state = state[0] if len(state) == 1 else state
    y, s = layer(x, torch.tensor(LENGTHS), state)
    y_ref, s_ref = loop_over_cells(layer, x, LENGTHS, state)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(as_tuple(s), as_tuple(s_ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_batch_invariance(kind, kernel):
    """Each sequence alone gives what it gives inside a batch of longer and shorter ones."""
    layer = LAYERS[kind](I, H)
    use(layer, kernel)
    _randomise_initial_state(layer)
    x = torch.randn(len(LENGTHS), T, I)
    y, s = layer(x, torch.tensor(LENGTHS))
    for b, n in enumerate(LENGTHS):
        y_b, s_b = layer(x[b:b + 1, :n])
        torch.testing.assert_close(y[b, :n], y_b[0], rtol=1e-5, atol=1e-6)
        assert torch.all(y[b, n:] == 0)
        for a, c in zip(as_tuple(s), as_tuple(s_b)):
            torch.testing.assert_close(a[:, b], c[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_padding_never_leaks(kind, kernel):
    """Whatever the padding holds (even NaN), outputs, states and gradients do not change."""
    layer = LAYERS[kind](I, H)
    use(layer, kernel)
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), T, I)
    pad = torch.arange(T) >= lengths.unsqueeze(1)  # (B, T)
    results = []
    for fill in (0.0, float("nan")):
        layer.zero_grad()
        xf = x.masked_fill(pad.unsqueeze(2), fill).requires_grad_()
        y, s = layer(xf, lengths)
        (y.sum() + sum(t.sum() for t in as_tuple(s))).backward()
        results.append((y.detach(), [p.grad.clone() for p in layer.parameters()], xf.grad))
    (y0, g0, xg0), (y1, g1, xg1) = results
    torch.testing.assert_close(y0, y1)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(xg0, xg1)
    assert torch.all(xg1[pad] == 0)


UNIDIRECTIONAL = {
    "rnn": lambda: RNN(I, H, 2),
    "lstm": lambda: LSTM(I, H, 2),
    "lstmp_peephole": lambda: LSTM(I, H, 2, peephole=True, proj_size=3),
    "gru": lambda: GRU(I, H, 2, learn_initial_state=True),
}


@pytest.mark.parametrize("kind", UNIDIRECTIONAL)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_chunked_equals_whole(kind, kernel):
    """Running in chunks with the state carried gives the whole run, even when some
    sequences end inside an earlier chunk (they have length 0 in later chunks)."""
    layer = UNIDIRECTIONAL[kind]()
    use(layer, kernel)
    _randomise_initial_state(layer)
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), T, I)
    y, s = layer(x, lengths)
    state, pieces = None, []
    for start in range(0, T, 4):
        chunk_lengths = (lengths - start).clamp(0, 4)
        chunk = x[:, start:start + 4]
        out, state = layer(chunk, chunk_lengths[:, None].clamp(max=chunk.shape[1])[:, 0], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=1), y, rtol=1e-5, atol=1e-6)
    for a, b in zip(as_tuple(state), as_tuple(s)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_layer_gradcheck_float64(kind, kernel):
    torch.manual_seed(1)
    layer = LAYERS[kind](2, 3).double()  # small: gradcheck perturbs every weight
    use(layer, kernel)
    _randomise_initial_state(layer)
    lengths = torch.tensor([3, 1, 2])
    x = torch.randn(3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck_module(layer, lambda call, x: call(x, lengths), x)


def test_gradcheck_with_given_state():
    layer = LSTM(I, H, 1, peephole=True, proj_size=3).double()
    x = torch.randn(2, 3, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(1, 2, H, dtype=torch.float64, requires_grad=True)
    assert gradcheck_module(layer, lambda call, x, h, c: call(x, torch.tensor([3, 2]), (h, c)), x, h, c)


def test_learned_initial_state_is_trained():
    layer = GRU(I, H, learn_initial_state=True)
    y, _ = layer(torch.randn(2, 3, I))
    y.sum().backward()
    assert layer.initial_state[0].grad.abs().sum() > 0


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.value)
def test_zero_length_sequence_keeps_its_state_and_gives_zeros(kernel):
    layer = LSTM(I, H)
    use(layer, kernel)
    x = torch.randn(2, 4, I)
    h0, c0 = torch.randn(1, 2, H), torch.randn(1, 2, H)
    y, (h, c) = layer(x, torch.tensor([4, 0]), (h0, c0))
    assert torch.all(y[1] == 0)
    assert torch.equal(h[:, 1], h0[:, 1]) and torch.equal(c[:, 1], c0[:, 1])
    y, (h, c) = layer(x, torch.tensor([0, 0]), (h0, c0))
    assert y.shape == (2, 4, H) and torch.all(y == 0) and torch.equal(h, h0)


def test_dropout_between_layers_only_in_training():
    layer = LSTM(I, H, 3, dropout=0.5)
    x = torch.randn(2, 6, I)
    lengths = torch.tensor([6, 3])
    layer.eval()
    y1, _ = layer(x, lengths)
    y2, _ = layer(x, lengths)
    torch.testing.assert_close(y1, y2)
    layer.train()
    y3, _ = layer(x, lengths)
    assert not torch.allclose(y1, y3)
    assert torch.all(y3[1, 3:] == 0)


WIDE = {  # hidden sizes past one vector register, with a partial last vector (40 = 16 + 16 + 8)
    "rnn_relu": lambda: RNN(6, 40, 2, bidirectional=True, activation=Activation.RELU),
    "rnn_sigmoid_no_bias": lambda: RNN(6, 40, activation=Activation.SIGMOID, bias=False),
    "lstm": lambda: LSTM(6, 40, 2, bidirectional=True),
    "lstmp_peephole": lambda: LSTM(6, 40, 2, bidirectional=True, peephole=True, proj_size=24),
    "gru": lambda: GRU(6, 40, 2, bidirectional=True),
    "gru_no_bias": lambda: GRU(6, 40, bias=False),
}


@pytest.mark.extension
@pytest.mark.parametrize("lengths", [LENGTHS, LENGTHS[:3]], ids=["blas-steps", "transposed-steps"])
@pytest.mark.parametrize("kind", WIDE)
def test_extension_equals_reference_on_wide_layers(kind, lengths):
    """The vectorised C++ path (full vectors and a partial one) against the loop over the
    cell in float64: outputs, final states, and the gradient of the input, the initial
    state and every weight; with the per-step products by BLAS (5 rows) and by the
    transposed weight (at most 4 rows, common.h's StepProduct)."""
    torch.manual_seed(3)
    results = []
    for kernel in (Kernel.EXTENSION, Kernel.REFERENCE):
        torch.manual_seed(3)
        layer = WIDE[kind]().double()
        layer.kernel = kernel
        x = torch.randn(len(lengths), T, 6, dtype=torch.float64, requires_grad=True)
        state = tuple(torch.randn(shape, dtype=torch.float64, requires_grad=True)
                      for shape in layer.state_shapes(len(lengths)))
        y, s = layer(x, torch.tensor(lengths), state[0] if len(state) == 1 else state)
        weights = [torch.randn_like(t, generator=torch.Generator().manual_seed(k))
                   for k, t in enumerate((y, *as_tuple(s)))]
        sum((t * w).sum() for t, w in zip((y, *as_tuple(s)), weights)).backward()
        results.append([y, *as_tuple(s), x.grad, *(t.grad for t in state), *(p.grad for p in layer.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.extension
@pytest.mark.parametrize("kind", WIDE)
def test_extension_equals_reference_in_float32_with_many_rows(kind):
    """Float32, whose per-step products of a small weight run on common.h's tiled
    RowCombine for any number of rows (on AVX-512), and whose gates use the fast sigmoid
    and tanh: against the loop over the cell, every gradient included. The running rows
    fall from 11 to 1, through every tail of the 4-row tiles."""
    lengths = torch.tensor([9, 9, 8, 8, 7, 6, 5, 4, 3, 2, 1])
    for a, b in zip(*(_run_with_gradients(WIDE[kind], kernel, (len(lengths), 9, 6), lengths, seed=5)
                      for kernel in (Kernel.EXTENSION, Kernel.REFERENCE))):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5)


def _run_with_gradients(make, kernel: Kernel, shape, lengths, seed: int) -> list[torch.Tensor]:
    """A float32 layer from ``make`` on ``kernel``: its outputs, final states, and the
    gradients of the input and every weight for random weightings of the outputs."""
    torch.manual_seed(seed)
    layer = make()
    layer.kernel = kernel
    x = torch.randn(*shape, requires_grad=True)
    y, s = layer(x, lengths)
    weights = [torch.randn_like(t, generator=torch.Generator().manual_seed(k)) for k, t in enumerate((y, *as_tuple(s)))]
    sum((t * w).sum() for t, w in zip((y, *as_tuple(s)), weights)).backward()
    return [y, *as_tuple(s), x.grad, *(p.grad for p in layer.parameters())]


ABOVE_ONEDNN = {  # per-step products of at least common.h's kOneDnnMacs at the full batch of 64
    "lstm": lambda: LSTM(128, 128, bidirectional=True),
    "lstmp": lambda: LSTM(128, 128, proj_size=64),
    "gru": lambda: GRU(128, 128),
    "elman": lambda: RNN(128, 256),
}


@pytest.mark.extension
@pytest.mark.parametrize("kind", ABOVE_ONEDNN)
def test_extension_equals_reference_above_the_onednn_rule(kind):
    """Float32 layers whose products (the input projection, the weight gradients, the
    per-step products while most rows run) go to oneDNN's matmul in the extension, against
    the loop over the cell: outputs, final states and every gradient; the lengths let the
    per-step products cross back under the rule."""
    lengths = torch.tensor([6] * 40 + [4] * 16 + [1] * 8)
    assert 64 * 128 * 512 >= gemm.ONEDNN_MACS > 8 * 256 * 256
    for a, b in zip(*(_run_with_gradients(ABOVE_ONEDNN[kind], kernel, (64, 6, 128), lengths, seed=4)
                      for kernel in (Kernel.EXTENSION, Kernel.REFERENCE))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_auto_runs_the_extension_on_the_cpu():
    layer = LSTM(I, H, peephole=True)
    x = torch.randn(2, 3, I)
    if not fused.available():
        pytest.skip("the extension is not built")
    assert layer.kernel_for(x) is Kernel.EXTENSION
    assert layer.kernel_for(x.double()) is Kernel.EXTENSION
    assert layer.kernel_for(x.bfloat16()) is Kernel.REFERENCE  # peepholes: only the loop, in bfloat16
    assert LSTM(I, H).kernel_for(x.bfloat16()) is Kernel.TORCH


@pytest.mark.extension
def test_without_the_extension_layers_fall_back_and_say_so_once(monkeypatch):
    from rnnkit.kernels import jit

    def fail(*args):
        raise RuntimeError("Error building extension 'rnnkit_recurrent'")

    fused.extension.cache_clear()
    monkeypatch.setattr(jit, "load", fail)
    try:
        layer = LSTM(I, H, peephole=True)
        x = torch.randn(2, 4, I)
        with pytest.warns(RuntimeWarning, match="could not be built") as record:
            y, _ = layer(x, torch.tensor([4, 2]))
            layer(x)
        assert len(record) == 1
        layer.kernel = Kernel.REFERENCE
        torch.testing.assert_close(y, layer(x, torch.tensor([4, 2]))[0])
        layer.kernel = Kernel.EXTENSION
        with pytest.raises(ValueError, match="kernel=EXTENSION"):
            layer(x)
    finally:
        fused.extension.cache_clear()


@pytest.mark.parametrize("make", [lambda: LSTM(3, 64, peephole=True), lambda: GRU(3, 64),
                                  lambda: RNN(3, 64, activation=Activation.RELU)], ids=["lstm", "gru", "elman"])
@pytest.mark.extension
def test_extension_splits_large_batches_across_threads(make):
    """With two threads the C++ row loops of a 300-sequence batch run in parallel chunks:
    the result must equal the reference loop's (no row written by two threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lengths = torch.randint(1, 5, (300,), generator=torch.Generator().manual_seed(0))
        results = []
        for kernel in (Kernel.EXTENSION, Kernel.REFERENCE):
            torch.manual_seed(4)
            layer = make().double()
            layer.kernel = kernel
            x = torch.randn(300, 4, 3, dtype=torch.float64, requires_grad=True)
            y, _ = layer(x, lengths)
            (y * torch.randn_like(y, generator=torch.Generator().manual_seed(1))).sum().backward()
            results.append([y, x.grad, *(p.grad for p in layer.parameters())])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.extension
@pytest.mark.parametrize("rows", [21, 22], ids=["at_threshold", "above_the_batch"])
def test_extension_under_bfloat16_autocast_projects_in_bfloat16(monkeypatch, rows):
    """Under bfloat16 autocast the C++ layer runs its input projections (forward and
    backward) in bfloat16 and the recurrence in float32 for a batch of at least
    LOW_PRECISION_ROWS steps: outputs and gradients stay float32 and close to the float32
    run, and differ from it (the products did change). Below it, the run is float32's."""
    from rnnkit.kernels import fused

    monkeypatch.setattr(fused, "LOW_PRECISION_ROWS", rows)  # the batch below has 3 x 7 = 21 steps
    torch.manual_seed(5)
    layer = LSTM(16, 32, bidirectional=True)
    layer.kernel = Kernel.EXTENSION
    x = torch.randn(3, 7, 16)
    lengths = torch.tensor([7, 4, 5])
    results = []
    for low in (False, True):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            y, (h, c) = layer(xi, lengths)
        y.pow(2).sum().backward()
        results.append([y, h, c, xi.grad, *(p.grad.clone() for p in layer.parameters())])
        layer.zero_grad()
    for a, b in zip(*results):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b, a, rtol=0.05, atol=0.02)
    assert torch.equal(results[0][0], results[1][0]) == (rows > 21)


@pytest.mark.extension
def test_extension_restores_mkl_thread_setting():
    """A layer with a small per-step product runs its products on MKL's calling thread
    only (csrc/common.h SerialBlas); the thread's own MKL setting is put back after the
    forward and the backward pass, and a large layer leaves it alone."""
    import ctypes

    try:
        mkl = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        set_local = mkl.MKL_Set_Num_Threads_Local  # by value; returns the previous setting
    except (OSError, AttributeError):
        pytest.skip("torch is not linked with MKL here")
    set_local.argtypes, set_local.restype = [ctypes.c_int], ctypes.c_int
    previous = set_local(3)
    try:
        for layer in (LSTM(4, 8, bidirectional=True), LSTM(4, 256)):  # serial per step / MKL's threads
            layer.kernel = Kernel.EXTENSION
            x = torch.randn(2, 5, 4, requires_grad=True)
            layer(x, torch.tensor([5, 3]))[0].sum().backward()
            assert set_local(3) == 3
    finally:
        set_local(previous)
