"""Bad input to the layers raises a ValueError that names the argument and what was expected."""

import pytest
import torch

from rnnkit import GRU, LSTM, RNN, TDNN, Jordan
from rnnkit.settings import SettingError

B, T, I, H = 2, 5, 3, 4


@pytest.fixture(params=["rnn", "lstm", "gru", "tdnn", "jordan"])
def layer(request):
    return {"rnn": lambda: RNN(I, H, 2), "lstm": lambda: LSTM(I, H, 2), "gru": lambda: GRU(I, H),
            "tdnn": lambda: TDNN(I, H, window=3), "jordan": lambda: Jordan(I, H, 2)}[request.param]()


def test_wrong_rank(layer):
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, I=3\); got \(5, 3\)"):
        layer(torch.randn(T, I))


def test_wrong_feature_size(layer):
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, I=3\); got \(2, 5, 4\)"):
        layer(torch.randn(B, T, I + 1))


def test_integer_input(layer):
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        layer(torch.ones(B, T, I, dtype=torch.long))


def test_lengths_longer_than_T(layer):
    with pytest.raises(ValueError, match="lengths must be <= T=5"):
        layer(torch.randn(B, T, I), torch.tensor([5, 6]))


def test_negative_lengths(layer):
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        layer(torch.randn(B, T, I), torch.tensor([5, -1]))


def test_float_lengths(layer):
    with pytest.raises(ValueError, match="lengths must be an integer tensor"):
        layer(torch.randn(B, T, I), torch.tensor([5.0, 2.0]))
    with pytest.raises(ValueError, match="lengths must hold integers"):
        layer(torch.randn(B, T, I), [5.0, 2.0])


def test_lengths_of_wrong_shape(layer):
    with pytest.raises(ValueError, match=r"lengths must have shape \(B=2,\)"):
        layer(torch.randn(B, T, I), torch.tensor([5, 2, 1]))


def test_lengths_on_another_device(layer):
    x = torch.randn(B, T, I, device="meta")
    with pytest.raises(ValueError, match="lengths must be on the input's device meta"):
        layer(x, torch.tensor([5, 2]))


def test_lengths_as_a_list_are_accepted(layer):
    y, _ = layer(torch.randn(B, T, I), [5, 2])
    assert torch.all(y[1, 2:] == 0)


def test_state_of_wrong_shape():
    with pytest.raises(ValueError, match=r"state h must have shape \(2, 2, 4\); got \(1, 2, 4\)"):
        RNN(I, H, 2)(torch.randn(B, T, I), state=torch.zeros(1, B, H))
    with pytest.raises(ValueError, match=r"state c must have shape \(2, 2, 4\)"):
        LSTM(I, H, 2)(torch.randn(B, T, I), state=(torch.zeros(2, B, H), torch.zeros(2, B, 3)))
    with pytest.raises(ValueError, match=r"state must hold 2 tensors \(h, c\)"):
        LSTM(I, H, 2)(torch.randn(B, T, I), state=torch.zeros(2, B, H))
    with pytest.raises(ValueError, match=r"state history must have shape \(2, 2, 3\)"):
        TDNN(I, H, window=3)(torch.randn(B, T, I), state=torch.zeros(B, 3, I))


def test_state_of_wrong_dtype():
    with pytest.raises(ValueError, match="state h must be torch.float32"):
        GRU(I, H)(torch.randn(B, T, I), state=torch.zeros(1, B, H, dtype=torch.float64))


def test_impossible_settings_name_the_setting():
    with pytest.raises(ValueError, match="num_layers"):
        LSTM(I, H, 0)
    with pytest.raises(ValueError, match="dropout"):
        GRU(I, H, 2, dropout=1.0)


def test_layers_refuse_nonsense_sizes_and_inputs_of_another_dtype():
    for build, name in ((lambda: LSTM(0, 4), "input_size"), (lambda: GRU(3, 0), "hidden_size"),
                        (lambda: RNN(3, 4, num_layers=0), "num_layers"), (lambda: LSTM(3, 4, dropout=1.0), "dropout"),
                        (lambda: TDNN(3, 4, window=0), "window")):
        with pytest.raises(SettingError, match=name):
            build()
    layer = LSTM(3, 4)
    with pytest.raises(ValueError, match=r"x is torch.float64 but the layer's weights are torch.float32"):
        layer(torch.randn(2, 5, 3, dtype=torch.float64))
    y, _ = layer.double()(torch.randn(2, 5, 3, dtype=torch.float64))  # converted: fine
    assert y.dtype == torch.float64
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast picks the products' precision itself
        LSTM(3, 4)(torch.randn(2, 5, 3).bfloat16())
