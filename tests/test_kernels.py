"""The kernel paths called directly, each against the plain scan over the cell: rnnkit's C++
stack (unsorted lengths, zero-length sequences, a given state), torch's kernels (the
zero-length subset they cannot run, a full batch unpacked); which cells each path computes;
and `python -m rnnkit.kernels.build` reports the extension either way and never fails."""

import os
import subprocess
import sys

import pytest
import torch

from rnnkit import GRU, LSTM, RNN, Activation
from rnnkit.checks import Steps
from rnnkit.kernels import Kernel, fused, native


def _reference(layer, x, lengths, state=None):
    layer.kernel = Kernel.REFERENCE
    return layer(x, lengths, state)


@pytest.mark.extension
@pytest.mark.parametrize("make", [lambda: LSTM(3, 5, 2, bidirectional=True, peephole=True, proj_size=4),
                                  lambda: GRU(3, 5, 2, bidirectional=True), lambda: RNN(3, 5, bias=False)],
                         ids=["lstmp-peephole", "gru", "elman"])
def test_run_stack_equals_the_scan(make):
    torch.manual_seed(0)
    layer = make().double()
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([2, 6, 0, 5])
    state = tuple(torch.randn(s, dtype=torch.float64) for s in layer.state_shapes(4))
    states = [tuple(p[k] for p in state) for k in range(len(layer.cells))]
    y, final = fused.run_stack(list(layer.cells), layer.num_layers, x, Steps.of(lengths, x), states, 0.0, False)
    y_ref, final_ref = _reference(layer, x, lengths, state[0] if len(state) == 1 else state)
    torch.testing.assert_close(y, y_ref)
    for a, b in zip(final, final_ref if isinstance(final_ref, tuple) else (final_ref,)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("lengths", [[3, 0, 5, 1], [5, 5, 5, 5]], ids=["with-an-empty-sequence", "full"])
def test_torch_kernels_equal_the_scan(lengths):
    torch.manual_seed(0)
    layer = LSTM(3, 4, bidirectional=True)
    x = torch.randn(4, 5, 3)
    lengths = torch.tensor(lengths)
    states = [c.zero_state(4, x) for c in layer.cells]
    y, finals = native.run_layer(list(layer.cells), x, Steps.of(lengths, x), states)
    y_ref, (h, c) = _reference(layer, x, lengths)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for d, (hd, cd) in enumerate(finals):
        torch.testing.assert_close(hd, h[d], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(cd, c[d], rtol=1e-5, atol=1e-6)


def test_which_cells_each_path_computes():
    assert native.supports(LSTM(3, 4).cells[0]) and native.supports(GRU(3, 4).cells[0])
    assert not native.supports(LSTM(3, 4, peephole=True).cells[0])
    assert not native.supports(RNN(3, 4, activation=Activation.SIGMOID).cells[0])
    assert not native.supports(RNN(3, 4, bias=False).cells[0])
    x = torch.randn(1, 2, 3)
    cell = LSTM(3, 4, peephole=True).cells[0]
    assert fused.supports(cell, x) == fused.available()
    assert not fused.supports(cell, x.bfloat16()) and not fused.supports(cell, x.to("meta"))


@pytest.mark.parametrize("disabled", [False, True])
def test_build_command_reports_and_never_fails(disabled):
    env = {**os.environ, "RNNKIT_NO_EXTENSION": "1"} if disabled else dict(os.environ)
    if not disabled and not fused.available():
        pytest.skip("the extension is not built")
    result = subprocess.run([sys.executable, "-m", "rnnkit.kernels.build"], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0
    if disabled:
        assert "NOT available" in result.stderr
    else:
        assert "fused C++ recurrences ready" in result.stdout
