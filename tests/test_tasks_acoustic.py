"""Acoustic models: every architecture gives a sequence the same scores alone or in a padded
batch, frame stacking keeps frames in order, and LSTMP's weights number what Sak et al. 2014
count."""

import pytest
import torch

from rnnkit.tasks.acoustic import AcousticConfig, AcousticModel, Architecture, lstmp_weights, stack_frames


@pytest.mark.parametrize("arch", list(Architecture))
def test_padding_never_changes_a_sequences_scores(arch):
    torch.manual_seed(0)
    model = AcousticModel(AcousticConfig(num_units=5, input_size=123, architecture=arch, hidden=16, layers=2,
                                         stack=2, dropout=0.0, context=2, channels=4)).eval()
    feats = torch.randn(3, 11, 123)
    counts = torch.tensor([11, 7, 4])
    feats[1, 7:] = 5.0  # padding holding anything
    feats[2, 4:] = -3.0
    scores, lengths = model(feats, counts)
    assert lengths.tolist() == [6, 4, 2] and scores.shape == (3, 6, 5)
    for b in range(3):
        alone, _ = model(feats[b:b + 1, :counts[b]], counts[b:b + 1])
        torch.testing.assert_close(scores[b, :lengths[b]], alone[0], atol=1e-5, rtol=1e-5)


def test_stacking_puts_consecutive_frames_side_by_side():
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)
    y, n = stack_frames(x, torch.tensor([5, 3]), 2)
    assert y.shape == (2, 3, 4) and n.tolist() == [3, 2]
    assert y[0, 1].tolist() == [4, 5, 6, 7] and y[0, 2].tolist() == [8, 9, 0, 0]


def test_only_unidirectional_models_stream():
    assert {a for a in Architecture if AcousticConfig(num_units=3, architecture=a).streams} == \
        {Architecture.LSTM, Architecture.LSTMP}


@pytest.mark.parametrize("layers", [1, 2])
def test_lstmp_has_the_papers_weight_count(layers):
    n_i, n_c, n_r, n_o = 40, 32, 12, 7
    model = AcousticModel(AcousticConfig(num_units=n_o, input_size=n_i, architecture=Architecture.LSTMP,
                                         hidden=n_c, proj=n_r, layers=layers, stack=1))
    weights = sum(p.numel() for name, p in model.named_parameters() if "bias" not in name)
    assert weights == lstmp_weights(n_i, n_c, n_r, n_o, layers)
    # the paper's example: n_c = 2048, n_r = 512, one layer, ~ n_c·n_r·4 + n_r·n_o dominated
    assert lstmp_weights(40, 2048, 512, 100) == 2048 * 512 * 4 + 40 * 2048 * 4 + 512 * 100 + 2048 * 512 + 2048 * 3
